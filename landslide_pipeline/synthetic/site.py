"""The mine before any landslide: a haul road, a pond and site buildings laid onto the pit.

The haul road ramps down the walls at a constant grade to the pit floor and leaves the pit as an
access road on the terrain; a pond floods the lowest part of the floor; a few buildings stand near
the rim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from shapely import affinity
from shapely.geometry import Polygon, box

from landslide_pipeline.synthetic.grid import Grid, burn, pixel_window, sample, within_scene
from landslide_pipeline.synthetic.terrain import Pit, RayTable, design_pit, natural_terrain, pit_surface, ray_table

Rgb = tuple[float, float, float]


@dataclass(frozen=True)
class Site:
    """The mine before any landslide: surface elevation and the land-cover layout."""

    z: np.ndarray
    pit: Pit
    road: Road
    water: np.ndarray
    buildings: list[Building]


def build_site(grid: Grid, rngs: dict[str, np.random.Generator]) -> Site:
    """Terrain, benched pit, haul road, pond and buildings, with the DEM they imply."""
    z_natural, z_low = natural_terrain(grid, rngs["terrain"])
    pit = design_pit(grid, rngs["pit"])
    road = _haul_road(grid, pit, rngs["road"])
    z_rim = sample(z_low, grid, *road.start)
    z = pit_surface(grid, pit, z_natural, z_rim, rngs["pit"])
    z = _grade_roads(z, z_low, road, z_rim)
    z, water = _pond(grid, pit, road, z, rngs["water"])
    z = _smooth_edges(grid, z, water)
    buildings = _place_buildings(grid, pit, road, rngs["buildings"])
    return Site(z=_raise_buildings(grid, z, buildings), pit=pit, road=road, water=water, buildings=buildings)


@dataclass(frozen=True)
class Road:
    """The haul road: ``dist`` (m) to its centreline; ``depth`` below the rim of the nearest
    centreline point of the ramp (NaN along the access road, which follows the terrain)."""

    width: float
    start: tuple[float, float]
    dist: np.ndarray
    depth: np.ndarray

    @property
    def on_ramp(self) -> np.ndarray:
        """Pixels whose nearest centreline point is on the ramp rather than the access road."""
        return ~np.isnan(self.depth)


def _trace_ramp(pit: Pit, table: RayTable, theta0: float, turn: int, width: float, grade: float,
                step: float) -> np.ndarray:
    """Centreline (x, y, depth below rim) of a ramp descending the walls at a constant grade."""
    cx, cy = pit.centre
    wall_slope = pit.bench_height / pit.bench_run
    theta, s = theta0, 0.0
    points: list[tuple[float, float, float]] = []
    floor_left = 1.5 * width
    while floor_left > 0:
        depth = min(grade * s, pit.depth)
        d = depth / wall_slope - width / 2
        rho = max(table.radius(theta, d), 1.0)
        x, y = cx + rho * math.cos(theta), cy + rho * math.sin(theta)
        if points:
            ds = math.hypot(x - points[-1][0], y - points[-1][1])
            s += ds
            floor_left -= ds if depth >= pit.depth else 0.0
        points.append((x, y, depth))
        theta += turn * step / rho
    return np.array(points)


def _trace_access(grid: Grid, start: tuple[float, float], theta0: float, turn: int,
                  rng: np.random.Generator, step: float) -> np.ndarray:
    """Centreline of the access road: leaves the ramp head along the rim and bends out of the scene."""
    heading = theta0 - turn * (np.pi / 2 - rng.uniform(0.35, 0.6))
    target = theta0 + rng.uniform(-0.4, 0.4)
    bend_length = rng.uniform(20.0, 40.0) * grid.k
    x, y = start
    points: list[tuple[float, float, float]] = []
    while -10 < x < grid.extent + 10 and -10 < y < grid.extent + 10 and len(points) < 100_000:
        points.append((x, y, np.nan))
        heading += (target - heading) * min(1.0, step / bend_length)
        x, y = x + step * math.cos(heading), y + step * math.sin(heading)
    return np.array(points)


def _haul_road(grid: Grid, pit: Pit, rng: np.random.Generator) -> Road:
    """Traces the ramp and the access road and measures every pixel's distance to them."""
    width = rng.uniform(8.0, 11.0) * grid.k
    grade = rng.uniform(0.09, 0.10)
    theta0, turn = rng.uniform(0, 2 * np.pi), int(rng.choice([-1, 1]))
    step = grid.p / 2
    table = ray_table(grid, pit, margin=2 * width)
    ramp = _trace_ramp(pit, table, theta0, turn, width, grade, step)
    start = (float(ramp[0, 0]), float(ramp[0, 1]))
    access = _trace_access(grid, start, theta0, turn, rng, step)
    line = np.vstack([access[::-1], ramp])
    return Road(width=width, start=start, **_distance_to_line(grid, line))


def _distance_to_line(grid: Grid, line: np.ndarray) -> dict[str, np.ndarray]:
    """Distance (m) from each pixel to the nearest centreline point, and that point's depth."""
    cols = np.floor(grid.px(line[:, 0])).astype(int)
    rows = np.floor(grid.px(line[:, 1])).astype(int)
    keep = (rows >= 0) & (rows < grid.n) & (cols >= 0) & (cols < grid.n)
    index = np.full(grid.shape, -1, dtype=np.int64)
    index[rows[keep], cols[keep]] = np.flatnonzero(keep)
    dist, (near_r, near_c) = ndimage.distance_transform_edt(index < 0, sampling=grid.p, return_indices=True)
    depth = line[index[near_r, near_c], 2].astype(np.float32)
    # The nearest-point depth steps along the road; smoothing makes the ramp an even grade.
    even = ndimage.gaussian_filter(np.nan_to_num(depth, nan=0.0), grid.px(1.0))
    return {"dist": dist.astype(np.float32), "depth": np.where(np.isnan(depth), np.nan, even).astype(np.float32)}


