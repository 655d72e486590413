"""A seeded synthetic survey of an open-pit mine, as a UAV would capture it.

``generate_survey`` writes the same folder layout as a user's real survey
(``data/raw/<survey_id>/``): ``image.tif`` (RGB orthomosaic), ``dem.tif`` (elevation, metres) and
``landslides.gpkg`` (hand-drawn-style labels), plus ``ground_truth.tif``, the exact landslide mask,
which only synthetic surveys have.

The scene: gently rolling vegetated terrain with an open pit roughly in the middle. The pit walls
are benched (concentric terraces from a signed distance to the rim), a haul road ramps down the
walls at a constant grade to a pit floor holding a pond, and a few buildings stand near the rim.
Landslides sit on the walls: in the DEM a head scarp, a toe deposit and smoothed-out benches; in
the image bare, brighter, rough soil. Each scene component draws from its own random stream, so
a spec that differs only in ``n_landslides`` gives the same pit, roads, water and buildings; with
``n_landslides=0`` it is the undisturbed baseline of the same scene.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import rasterize
from rasterio.transform import Affine, from_origin
from scipy import ndimage
from shapely import affinity
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.validation import make_valid

IMAGE_NAME = "image.tif"
DEM_NAME = "dem.tif"
LABELS_NAME = "landslides.gpkg"
GROUND_TRUTH_NAME = "ground_truth.tif"
LABELS_LAYER = "landslides"
DEM_NODATA = -9999.0
BAND_NAMES = ("red", "green", "blue")

_MIN_EXTENT_M = 48.0
_STREAMS = (
    "terrain", "pit", "road", "water", "buildings", "landslides", "labels", "image", "dem_noise", "slide_image",
)
_Rgb = tuple[float, float, float]


@dataclass(frozen=True)
class SyntheticSurveySpec:
    """What to generate: a square scene on a UAV-like grid in a projected CRS.

    Attributes:
        size_px: Width and height of the scene in pixels.
        pixel_size_m: Ground sampling distance (0.1 to 0.5 m is typical for a UAV orthomosaic).
        crs: A projected CRS for the outputs.
        origin: Map x, y of the upper-left corner of the scene.
        n_landslides: Number of landslides placed on the pit walls.
        seed: Seed of every random choice; the same spec gives byte-identical rasters.
    """

    size_px: int = 1024
    pixel_size_m: float = 0.25
    crs: str = "EPSG:32650"
    origin: tuple[float, float] = (500_000.0, 4_400_000.0)
    n_landslides: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size_px < 128:
            raise ValueError(f"size_px must be at least 128, got {self.size_px}")
        if not 0.02 <= self.pixel_size_m <= 2.0:
            raise ValueError(f"pixel_size_m must be within 0.02..2 m, got {self.pixel_size_m}")
        if self.size_px * self.pixel_size_m < _MIN_EXTENT_M:
            raise ValueError(f"the scene must span at least {_MIN_EXTENT_M} m to hold a pit")
        if self.n_landslides < 0:
            raise ValueError(f"n_landslides must be >= 0, got {self.n_landslides}")


@dataclass(frozen=True)
class SyntheticSurvey:
    """Paths of a generated survey folder."""

    directory: Path
    image: Path
    dem: Path
    landslides: Path
    ground_truth: Path


def generate_survey(out_dir: Path, spec: SyntheticSurveySpec = SyntheticSurveySpec()) -> SyntheticSurvey:
    """Generates a synthetic open-pit survey into ``out_dir``, atomically.

    Everything is written into a temporary sibling folder first and renamed into place, so
    ``out_dir`` either holds the complete survey or is left as it was.

    Args:
        out_dir: The survey folder to create; it may exist only if it is empty.
        spec: What to generate.

    Returns:
        The paths of the written files.

    Raises:
        FileExistsError: ``out_dir`` exists and is not an empty folder.
        RuntimeError: The landslides do not fit on the pit walls (too many for the scene).
    """
    out_dir = Path(out_dir)
    _ensure_free(out_dir)
    scene = build_scene(spec)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        os.chmod(staging, 0o755)
        _write_scene(staging, scene, spec)
        _publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _survey_paths(out_dir)


@dataclass(frozen=True)
class SyntheticScene:
    """The generated arrays and polygons, before they are written.

    Attributes:
        image: uint8 RGB, shape (3, size, size).
        dem: float32 elevation in metres, shape (size, size).
        ground_truth: uint8 {0, 1} mask of the true landslide pixels.
        true_outlines: Exact landslide outlines in map coordinates.
        labels: The hand-drawn-style versions of ``true_outlines``, same order.
    """

    image: np.ndarray
    dem: np.ndarray
    ground_truth: np.ndarray
    true_outlines: list[Polygon]
    labels: list[Polygon]


def build_scene(spec: SyntheticSurveySpec) -> SyntheticScene:
    """Builds the whole scene in memory (no files); deterministic for a given spec."""
    rngs = _random_streams(spec.seed)
    grid = _Grid(spec.size_px, spec.pixel_size_m)
    site = _build_site(grid, rngs)
    slides = _place_landslides(grid, site.pit, site.road, site.water, spec.n_landslides, rngs["landslides"])
    outlines = [_to_map(s.outline, spec) for s in slides]
    ids = _rasterize_ids(outlines, grid, _map_transform(spec))
    z = _disturb_dem(grid, site.pit, site.z, slides, ids, rngs["landslides"])
    image = _render_image(grid, z, site, slides, ids, (rngs["image"], rngs["slide_image"]))
    dem = (z + 0.03 * rngs["dem_noise"].standard_normal(z.shape)).astype(np.float32)
    labels = [_hand_drawn(o, grid.k, rngs["labels"]) for o in outlines]
    return SyntheticScene(image=image, dem=dem, ground_truth=(ids > 0).astype(np.uint8),
                          true_outlines=outlines, labels=labels)


def _random_streams(seed: int) -> dict[str, np.random.Generator]:
    """One independent generator per scene component (appending a name keeps the others)."""
    sequences = np.random.SeedSequence([seed, 0x0BE7]).spawn(len(_STREAMS))
    return {name: np.random.default_rng(seq) for name, seq in zip(_STREAMS, sequences)}


# --- grid, noise and small geometry helpers -------------------------------------------------------


class _Grid:
    """Pixel-centre coordinates in scene metres: x east from the left edge, y south from the top."""

    def __init__(self, n: int, pixel_size: float) -> None:
        self.n = n
        self.p = pixel_size
        self.extent = n * pixel_size
        # Small scenes get proportionally smaller benches, roads and slides so that they still fit.
        self.k = float(np.clip(self.extent / 160.0, 0.4, 1.0))
        self.x = ((np.arange(n, dtype=np.float32) + 0.5) * pixel_size)[None, :]
        self.y = ((np.arange(n, dtype=np.float32) + 0.5) * pixel_size)[:, None]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.n)

    def px(self, metres: float) -> float:
        return metres / self.p


def _bspline_weights(n_out: int, cell: int, offset: float) -> np.ndarray:
    """Dense (n_out, n_coarse) matrix that evaluates a cubic B-spline on a grid of spacing ``cell``."""
    pos = (np.arange(n_out) + offset) / cell + 1.0
    base = np.floor(pos).astype(int)
    f = pos - base
    taps = np.stack([(1 - f) ** 3, 3 * f**3 - 6 * f**2 + 4, -3 * f**3 + 3 * f**2 + 3 * f + 1, f**3]) / 6.0
    weights = np.zeros((n_out, int(base.max()) + 3), dtype=np.float32)
    rows = np.arange(n_out)
    for tap in range(4):
        weights[rows, base - 1 + tap] = taps[tap]
    return weights


def _noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Smooth Gaussian noise of unit variance whose blobs are about ``scale_px`` pixels across."""
    cell = max(int(round(scale_px)), 1)
    if cell == 1:
        return rng.standard_normal(shape, dtype=np.float32)
    offsets = rng.uniform(0, cell, size=2)
    w_rows = _bspline_weights(shape[0], cell, offsets[0])
    w_cols = _bspline_weights(shape[1], cell, offsets[1])
    coarse = rng.standard_normal((w_rows.shape[1], w_cols.shape[1]), dtype=np.float32)
    field = w_rows @ coarse @ w_cols.T
    # Normalise by the expected, not the sampled, variance so small windows keep their amplitude.
    expected = np.sqrt((w_rows**2).sum(axis=1).mean() * (w_cols**2).sum(axis=1).mean())
    return (field / expected).astype(np.float32)


