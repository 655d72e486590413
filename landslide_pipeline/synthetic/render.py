"""The RGB orthomosaic of a synthetic scene, as a UAV camera would capture it.

Land-cover colours (vegetation, bare rim ground, bench rock, the road, water, landslide soil), the
terrain's shading under the sun, buildings and their shadows, then white balance, optics blur and
sensor noise. Landslides draw from their own random stream, so the rest of the image does not
depend on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from shapely import affinity
from shapely.geometry.base import BaseGeometry

from landslide_pipeline.synthetic.grid import Grid, burn, noise, noise_1d, pixel_window, smoothstep
from landslide_pipeline.synthetic.landslides import Slide, slide_frame
from landslide_pipeline.synthetic.site import Building, Rgb, Road, Site
from landslide_pipeline.synthetic.terrain import Pit


@dataclass(frozen=True)
class _Sun:
    azimuth: float  # radians clockwise from north
    altitude: float  # radians

    def shadow_offset(self, height: float) -> tuple[float, float]:
        """Scene-metre offset (x east, y south) of the shadow cast by something ``height`` tall."""
        reach = height / math.tan(self.altitude)
        return -reach * math.sin(self.azimuth), reach * math.cos(self.azimuth)


def render_image(grid: Grid, z: np.ndarray, site: Site, slides: list[Slide], ids: np.ndarray,
                  rngs: tuple[np.random.Generator, np.random.Generator]) -> np.ndarray:
    """Composes land-cover colours, terrain shading, shadows, optics blur and sensor noise.

    ``rngs`` is (scene stream, landslide stream): landslides draw from their own stream so that
    the rest of the image does not depend on them.
    """
    rng, slide_rng = rngs
    sun = _Sun(azimuth=math.radians(rng.uniform(120.0, 240.0)), altitude=math.radians(rng.uniform(38.0, 60.0)))
    rgb = _vegetation(grid, sun, rng)
    _paint_rim_apron(grid, rgb, site.pit, rng)
    _paint_rock(grid, rgb, site.pit, rng)
    _paint_road(grid, rgb, site.road, site.pit, rng)
    _paint_water(grid, rgb, site.water, rng)
    _paint_landslides(grid, rgb, slides, ids, slide_rng)
    rgb *= _shading(grid, z, sun)[..., None]
    _paint_buildings(grid, rgb, site.buildings, sun, rng)
    rgb *= rng.uniform(0.96, 1.04, size=3).astype(np.float32)  # camera white balance
    rgb = ndimage.gaussian_filter(rgb, (0.5, 0.5, 0))
    rgb += rng.normal(0.0, 2.5, size=rgb.shape).astype(np.float32)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8).transpose(2, 0, 1).copy()


def _blend(rgb: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> None:
    """In place: ``rgb = rgb * (1 - alpha) + colour * alpha``."""
    a = alpha[..., None]
    rgb *= 1 - a
    rgb += colour * a


def _colour(base: Rgb, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.asarray(base, dtype=np.float32), (*shape, 3)).copy()


def _vegetation(grid: Grid, sun: _Sun, rng: np.random.Generator) -> np.ndarray:
    """Grass of varying dryness under clumps of tree crowns that cast short shadows."""
    lush = 1 / (1 + np.exp(-1.5 * noise(rng, grid.shape, grid.px(25))))
    lush = lush[..., None]
    rgb = _colour((132, 130, 86), grid.shape) * (1 - lush) + _colour((84, 112, 56), grid.shape) * lush
    rgb += 7 * noise(rng, grid.shape, grid.px(0.5))[..., None]
    cover = noise(rng, grid.shape, grid.px(2.5)) + 0.8 * noise(rng, grid.shape, grid.px(30))
    canopy = cover > 0.5
    crown = ndimage.gaussian_filter(canopy.astype(np.float32), grid.px(0.7))
    dx, dy = sun.shadow_offset(1.5)
    shadow = _shift(canopy, grid.px(dy), grid.px(dx)) & ~canopy
    rgb[shadow] *= 0.62
    trees = _colour((46, 76, 38), grid.shape) * (0.7 + 0.45 * crown[..., None])
    trees += 9 * noise(rng, grid.shape, grid.px(0.4))[..., None]
    _blend(rgb, trees, np.clip(crown * 1.4 - 0.2, 0, 1))
    return rgb


def _shift(mask: np.ndarray, rows: float, cols: float) -> np.ndarray:
    """Mask moved by whole pixels, filling with False."""
    r, c = int(round(rows)), int(round(cols))
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(r, 0):h + min(r, 0), max(c, 0):w + min(c, 0)] = mask[max(-r, 0):h - max(r, 0), max(-c, 0):w - max(c, 0)]
    return out


def _paint_rim_apron(grid: Grid, rgb: np.ndarray, pit: Pit, rng: np.random.Generator) -> None:
    """Trampled, bare ground around the rim where machines work."""
    reach = (4.0 + 2.0 * noise(rng, grid.shape, grid.px(10))) * grid.k
    alpha = np.clip((reach + pit.sd) / (2.0 * grid.k), 0, 1)
    ground = _colour((150, 143, 124), grid.shape) + 9 * noise(rng, grid.shape, grid.px(0.6))[..., None]
    _blend(rgb, ground, alpha)


def _paint_rock(grid: Grid, rgb: np.ndarray, pit: Pit, rng: np.random.Generator) -> None:
    """Grey-blue bench rock with bench-parallel streaks; berms dustier, the floor muddier."""
    inside = pit.sd > 0
    d = pit.sd[inside]
    bench = np.clip(np.floor(d / pit.bench_run).astype(int), 0, pit.n_benches)
    tones = rng.uniform(-10, 10, size=pit.n_benches + 1)[bench]
    warmth = rng.uniform(-4, 14, size=pit.n_benches + 1)[bench]  # some benches are oxidised
    wobble = 0.6 * grid.k * noise(rng, grid.shape, grid.px(12))[inside]
    streak_scale = grid.px(0.35) * 2
    streaks = noise_1d(rng, int((pit.floor_start + 20) / (grid.p / 2)) + 2, streak_scale)
    streak = np.interp((d + wobble) / (grid.p / 2), np.arange(streaks.size), streaks)
    phase = d - np.floor(d / pit.bench_run) * pit.bench_run
    face = (phase < pit.face_run) & (d < pit.floor_start)
    floor = d >= pit.floor_start
    lum = 121 + tones + 8 * streak * np.where(face, 1.0, 0.5) + 6 * noise(rng, grid.shape, grid.px(8))[inside]
    lum += 5 * noise(rng, grid.shape, 1.5)[inside] + np.where(face, 0, 9)
    warm = warmth + np.where(face, 0, 4) + np.where(floor, 8, 0)
    rock = np.stack([lum + warm * 0.6, lum + 3 + warm * 0.2, lum + 10 - warm * 0.5], axis=-1)
    rgb[inside] = rock.astype(np.float32)


def _paint_road(grid: Grid, rgb: np.ndarray, road: Road, pit: Pit, rng: np.random.Generator) -> None:
    """Bright, smooth compacted gravel with faint wheel tracks and rubble windrows on the ramp."""
    half = road.width / 2
    near = road.dist < half + 1.0
    dist = road.dist[near]
    tracks = sum(np.exp(-(((dist - off * half) / 0.35) ** 2)) for off in (0.25, 0.65))
    lum = 178 + 4 * noise(rng, grid.shape, grid.px(6))[near] - 7 * tracks + 2 * noise(rng, grid.shape, 1.5)[near]
    surface = np.stack([lum + 8, lum + 2, lum - 12], axis=-1)
    on_ramp = road.on_ramp[near] & (pit.sd[near] > 0)
    rubble_zone = on_ramp & (dist > half - 1.0)
    rubble = 132 + 14 * noise(rng, grid.shape, 1.2)[near][rubble_zone]
    surface[rubble_zone] = np.stack([rubble + 4, rubble + 1, rubble - 4], axis=-1)
    alpha = np.clip(half + 0.5 - dist, 0, 1)[:, None]
    rgb[near] = rgb[near] * (1 - alpha) + surface * alpha


def _paint_water(grid: Grid, rgb: np.ndarray, water: np.ndarray, rng: np.random.Generator) -> None:
    """Dark, very smooth green-blue water with a wet muddy shore."""
    if not water.any():
        return
    shore = ndimage.binary_dilation(water, iterations=max(1, int(round(grid.px(0.8))))) & ~water
    rgb[shore] = rgb[shore] * 0.45 + np.array([50, 48, 42], dtype=np.float32) * 0.55
    tint = 2.0 * noise(rng, grid.shape, grid.px(20))[water]
    rgb[water] = np.stack([30 + tint, 57 + tint, 60 + 1.5 * tint], axis=-1)


_SOILS: tuple[Rgb, ...] = ((198, 172, 132), (188, 162, 124), (206, 184, 146), (184, 166, 138))


def _paint_landslides(grid: Grid, rgb: np.ndarray, slides: list[Slide], ids: np.ndarray,
                      rng: np.random.Generator) -> None:
    """Freshly exposed, rough soil: brighter and browner than the rock, with clods and boulders."""
    for number, slide in enumerate(slides, start=1):
        window = pixel_window(slide.outline, grid, 1.0)
        mask = (ids[window] == number).astype(np.float32)
        alpha = np.clip(ndimage.gaussian_filter(mask, grid.px(0.35)) * 1.5 - 0.25, 0, 1)
        patch = rgb[window]
        soil = _soil_texture(grid, slide, window, patch, rng)
        _blend(patch, soil, alpha)


def _soil_texture(grid: Grid, slide: Slide, window: tuple[slice, slice], under: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """Soil colour mixed with the rock it came from, with clods, boulders and a fresh scarp zone."""
    shape = under.shape[:2]
    base = np.asarray(_SOILS[int(rng.integers(len(_SOILS)))], dtype=np.float32)
    rock_share = rng.uniform(0.15, 0.35)
    soil = base * (1 - rock_share) + under * rock_share
    u = slide_frame(grid, slide, window)
    fresh = smoothstep((-0.45 - u) / 0.4)[..., None]  # the head scarp exposes lighter, yellower ground
    soil += fresh * np.array([14, 12, 4], dtype=np.float32)
    clods = 20 * noise(rng, shape, 1.2) + 9 * noise(rng, shape, grid.px(1.5))
    debris = noise(rng, shape, grid.px(0.9)) > 1.0  # rock fragments in the soil
    soil[debris] = soil[debris] * 0.55 + under[debris] * 0.45
    boulders = rng.random(shape) < 0.012
    boulders = ndimage.binary_dilation(boulders, iterations=max(1, int(round(grid.px(0.25)))))
    lum = clods + 38 * boulders - 34 * (_shift(boulders, 1, 1) & ~boulders)
    return soil + lum[..., None]


def _shading(grid: Grid, z: np.ndarray, sun: _Sun) -> np.ndarray:
    """Relative sunlit brightness of the terrain (1 on flat ground), with sky light in shadow."""
    dz_south, dz_east = np.gradient(z.astype(np.float32), grid.p)
    dz_north = -dz_south
    norm = np.sqrt(dz_east**2 + dz_north**2 + 1.0)
    sx = math.sin(sun.azimuth) * math.cos(sun.altitude)
    sy = math.cos(sun.azimuth) * math.cos(sun.altitude)
    sz = math.sin(sun.altitude)
    direct = np.clip((-dz_east * sx - dz_north * sy + sz) / norm, 0, None) / sz
    ambient = 0.32
    return (ambient + (1 - ambient) * direct).astype(np.float32)


def _paint_buildings(grid: Grid, rgb: np.ndarray, buildings: list[Building], sun: _Sun,
                     rng: np.random.Generator) -> None:
    """Gravel yards, cast shadows and bright flat roofs with a darker parapet."""
    for b in buildings:
        window = pixel_window(b.yard.union(affinity.translate(b.footprint, *sun.shadow_offset(b.height))), grid, 1.0)
        patch = rgb[window]
        yard = burn(b.yard, grid, window)
        gravel = 166 + 4 * noise(rng, yard.shape, 1.5)
        patch[yard] = np.stack([gravel + 2, gravel - 2, gravel - 12], axis=-1)[yard]
        shadow = burn(_shadow(b, sun), grid, window)
        patch[shadow] *= 0.5
        roof = burn(b.footprint, grid, window)
        inner = burn(b.footprint.buffer(-0.35), grid, window)
        patch[roof] = np.asarray(b.roof, dtype=np.float32) * 0.8
        patch[inner] = np.asarray(b.roof, dtype=np.float32) + rng.normal(0, 1.5, size=(int(inner.sum()), 1))


def _shadow(building: Building, sun: _Sun) -> BaseGeometry:
    """Ground area shaded by a box-shaped building."""
    cast = affinity.translate(building.footprint, *sun.shadow_offset(building.height))
    return building.footprint.union(cast).convex_hull.difference(building.footprint)
