"""Landslides on the pit walls: where they fit, their outlines, how they disturb the DEM, and the
hand-drawn labels a person would digitise for them.

In the DEM a landslide drops a head scarp, piles a toe deposit and smooths the benches away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from shapely.geometry import MultiPolygon, Polygon
from shapely.validation import make_valid

from landslide_pipeline.synthetic.grid import Grid, burn, noise, pixel_window, sample, smoothstep, within_scene
from landslide_pipeline.synthetic.site import Road
from landslide_pipeline.synthetic.terrain import Pit, RayTable, ray_table


@dataclass(frozen=True)
class Slide:
    """A landslide in scene metres: its true outline and its downslope frame."""

    outline: Polygon
    centre: tuple[float, float]
    downslope: tuple[float, float]
    length: float
    scarp_drop: float
    deposit_height: float


def place_landslides(grid: Grid, pit: Pit, road: Road, water: np.ndarray, n: int,
                      rng: np.random.Generator) -> list[Slide]:
    """Places ``n`` landslides on the pit walls, clear of roads, water, buildings and each other."""
    clearance = 2.0 * grid.k
    near_water = ndimage.distance_transform_edt(~water, sampling=grid.p) < clearance if water.any() else water
    blocked = (pit.sd < clearance) | (road.dist < road.width / 2 + clearance) | near_water
    blocked[:, :2], blocked[:, -2:], blocked[:2, :], blocked[-2:, :] = True, True, True, True
    table = ray_table(grid, pit, margin=18.0 * grid.k)
    slides: list[Slide] = []
    failures = 0
    while len(slides) < n:
        shrink = max(0.9 ** (failures // 30), 0.3)  # give up on long slides where the walls are crowded
        slide = _random_slide(grid, pit, table, blocked, rng, shrink)
        if slide is not None and _fits(grid, slide.outline, blocked):
            slides.append(slide)
            grown = slide.outline.buffer(clearance)
            window = pixel_window(grown, grid, 0.0)
            blocked[window] |= burn(grown, grid, window)
            continue
        failures += 1
        if failures > 1500:
            raise RuntimeError(f"could fit only {len(slides)} of {n} landslides on the pit walls; "
                               "ask for fewer or a larger scene")
    return slides


def _fits(grid: Grid, outline: Polygon, blocked: np.ndarray) -> bool:
    window = pixel_window(outline, grid, 0.0)
    mask = burn(outline, grid, window)
    return within_scene(outline, grid, 2.0) and mask.sum() > 20 and not (blocked[window] & mask).any()


def _free_run(grid: Grid, table: RayTable, blocked: np.ndarray, theta: float,
              reach: float) -> tuple[float, float]:
    """Longest unblocked stretch (start, length) of rim distance down the wall along one direction."""
    depths = np.arange(0.0, reach, grid.p)
    rows, cols = table.points(theta, depths, grid)
    free = np.concatenate([[False], ~blocked[rows, cols], [False]])
    edges = np.flatnonzero(np.diff(free.astype(np.int8)))
    if edges.size == 0:
        return 0.0, 0.0
    starts, stops = edges[::2], edges[1::2]
    longest = int(np.argmax(stops - starts))
    return float(depths[starts[longest]]), float((stops[longest] - starts[longest]) * grid.p)


def _random_slide(grid: Grid, pit: Pit, table: RayTable, blocked: np.ndarray,
                  rng: np.random.Generator, shrink: float) -> Slide | None:
    """A lobate, downslope-elongated slide fitted into the free wall along a random direction."""
    theta = rng.uniform(0, 2 * np.pi)
    target = rng.uniform(18.0, 40.0) * grid.k * shrink
    run_start, run_length = _free_run(grid, table, blocked, theta, pit.floor_start + 16.0 * grid.k)
    length = min(target, 0.95 * run_length)
    if length < 8.0 * grid.k * shrink:
        return None
    # Slides start on the wall; only their runout may spread onto the pit floor.
    head = min(run_start + rng.uniform(0.0, run_length - length), pit.floor_start - 0.5 * length)
    if head < run_start:
        return None
    rho = table.radius(theta, head + length / 2)
    cx, cy = pit.centre[0] + rho * math.cos(theta), pit.centre[1] + rho * math.sin(theta)
    ux, uy = _downslope(grid, pit, cx, cy)
    outline = _lobate_outline(rng, (cx, cy), (ux, uy), length, length * rng.uniform(0.6, 0.95))
    amplitude = float(np.clip(length / (15.0 * grid.k), 0.6, 1.0))
    return Slide(outline=outline, centre=(cx, cy), downslope=(ux, uy), length=length,
                  scarp_drop=rng.uniform(1.0, 4.0) * amplitude, deposit_height=rng.uniform(1.0, 3.0) * amplitude)


def _downslope(grid: Grid, pit: Pit, x: float, y: float) -> tuple[float, float]:
    """Unit vector of increasing rim distance (down the wall) at a point."""
    h = 2.0
    gx = sample(pit.sd, grid, x + h, y) - sample(pit.sd, grid, x - h, y)
    gy = sample(pit.sd, grid, x, y + h) - sample(pit.sd, grid, x, y - h)
    norm = math.hypot(gx, gy)
    if norm < 1e-6:
        gx, gy = pit.centre[0] - x, pit.centre[1] - y
        norm = math.hypot(gx, gy) or 1.0
    return gx / norm, gy / norm


def _lobate_outline(rng: np.random.Generator, centre: tuple[float, float], down: tuple[float, float],
                    length: float, width: float) -> Polygon:
    """Star-shaped outline (always simple): an ellipse with random lobes, wider at the toe."""
    t = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    r = np.ones_like(t)
    for k in range(2, 15):
        amplitude = (0.09 if k <= 6 else 0.025) / k**0.5
        r += rng.uniform(0, amplitude) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    u, v = np.cos(t) * r, np.sin(t) * r
    v = v * (1.0 + rng.uniform(-0.1, 0.35) * u)  # a spreading toe lobe is typical of slope failures
    along, across = u * length / 2, v * width / 2
    (cx, cy), (ux, uy) = centre, down
    xs = cx + along * ux - across * uy
    ys = cy + along * uy + across * ux
    return Polygon(np.column_stack([xs, ys]))


def slide_frame(grid: Grid, slide: Slide, window: tuple[slice, slice]) -> np.ndarray:
    """Normalised downslope coordinate of the window's pixels: -1 at the head, +1 at the toe."""
    rows, cols = window
    x = grid.x[:, cols] - slide.centre[0]
    y = grid.y[rows, :] - slide.centre[1]
    return (x * slide.downslope[0] + y * slide.downslope[1]) / (slide.length / 2)