def _noise_1d(rng: np.random.Generator, length: int, scale: float) -> np.ndarray:
    """Smooth 1-D noise of unit variance with features ``scale`` samples long."""
    raw = rng.standard_normal(length + 8 * int(scale) + 8)
    smooth = ndimage.gaussian_filter1d(raw, max(scale, 0.5))
    smooth = smooth[4 * int(scale) + 4:][:length]
    return (smooth / smooth.std()).astype(np.float32)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _sample(field: np.ndarray, grid: _Grid, x: float, y: float) -> float:
    """Bilinear value of a grid field at a point in scene metres."""
    coords = np.array([[grid.px(y) - 0.5], [grid.px(x) - 0.5]])
    return float(ndimage.map_coordinates(field, coords, order=1, mode="nearest")[0])


def _window(geom: BaseGeometry, grid: _Grid, margin_m: float) -> tuple[slice, slice]:
    """Row and column slices of the pixels within ``margin_m`` of the geometry's bounds."""
    x0, y0, x1, y1 = geom.bounds
    return _span(grid, y0 - margin_m, y1 + margin_m), _span(grid, x0 - margin_m, x1 + margin_m)


def _span(grid: _Grid, start_m: float, stop_m: float) -> slice:
    start = int(np.clip(math.floor(grid.px(start_m)), 0, grid.n))
    return slice(start, int(np.clip(math.ceil(grid.px(stop_m)), start, grid.n)))


def _burn(geom: BaseGeometry, grid: _Grid, window: tuple[slice, slice]) -> np.ndarray:
    """Boolean mask of the window's pixel centres inside a geometry given in scene metres."""
    rows, cols = window
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    if geom.is_empty or 0 in shape:
        return np.zeros(shape, dtype=bool)
    transform = Affine(grid.p, 0, cols.start * grid.p, 0, grid.p, rows.start * grid.p)
    return rasterize([geom], out_shape=shape, transform=transform, dtype=np.uint8).astype(bool)


def _map_transform(spec: SyntheticSurveySpec) -> Affine:
    return from_origin(spec.origin[0], spec.origin[1], spec.pixel_size_m, spec.pixel_size_m)


def _to_map(geom: Polygon, spec: SyntheticSurveySpec) -> Polygon:
    """Scene metres (y down from the top edge) to map coordinates (y north)."""
    return affinity.affine_transform(geom, [1, 0, 0, -1, spec.origin[0], spec.origin[1]])


def _rasterize_ids(outlines: list[Polygon], grid: _Grid, transform: Affine) -> np.ndarray:
    """uint8 raster of landslide ids (1-based), 0 elsewhere; the source of the ground truth."""
    if not outlines:
        return np.zeros(grid.shape, dtype=np.uint8)
    shapes = [(o, i + 1) for i, o in enumerate(outlines)]
    return rasterize(shapes, out_shape=grid.shape, transform=transform, fill=0, dtype=np.uint8)