def _grade_roads(z: np.ndarray, z_low: np.ndarray, road: Road, z_rim: float) -> np.ndarray:
    """Lays the road surface: the ramp at its grade, the access road on the smoothed terrain."""
    edge = 1.0
    alpha = np.clip((road.width / 2 + edge - road.dist) / edge, 0.0, 1.0)
    on_ramp = road.on_ramp
    surface = np.where(on_ramp, z_rim - np.nan_to_num(road.depth), z_low)
    # Safety windrow of loose rock along the ramp edges, as mines are required to keep.
    windrow = 0.6 * np.exp(-(((road.dist - (road.width / 2 - 0.5)) / 0.35) ** 2)) * on_ramp
    return (alpha * (surface + windrow) + (1 - alpha) * z).astype(np.float32)


def _pond(grid: Grid, pit: Pit, road: Road, z: np.ndarray,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Floods the lowest part of the pit floor: (surface with flat water, water mask)."""
    floor = (pit.sd > pit.floor_start + 1.5 * grid.k) & (road.dist > road.width / 2 + 3.0 * grid.k)
    water = np.zeros(grid.shape, dtype=bool)
    if floor.sum() < 50:
        return z, water
    level = float(np.quantile(z[floor], rng.uniform(0.35, 0.6)))
    labels, n = ndimage.label(floor & (z < level))
    if n > 0:
        largest = 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
        water = ndimage.binary_fill_holes(labels == largest) & floor
    return np.where(water, np.float32(level), z), water


def _smooth_edges(grid: Grid, z: np.ndarray, water: np.ndarray) -> np.ndarray:
    """Rounds bench crests and road edges like a photogrammetric DEM does; keeps water flat."""
    level = z[water][0] if water.any() else None
    z = ndimage.gaussian_filter(z, grid.px(0.3)).astype(np.float32)
    if level is not None:
        z[water] = level
    return z


@dataclass(frozen=True)
class Building:
    """A site building: footprint and gravel yard in scene metres, roof height (m) and colour."""

    footprint: Polygon
    yard: Polygon
    height: float
    roof: Rgb


_ROOFS: tuple[Rgb, ...] = ((214, 214, 210), (228, 226, 220), (200, 203, 206), (176, 192, 208), (205, 200, 188))


def _place_buildings(grid: Grid, pit: Pit, road: Road, rng: np.random.Generator) -> list[Building]:
    """A few site buildings near the rim, clear of the pit, the road and each other."""
    wanted = int(np.clip(round(rng.uniform(2.5, 4.5) * grid.extent / 256.0), 1, 8))
    size = float(np.clip(grid.extent / 256.0, 0.5, 1.0))
    near_rim = (pit.sd < -4.0 * grid.k) & (pit.sd > -30.0 * grid.k) & (road.dist > road.width / 2 + 4.0 * grid.k)
    candidates = np.flatnonzero(near_rim)
    blocked = ~near_rim
    placed: list[Building] = []
    for _ in range(400):
        if len(placed) == wanted or candidates.size == 0:
            break
        building = _random_building(grid, pit, rng, candidates, size)
        window = pixel_window(building.yard, grid, 0.0)
        inside = within_scene(building.yard, grid, 1.0)
        if inside and not (blocked[window] & burn(building.yard, grid, window)).any():
            placed.append(building)
            grown = building.yard.buffer(3.0 * grid.k)
            w = pixel_window(grown, grid, 0.0)
            blocked[w] |= burn(grown, grid, w)
    return placed


def _random_building(grid: Grid, pit: Pit, rng: np.random.Generator, candidates: np.ndarray,
                     size: float) -> Building:
    row, col = np.unravel_index(int(rng.choice(candidates)), grid.shape)
    x, y = (col + 0.5) * grid.p, (row + 0.5) * grid.p
    length, width = rng.uniform(8.0, 18.0) * size, rng.uniform(5.0, 10.0) * size
    along_rim = math.atan2(y - pit.centre[1], x - pit.centre[0]) + np.pi / 2 + rng.uniform(-0.2, 0.2)
    rect = box(-length / 2, -width / 2, length / 2, width / 2)
    footprint = affinity.translate(affinity.rotate(rect, along_rim, use_radians=True, origin=(0, 0)), x, y)
    yard = footprint.buffer(rng.uniform(2.0, 4.0) * size, join_style="mitre")
    roof = _ROOFS[int(rng.integers(len(_ROOFS)))]
    return Building(footprint=footprint, yard=yard, height=float(rng.uniform(3.0, 7.0)), roof=roof)


def _raise_buildings(grid: Grid, z: np.ndarray, buildings: list[Building]) -> np.ndarray:
    """Flat roofs a few metres above the levelled ground of each building's footprint."""
    z = z.copy()
    for b in buildings:
        window = pixel_window(b.yard, grid, 0.0)
        yard, footprint = burn(b.yard, grid, window), burn(b.footprint, grid, window)
        patch = z[window]
        ground = float(np.median(patch[yard]))
        patch[yard] = ground
        patch[footprint] = ground + b.height
    return z