def disturb_dem(grid: Grid, pit: Pit, z: np.ndarray, slides: list[Slide], ids: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """Each slide smooths the benches away, drops a head scarp and piles a rough toe deposit."""
    z = z.copy()
    # Smoothing over about half a bench period erases the terraces, as failed material does.
    sigma = 0.45 * pit.bench_run
    for number, slide in enumerate(slides, start=1):
        window = pixel_window(slide.outline, grid, 3.5 * sigma)
        mask = (ids[window] == number).astype(np.float32)
        soft = np.clip(ndimage.gaussian_filter(mask, grid.px(0.35)) * 1.6 - 0.3, 0.0, 1.0)
        patch = z[window]
        smooth = ndimage.gaussian_filter(patch, grid.px(sigma), mode="nearest")
        u = slide_frame(grid, slide, window)
        head, toe = smoothstep((0.05 - u) / 0.6), smoothstep(u / 0.45)
        # Smoothing alone can raise a head or lower a toe locally; offsetting it keeps the mass
        # balance of a slide: the head (depletion zone) loses material, the toe gains it.
        change = smooth - patch
        inside = mask > 0.5
        excess = max(_zone_mean(change, inside & (u < 0)), 0.0)
        deficit = min(_zone_mean(change, inside & (u > 0)), 0.0)
        hummocks = rng.uniform(0.1, 0.2) * noise(rng, mask.shape, grid.px(1.0)) * (0.6 + 0.4 * (u > 0))
        change += hummocks - head * (slide.scarp_drop + excess) + toe * (slide.deposit_height - deficit)
        z[window] = patch + soft * change
    return z


def _zone_mean(values: np.ndarray, zone: np.ndarray) -> float:
    return float(values[zone].mean()) if zone.any() else 0.0


def hand_drawn(outline: Polygon, k: float, rng: np.random.Generator) -> Polygon:
    """How a person would digitise the outline: fewer vertices, each placed a little off."""
    size = float(np.clip((math.sqrt(outline.area) - 8.0) / 20.0, 0.0, 1.0))
    tolerance = (0.5 + 0.5 * size * rng.uniform(0.5, 1.0)) * k
    jitter = (0.3 + 0.5 * size * rng.uniform(0.3, 1.0)) * k
    simple = outline.simplify(tolerance, preserve_topology=True)
    coords = np.asarray(simple.exterior.coords)[:-1]
    coords = coords + rng.normal(0.0, jitter / math.sqrt(2), size=coords.shape)
    drawn = make_valid(Polygon(coords)).buffer(rng.uniform(-0.15, 0.25) * k)
    if isinstance(drawn, MultiPolygon):
        drawn = max(drawn.geoms, key=lambda g: g.area)
    return drawn if drawn.is_valid and not drawn.is_empty else outline