# --- terrain and pit ------------------------------------------------------------------------------


def _natural_terrain(grid: _Grid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Gently rolling ground: (full surface, its low-frequency part used for graded surfaces)."""
    base = rng.uniform(300.0, 1500.0)
    tilt, azimuth = rng.uniform(0.005, 0.02), rng.uniform(0, 2 * np.pi)
    plane = tilt * (np.cos(azimuth) * grid.x + np.sin(azimuth) * grid.y)
    low = base + plane + 4.0 * _noise(rng, grid.shape, grid.px(120)) + 1.2 * _noise(rng, grid.shape, grid.px(35))
    detail = 0.2 * _noise(rng, grid.shape, grid.px(6))
    return (low + detail).astype(np.float32), low.astype(np.float32)


@dataclass(frozen=True)
class _Pit:
    """Pit geometry: centre, rim shape and bench design; ``sd`` is the inward distance to the rim."""

    centre: tuple[float, float]
    sd: np.ndarray
    bench_height: float
    face_run: float
    bench_run: float
    n_benches: int

    @property
    def depth(self) -> float:
        return self.n_benches * self.bench_height

    @property
    def floor_start(self) -> float:
        """Inward distance from the rim at which the last bench face meets the floor."""
        return (self.n_benches - 1) * self.bench_run + self.face_run


def _design_pit(grid: _Grid, rng: np.random.Generator) -> _Pit:
    """Chooses the rim outline and bench design; the rim is a smooth, mildly irregular loop."""
    cx, cy = grid.extent * (0.5 + rng.uniform(-0.03, 0.03, size=2))
    r0 = 0.37 * grid.extent
    amps = [rng.uniform(0.05, 0.10), rng.uniform(0.0, 0.04), rng.uniform(0.0, 0.025)]
    phases = rng.uniform(0, 2 * np.pi, size=3)
    theta = np.arctan2(grid.y - cy, grid.x - cx)
    rim = r0 * (1 + sum(a * np.cos((i + 2) * theta - ph) for i, (a, ph) in enumerate(zip(amps, phases))))
    inside = np.hypot(grid.x - cx, grid.y - cy) < rim
    sd = (ndimage.distance_transform_edt(inside, sampling=grid.p)
          - ndimage.distance_transform_edt(~inside, sampling=grid.p)).astype(np.float32)
    height = rng.uniform(8.5, 11.5) * grid.k
    face_run = height / math.tan(math.radians(rng.uniform(60.0, 70.0)))
    available = 0.72 * r0 * (1 - sum(amps))
    n_benches = int(np.clip(round(available / (face_run + rng.uniform(5.0, 7.5) * grid.k)), 2, 8))
    berm = float(np.clip(available / n_benches - face_run, 3.0 * grid.k, 8.0 * grid.k))
    return _Pit(centre=(float(cx), float(cy)), sd=sd, bench_height=float(height), face_run=float(face_run),
                bench_run=float(face_run + berm), n_benches=n_benches)


def _bench_depth(pit: _Pit, d: np.ndarray) -> np.ndarray:
    """Depth below the rim of the benched wall at inward distance ``d`` (negative: rises outside)."""
    k = np.floor(d / pit.bench_run)
    phase = d - k * pit.bench_run
    depth = pit.bench_height * (k + np.clip(phase / pit.face_run, 0.0, 1.0))
    steep = pit.bench_height / pit.face_run
    depth = np.where(d < 0, d * steep, depth)
    return np.minimum(depth, pit.depth)


def _pit_surface(grid: _Grid, pit: _Pit, z_natural: np.ndarray, z_rim: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Cuts the benched pit into the natural terrain; the floor dishes gently towards its middle."""
    # Blasted crests are never perfectly regular: wobble the distance that sets the benches.
    d = pit.sd + 0.35 * grid.k * _noise(rng, grid.shape, grid.px(7))
    depth = _bench_depth(pit, d)
    into_floor = np.clip((pit.sd - pit.floor_start) / (10.0 * grid.k), 0.0, 1.0)
    floor_relief = rng.uniform(1.5, 3.0) * grid.k * into_floor + 0.4 * _noise(rng, grid.shape, grid.px(6)) * into_floor
    return np.minimum(z_natural, z_rim - depth - floor_relief).astype(np.float32)


@dataclass(frozen=True)
class _Site:
    """The mine before any landslide: surface elevation and the land-cover layout."""

    z: np.ndarray
    pit: _Pit
    road: _Road
    water: np.ndarray
    buildings: list[_Building]


def _build_site(grid: _Grid, rngs: dict[str, np.random.Generator]) -> _Site:
    """Terrain, benched pit, haul road, pond and buildings, with the DEM they imply."""
    z_natural, z_low = _natural_terrain(grid, rngs["terrain"])
    pit = _design_pit(grid, rngs["pit"])
    road = _haul_road(grid, pit, rngs["road"])
    z_rim = _sample(z_low, grid, *road.start)
    z = _pit_surface(grid, pit, z_natural, z_rim, rngs["pit"])
    z = _grade_roads(z, z_low, road, z_rim)
    z, water = _pond(grid, pit, road, z, rngs["water"])
    z = _smooth_edges(grid, z, water)
    buildings = _place_buildings(grid, pit, road, rngs["buildings"])
    return _Site(z=_raise_buildings(grid, z, buildings), pit=pit, road=road, water=water, buildings=buildings)


# --- haul road ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Road:
    """The haul road: ``dist`` (m) to its centreline; ``depth`` below the rim of the nearest
    centreline point of the ramp (NaN along the access road, which follows the terrain)."""

    width: float
    start: tuple[float, float]
    dist: np.ndarray
    depth: np.ndarray

    @property
    def on_ramp(self) -> np.ndarray:
        return ~np.isnan(self.depth)


@dataclass(frozen=True)
class _RayTable:
    """Radius along rays from the pit centre at which the rim distance reaches given values."""

    rho: np.ndarray  # (n_angles, n_distances)
    d0: float
    dd: float
    centre: tuple[float, float]

    def radius(self, theta: float, d: float) -> float:
        n = self.rho.shape[0]
        fi = (theta % (2 * np.pi)) / (2 * np.pi) * n
        fj = float(np.clip((d - self.d0) / self.dd, 0, self.rho.shape[1] - 1.001))
        i0, j0 = int(fi) % n, int(fj)
        ti, tj = fi - math.floor(fi), fj - j0
        i1 = (i0 + 1) % n
        top = self.rho[i0, j0] * (1 - tj) + self.rho[i0, j0 + 1] * tj
        bottom = self.rho[i1, j0] * (1 - tj) + self.rho[i1, j0 + 1] * tj
        return float(top * (1 - ti) + bottom * ti)

    def points(self, theta: float, depths: np.ndarray, grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
        """Pixel rows and columns (clipped to the scene) of the given rim distances along a ray."""
        radii = np.array([self.radius(theta, d) for d in depths])
        rows = np.clip(np.floor(grid.px(self.centre[1] + radii * math.sin(theta))), 0, grid.n - 1).astype(int)
        cols = np.clip(np.floor(grid.px(self.centre[0] + radii * math.cos(theta))), 0, grid.n - 1).astype(int)
        return rows, cols


def _ray_table(grid: _Grid, pit: _Pit, margin: float) -> _RayTable:
    """Tabulates, per direction, where each rim distance lies, to trace paths along the walls."""
    thetas = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    rho = np.arange(0.0, 0.75 * grid.extent, grid.p / 2)
    cx, cy = pit.centre
    rows = grid.px(cy + rho[None, :] * np.sin(thetas)[:, None]) - 0.5
    cols = grid.px(cx + rho[None, :] * np.cos(thetas)[:, None]) - 0.5
    profile = ndimage.map_coordinates(pit.sd, [rows, cols], order=1, mode="nearest")
    # Running maximum from the outside in makes each ray's distance monotonic for interpolation.
    inward = np.maximum.accumulate(profile[:, ::-1], axis=1) + 1e-6 * np.arange(rho.size)
    d_values = np.arange(-margin, pit.floor_start + margin, grid.p / 2)
    table = np.stack([np.interp(d_values, row, rho[::-1]) for row in inward])
    return _RayTable(rho=table, d0=float(d_values[0]), dd=float(grid.p / 2), centre=pit.centre)


def _trace_ramp(pit: _Pit, table: _RayTable, theta0: float, turn: int, width: float, grade: float,
                step: float) -> np.ndarray:
    """Centreline (x, y, depth below rim) of a ramp descending the walls at a constant grade."""
    cx, cy = pit.centre
    wall_slope = pit.bench_height / pit.bench_run
    theta, s, points = theta0, 0.0, []
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


def _trace_access(grid: _Grid, start: tuple[float, float], theta0: float, turn: int,
                  rng: np.random.Generator, step: float) -> np.ndarray:
    """Centreline of the access road: leaves the ramp head along the rim and bends out of the scene."""
    heading = theta0 - turn * (np.pi / 2 - rng.uniform(0.35, 0.6))
    target = theta0 + rng.uniform(-0.4, 0.4)
    bend_length = rng.uniform(20.0, 40.0) * grid.k
    x, y = start
    points = []
    while -10 < x < grid.extent + 10 and -10 < y < grid.extent + 10 and len(points) < 100_000:
        points.append((x, y, np.nan))
        heading += (target - heading) * min(1.0, step / bend_length)
        x, y = x + step * math.cos(heading), y + step * math.sin(heading)
    return np.array(points)


def _haul_road(grid: _Grid, pit: _Pit, rng: np.random.Generator) -> _Road:
    """Traces the ramp and the access road and measures every pixel's distance to them."""
    width = rng.uniform(8.0, 11.0) * grid.k
    grade = rng.uniform(0.09, 0.10)
    theta0, turn = rng.uniform(0, 2 * np.pi), int(rng.choice([-1, 1]))
    step = grid.p / 2
    table = _ray_table(grid, pit, margin=2 * width)
    ramp = _trace_ramp(pit, table, theta0, turn, width, grade, step)
    start = (float(ramp[0, 0]), float(ramp[0, 1]))
    access = _trace_access(grid, start, theta0, turn, rng, step)
    line = np.vstack([access[::-1], ramp])
    return _Road(width=width, start=start, **_distance_to_line(grid, line))


def _distance_to_line(grid: _Grid, line: np.ndarray) -> dict[str, np.ndarray]:
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


def _grade_roads(z: np.ndarray, z_low: np.ndarray, road: _Road, z_rim: float) -> np.ndarray:
    """Lays the road surface: the ramp at its grade, the access road on the smoothed terrain."""
    edge = 1.0
    alpha = np.clip((road.width / 2 + edge - road.dist) / edge, 0.0, 1.0)
    on_ramp = road.on_ramp
    surface = np.where(on_ramp, z_rim - np.nan_to_num(road.depth), z_low)
    # Safety windrow of loose rock along the ramp edges, as mines are required to keep.
    windrow = 0.6 * np.exp(-(((road.dist - (road.width / 2 - 0.5)) / 0.35) ** 2)) * on_ramp
    return (alpha * (surface + windrow) + (1 - alpha) * z).astype(np.float32)


# --- water, buildings -----------------------------------------------------------------------------


def _pond(grid: _Grid, pit: _Pit, road: _Road, z: np.ndarray,
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


def _smooth_edges(grid: _Grid, z: np.ndarray, water: np.ndarray) -> np.ndarray:
    """Rounds bench crests and road edges like a photogrammetric DEM does; keeps water flat."""
    level = z[water][0] if water.any() else None
    z = ndimage.gaussian_filter(z, grid.px(0.3)).astype(np.float32)
    if level is not None:
        z[water] = level
    return z


@dataclass(frozen=True)
class _Building:
    footprint: Polygon  # scene metres
    yard: Polygon
    height: float
    roof: _Rgb


_ROOFS: tuple[_Rgb, ...] = ((214, 214, 210), (228, 226, 220), (200, 203, 206), (176, 192, 208), (205, 200, 188))


def _place_buildings(grid: _Grid, pit: _Pit, road: _Road, rng: np.random.Generator) -> list[_Building]:
    """A few site buildings near the rim, clear of the pit, the road and each other."""
    wanted = int(np.clip(round(rng.uniform(2.5, 4.5) * grid.extent / 256.0), 1, 8))
    size = float(np.clip(grid.extent / 256.0, 0.5, 1.0))
    near_rim = (pit.sd < -4.0 * grid.k) & (pit.sd > -30.0 * grid.k) & (road.dist > road.width / 2 + 4.0 * grid.k)
    candidates = np.flatnonzero(near_rim)
    blocked = ~near_rim
    placed: list[_Building] = []
    for _ in range(400):
        if len(placed) == wanted or candidates.size == 0:
            break
        building = _random_building(grid, pit, rng, candidates, size)
        window = _window(building.yard, grid, 0.0)
        inside = _within_scene(building.yard, grid, 1.0)
        if inside and not (blocked[window] & _burn(building.yard, grid, window)).any():
            placed.append(building)
            grown = building.yard.buffer(3.0 * grid.k)
            w = _window(grown, grid, 0.0)
            blocked[w] |= _burn(grown, grid, w)
    return placed


def _random_building(grid: _Grid, pit: _Pit, rng: np.random.Generator, candidates: np.ndarray,
                     size: float) -> _Building:
    row, col = np.unravel_index(int(rng.choice(candidates)), grid.shape)
    x, y = (col + 0.5) * grid.p, (row + 0.5) * grid.p
    length, width = rng.uniform(8.0, 18.0) * size, rng.uniform(5.0, 10.0) * size
    along_rim = math.atan2(y - pit.centre[1], x - pit.centre[0]) + np.pi / 2 + rng.uniform(-0.2, 0.2)
    rect = box(-length / 2, -width / 2, length / 2, width / 2)
    footprint = affinity.translate(affinity.rotate(rect, along_rim, use_radians=True, origin=(0, 0)), x, y)
    yard = footprint.buffer(rng.uniform(2.0, 4.0) * size, join_style="mitre")
    roof = _ROOFS[int(rng.integers(len(_ROOFS)))]
    return _Building(footprint=footprint, yard=yard, height=float(rng.uniform(3.0, 7.0)), roof=roof)


def _within_scene(geom: BaseGeometry, grid: _Grid, margin: float) -> bool:
    x0, y0, x1, y1 = geom.bounds
    return min(x0, y0) >= margin and max(x1, y1) <= grid.extent - margin


def _raise_buildings(grid: _Grid, z: np.ndarray, buildings: list[_Building]) -> np.ndarray:
    """Flat roofs a few metres above the levelled ground of each building's footprint."""
    z = z.copy()
    for b in buildings:
        window = _window(b.yard, grid, 0.0)
        yard, footprint = _burn(b.yard, grid, window), _burn(b.footprint, grid, window)
        patch = z[window]
        ground = float(np.median(patch[yard]))
        patch[yard] = ground
        patch[footprint] = ground + b.height
    return z


# --- landslides -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Slide:
    """A landslide in scene metres: its true outline and its downslope frame."""

    outline: Polygon
    centre: tuple[float, float]
    downslope: tuple[float, float]
    length: float
    scarp_drop: float
    deposit_height: float


def _place_landslides(grid: _Grid, pit: _Pit, road: _Road, water: np.ndarray, n: int,
                      rng: np.random.Generator) -> list[_Slide]:
    """Places ``n`` landslides on the pit walls, clear of roads, water, buildings and each other."""
    clearance = 2.0 * grid.k
    near_water = ndimage.distance_transform_edt(~water, sampling=grid.p) < clearance if water.any() else water
    blocked = (pit.sd < clearance) | (road.dist < road.width / 2 + clearance) | near_water
    blocked[:, :2], blocked[:, -2:], blocked[:2, :], blocked[-2:, :] = True, True, True, True
    table = _ray_table(grid, pit, margin=18.0 * grid.k)
    slides: list[_Slide] = []
    failures = 0
    while len(slides) < n:
        shrink = max(0.9 ** (failures // 30), 0.3)  # give up on long slides where the walls are crowded
        slide = _random_slide(grid, pit, table, blocked, rng, shrink)
        if slide is not None and _fits(grid, slide.outline, blocked):
            slides.append(slide)
            grown = slide.outline.buffer(clearance)
            window = _window(grown, grid, 0.0)
            blocked[window] |= _burn(grown, grid, window)
            continue
        failures += 1
        if failures > 1500:
            raise RuntimeError(f"could fit only {len(slides)} of {n} landslides on the pit walls; "
                               "ask for fewer or a larger scene")
    return slides


def _fits(grid: _Grid, outline: Polygon, blocked: np.ndarray) -> bool:
    window = _window(outline, grid, 0.0)
    mask = _burn(outline, grid, window)
    return _within_scene(outline, grid, 2.0) and mask.sum() > 20 and not (blocked[window] & mask).any()


def _free_run(grid: _Grid, table: _RayTable, blocked: np.ndarray, theta: float,
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


def _random_slide(grid: _Grid, pit: _Pit, table: _RayTable, blocked: np.ndarray,
                  rng: np.random.Generator, shrink: float) -> _Slide | None:
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
    return _Slide(outline=outline, centre=(cx, cy), downslope=(ux, uy), length=length,
                  scarp_drop=rng.uniform(1.0, 4.0) * amplitude, deposit_height=rng.uniform(1.0, 3.0) * amplitude)


def _downslope(grid: _Grid, pit: _Pit, x: float, y: float) -> tuple[float, float]:
    """Unit vector of increasing rim distance (down the wall) at a point."""
    h = 2.0
    gx = _sample(pit.sd, grid, x + h, y) - _sample(pit.sd, grid, x - h, y)
    gy = _sample(pit.sd, grid, x, y + h) - _sample(pit.sd, grid, x, y - h)
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


def _slide_frame(grid: _Grid, slide: _Slide, window: tuple[slice, slice]) -> np.ndarray:
    """Normalised downslope coordinate of the window's pixels: -1 at the head, +1 at the toe."""
    rows, cols = window
    x = grid.x[:, cols] - slide.centre[0]
    y = grid.y[rows, :] - slide.centre[1]
    return (x * slide.downslope[0] + y * slide.downslope[1]) / (slide.length / 2)


def _disturb_dem(grid: _Grid, pit: _Pit, z: np.ndarray, slides: list[_Slide], ids: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """Each slide smooths the benches away, drops a head scarp and piles a rough toe deposit."""
    z = z.copy()
    # Smoothing over about half a bench period erases the terraces, as failed material does.
    sigma = 0.45 * pit.bench_run
    for number, slide in enumerate(slides, start=1):
        window = _window(slide.outline, grid, 3.5 * sigma)
        mask = (ids[window] == number).astype(np.float32)
        soft = np.clip(ndimage.gaussian_filter(mask, grid.px(0.35)) * 1.6 - 0.3, 0.0, 1.0)
        patch = z[window]
        smooth = ndimage.gaussian_filter(patch, grid.px(sigma), mode="nearest")
        u = _slide_frame(grid, slide, window)
        head, toe = _smoothstep((0.05 - u) / 0.6), _smoothstep(u / 0.45)
        # Smoothing alone can raise a head or lower a toe locally; offsetting it keeps the mass
        # balance of a slide: the head (depletion zone) loses material, the toe gains it.
        change = smooth - patch
        inside = mask > 0.5
        excess = max(_zone_mean(change, inside & (u < 0)), 0.0)
        deficit = min(_zone_mean(change, inside & (u > 0)), 0.0)
        hummocks = rng.uniform(0.1, 0.2) * _noise(rng, mask.shape, grid.px(1.0)) * (0.6 + 0.4 * (u > 0))
        change += hummocks - head * (slide.scarp_drop + excess) + toe * (slide.deposit_height - deficit)
        z[window] = patch + soft * change
    return z


def _zone_mean(values: np.ndarray, zone: np.ndarray) -> float:
    return float(values[zone].mean()) if zone.any() else 0.0


def _hand_drawn(outline: Polygon, k: float, rng: np.random.Generator) -> Polygon:
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


# --- image ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sun:
    azimuth: float  # radians clockwise from north
    altitude: float  # radians

    def shadow_offset(self, height: float) -> tuple[float, float]:
        """Scene-metre offset (x east, y south) of the shadow cast by something ``height`` tall."""
        reach = height / math.tan(self.altitude)
        return -reach * math.sin(self.azimuth), reach * math.cos(self.azimuth)


def _render_image(grid: _Grid, z: np.ndarray, site: _Site, slides: list[_Slide], ids: np.ndarray,
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


def _colour(base: _Rgb, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.asarray(base, dtype=np.float32), (*shape, 3)).copy()


def _vegetation(grid: _Grid, sun: _Sun, rng: np.random.Generator) -> np.ndarray:
    """Grass of varying dryness under clumps of tree crowns that cast short shadows."""
    lush = 1 / (1 + np.exp(-1.5 * _noise(rng, grid.shape, grid.px(25))))
    lush = lush[..., None]
    rgb = _colour((132, 130, 86), grid.shape) * (1 - lush) + _colour((84, 112, 56), grid.shape) * lush
    rgb += 7 * _noise(rng, grid.shape, grid.px(0.5))[..., None]
    cover = _noise(rng, grid.shape, grid.px(2.5)) + 0.8 * _noise(rng, grid.shape, grid.px(30))
    canopy = cover > 0.5
    crown = ndimage.gaussian_filter(canopy.astype(np.float32), grid.px(0.7))
    dx, dy = sun.shadow_offset(1.5)
    shadow = _shift(canopy, grid.px(dy), grid.px(dx)) & ~canopy
    rgb[shadow] *= 0.62
    trees = _colour((46, 76, 38), grid.shape) * (0.7 + 0.45 * crown[..., None])
    trees += 9 * _noise(rng, grid.shape, grid.px(0.4))[..., None]
    _blend(rgb, trees, np.clip(crown * 1.4 - 0.2, 0, 1))
    return rgb


def _shift(mask: np.ndarray, rows: float, cols: float) -> np.ndarray:
    """Mask moved by whole pixels, filling with False."""
    r, c = int(round(rows)), int(round(cols))
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(r, 0):h + min(r, 0), max(c, 0):w + min(c, 0)] = mask[max(-r, 0):h - max(r, 0), max(-c, 0):w - max(c, 0)]
    return out


def _paint_rim_apron(grid: _Grid, rgb: np.ndarray, pit: _Pit, rng: np.random.Generator) -> None:
    """Trampled, bare ground around the rim where machines work."""
    reach = (4.0 + 2.0 * _noise(rng, grid.shape, grid.px(10))) * grid.k
    alpha = np.clip((reach + pit.sd) / (2.0 * grid.k), 0, 1)
    ground = _colour((150, 143, 124), grid.shape) + 9 * _noise(rng, grid.shape, grid.px(0.6))[..., None]
    _blend(rgb, ground, alpha)


def _paint_rock(grid: _Grid, rgb: np.ndarray, pit: _Pit, rng: np.random.Generator) -> None:
    """Grey-blue bench rock with bench-parallel streaks; berms dustier, the floor muddier."""
    inside = pit.sd > 0
    d = pit.sd[inside]
    bench = np.clip(np.floor(d / pit.bench_run).astype(int), 0, pit.n_benches)
    tones = rng.uniform(-10, 10, size=pit.n_benches + 1)[bench]
    warmth = rng.uniform(-4, 14, size=pit.n_benches + 1)[bench]  # some benches are oxidised
    wobble = 0.6 * grid.k * _noise(rng, grid.shape, grid.px(12))[inside]
    streak_scale = grid.px(0.35) * 2
    streaks = _noise_1d(rng, int((pit.floor_start + 20) / (grid.p / 2)) + 2, streak_scale)
    streak = np.interp((d + wobble) / (grid.p / 2), np.arange(streaks.size), streaks)
    phase = d - np.floor(d / pit.bench_run) * pit.bench_run
    face = (phase < pit.face_run) & (d < pit.floor_start)
    floor = d >= pit.floor_start
    lum = 121 + tones + 8 * streak * np.where(face, 1.0, 0.5) + 6 * _noise(rng, grid.shape, grid.px(8))[inside]
    lum += 5 * _noise(rng, grid.shape, 1.5)[inside] + np.where(face, 0, 9)
    warm = warmth + np.where(face, 0, 4) + np.where(floor, 8, 0)
    rock = np.stack([lum + warm * 0.6, lum + 3 + warm * 0.2, lum + 10 - warm * 0.5], axis=-1)
    rgb[inside] = rock.astype(np.float32)


def _paint_road(grid: _Grid, rgb: np.ndarray, road: _Road, pit: _Pit, rng: np.random.Generator) -> None:
    """Bright, smooth compacted gravel with faint wheel tracks and rubble windrows on the ramp."""
    half = road.width / 2
    near = road.dist < half + 1.0
    dist = road.dist[near]
    tracks = sum(np.exp(-(((dist - off * half) / 0.35) ** 2)) for off in (0.25, 0.65))
    lum = 178 + 4 * _noise(rng, grid.shape, grid.px(6))[near] - 7 * tracks + 2 * _noise(rng, grid.shape, 1.5)[near]
    surface = np.stack([lum + 8, lum + 2, lum - 12], axis=-1)
    on_ramp = road.on_ramp[near] & (pit.sd[near] > 0)
    rubble_zone = on_ramp & (dist > half - 1.0)
    rubble = 132 + 14 * _noise(rng, grid.shape, 1.2)[near][rubble_zone]
    surface[rubble_zone] = np.stack([rubble + 4, rubble + 1, rubble - 4], axis=-1)
    alpha = np.clip(half + 0.5 - dist, 0, 1)[:, None]
    rgb[near] = rgb[near] * (1 - alpha) + surface * alpha


def _paint_water(grid: _Grid, rgb: np.ndarray, water: np.ndarray, rng: np.random.Generator) -> None:
    """Dark, very smooth green-blue water with a wet muddy shore."""
    if not water.any():
        return
    shore = ndimage.binary_dilation(water, iterations=max(1, int(round(grid.px(0.8))))) & ~water
    rgb[shore] = rgb[shore] * 0.45 + np.array([50, 48, 42], dtype=np.float32) * 0.55
    tint = 2.0 * _noise(rng, grid.shape, grid.px(20))[water]
    rgb[water] = np.stack([30 + tint, 57 + tint, 60 + 1.5 * tint], axis=-1)


_SOILS: tuple[_Rgb, ...] = ((198, 172, 132), (188, 162, 124), (206, 184, 146), (184, 166, 138))


def _paint_landslides(grid: _Grid, rgb: np.ndarray, slides: list[_Slide], ids: np.ndarray,
                      rng: np.random.Generator) -> None:
    """Freshly exposed, rough soil: brighter and browner than the rock, with clods and boulders."""
    for number, slide in enumerate(slides, start=1):
        window = _window(slide.outline, grid, 1.0)
        mask = (ids[window] == number).astype(np.float32)
        alpha = np.clip(ndimage.gaussian_filter(mask, grid.px(0.35)) * 1.5 - 0.25, 0, 1)
        patch = rgb[window]
        soil = _soil_texture(grid, slide, window, patch, rng)
        _blend(patch, soil, alpha)


def _soil_texture(grid: _Grid, slide: _Slide, window: tuple[slice, slice], under: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """Soil colour mixed with the rock it came from, with clods, boulders and a fresh scarp zone."""
    shape = under.shape[:2]
    base = np.asarray(_SOILS[int(rng.integers(len(_SOILS)))], dtype=np.float32)
    rock_share = rng.uniform(0.15, 0.35)
    soil = base * (1 - rock_share) + under * rock_share
    u = _slide_frame(grid, slide, window)
    fresh = _smoothstep((-0.45 - u) / 0.4)[..., None]  # the head scarp exposes lighter, yellower ground
    soil += fresh * np.array([14, 12, 4], dtype=np.float32)
    clods = 20 * _noise(rng, shape, 1.2) + 9 * _noise(rng, shape, grid.px(1.5))
    debris = _noise(rng, shape, grid.px(0.9)) > 1.0  # rock fragments in the soil
    soil[debris] = soil[debris] * 0.55 + under[debris] * 0.45
    boulders = rng.random(shape) < 0.012
    boulders = ndimage.binary_dilation(boulders, iterations=max(1, int(round(grid.px(0.25)))))
    lum = clods + 38 * boulders - 34 * (_shift(boulders, 1, 1) & ~boulders)
    return soil + lum[..., None]


def _shading(grid: _Grid, z: np.ndarray, sun: _Sun) -> np.ndarray:
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


def _paint_buildings(grid: _Grid, rgb: np.ndarray, buildings: list[_Building], sun: _Sun,
                     rng: np.random.Generator) -> None:
    """Gravel yards, cast shadows and bright flat roofs with a darker parapet."""
    for b in buildings:
        window = _window(b.yard.union(affinity.translate(b.footprint, *sun.shadow_offset(b.height))), grid, 1.0)
        patch = rgb[window]
        yard = _burn(b.yard, grid, window)
        gravel = 166 + 4 * _noise(rng, yard.shape, 1.5)
        patch[yard] = np.stack([gravel + 2, gravel - 2, gravel - 12], axis=-1)[yard]
        shadow = _burn(_shadow(b, sun), grid, window)
        patch[shadow] *= 0.5
        roof = _burn(b.footprint, grid, window)
        inner = _burn(b.footprint.buffer(-0.35), grid, window)
        patch[roof] = np.asarray(b.roof, dtype=np.float32) * 0.8
        patch[inner] = np.asarray(b.roof, dtype=np.float32) + rng.normal(0, 1.5, size=(int(inner.sum()), 1))


def _shadow(building: _Building, sun: _Sun) -> BaseGeometry:
    """Ground area shaded by a box-shaped building."""
    cast = affinity.translate(building.footprint, *sun.shadow_offset(building.height))
    return building.footprint.union(cast).convex_hull.difference(building.footprint)


# --- writing --------------------------------------------------------------------------------------


def _ensure_free(out_dir: Path) -> None:
    if out_dir.exists() and not (out_dir.is_dir() and not any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} already exists and is not empty")


def _publish(staging: Path, out_dir: Path) -> None:
    """Renames the finished staging folder to ``out_dir`` (replacing an empty folder)."""
    _ensure_free(out_dir)
    if out_dir.is_dir():
        out_dir.rmdir()
    try:
        os.replace(staging, out_dir)
    except OSError as err:
        raise FileExistsError(f"{out_dir} appeared while the survey was generated") from err


def _survey_paths(directory: Path) -> SyntheticSurvey:
    return SyntheticSurvey(directory=directory, image=directory / IMAGE_NAME, dem=directory / DEM_NAME,
                           landslides=directory / LABELS_NAME, ground_truth=directory / GROUND_TRUTH_NAME)


def _write_scene(directory: Path, scene: SyntheticScene, spec: SyntheticSurveySpec) -> None:
    paths = _survey_paths(directory)
    _write_image(paths.image, scene.image, spec)
    _write_dem(paths.dem, scene.dem, spec)
    _write_labels(paths.landslides, scene.labels, spec)
    _write_ground_truth(paths.ground_truth, scene.ground_truth, spec)


def _profile(spec: SyntheticSurveySpec, count: int, dtype: str, predictor: int) -> dict:
    profile = dict(driver="GTiff", width=spec.size_px, height=spec.size_px, count=count, dtype=dtype,
                   crs=spec.crs, transform=_map_transform(spec), compress="deflate", predictor=predictor)
    if spec.size_px >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    return profile


def _write_image(path: Path, image: np.ndarray, spec: SyntheticSurveySpec) -> None:
    with rasterio.open(path, "w", photometric="RGB", **_profile(spec, 3, "uint8", 2)) as dst:
        dst.write(image)
        for band, name in enumerate(BAND_NAMES, start=1):
            dst.set_band_description(band, name)
        dst.update_tags(source="synthetic open-pit survey", seed=str(spec.seed))


def _write_dem(path: Path, dem: np.ndarray, spec: SyntheticSurveySpec) -> None:
    with rasterio.open(path, "w", nodata=DEM_NODATA, **_profile(spec, 1, "float32", 3)) as dst:
        dst.write(dem, 1)
        dst.set_band_description(1, "elevation")
        dst.units = ("metre",)


def _write_ground_truth(path: Path, truth: np.ndarray, spec: SyntheticSurveySpec) -> None:
    with rasterio.open(path, "w", **_profile(spec, 1, "uint8", 2)) as dst:
        dst.write(truth, 1)
        dst.set_band_description(1, "landslide")
        dst.update_tags(description="true landslide pixels (1); present only for synthetic surveys")


def _write_labels(path: Path, polygons: list[Polygon], spec: SyntheticSurveySpec) -> None:
    frame = gpd.GeoDataFrame({"landslide_id": np.arange(1, len(polygons) + 1, dtype=np.int64)},
                             geometry=gpd.GeoSeries(polygons, crs=spec.crs), crs=spec.crs)
    frame.to_file(path, layer=LABELS_LAYER, driver="GPKG", geometry_type="Polygon")
