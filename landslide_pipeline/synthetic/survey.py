"""A seeded synthetic survey of an open-pit mine: the spec, the scene in memory, and its files.

``generate_survey`` writes the same folder layout as a user's real survey (``data/raw/<survey_id>/``):
the RGB orthomosaic, the DEM (metres) and hand-drawn-style landslide labels, plus the exact
landslide mask as ground truth, which only synthetic surveys have. Each scene component draws from
its own random stream, so a spec that differs only in ``n_landslides`` gives the same pit, roads,
water and buildings; with ``n_landslides=0`` it is the undisturbed baseline of the same scene.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.transform import Affine, from_origin
from shapely import affinity
from shapely.geometry import Polygon

from landslide_pipeline.layout import GROUND_TRUTH, RAW_DEM, RAW_IMAGE, RAW_LABELS, SURVEY_CONFIG
from landslide_pipeline.synthetic.grid import Grid, rasterize_ids
from landslide_pipeline.synthetic.landslides import disturb_dem, hand_drawn, place_landslides
from landslide_pipeline.synthetic.render import render_image
from landslide_pipeline.synthetic.site import build_site

LABELS_LAYER = "landslides"
DEM_NODATA = -9999.0
BAND_NAMES = ("red", "green", "blue")

_MIN_EXTENT_M = 48.0
_STREAMS = (
    "terrain", "pit", "road", "water", "buildings", "landslides", "labels", "image", "dem_noise", "slide_image",
)


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
        with_dem: Write the DEM (without it: a survey only an image-only model can map).
        with_labels: Write the hand-drawn labels (without them: a survey only object-oriented
            labels can train on).
        role: The survey.toml role to write ("map": map only, never train on), or None for no
            survey.toml.
    """

    size_px: int = 1024
    pixel_size_m: float = 0.25
    crs: str = "EPSG:32650"
    origin: tuple[float, float] = (500_000.0, 4_400_000.0)
    n_landslides: int = 8
    seed: int = 0
    with_dem: bool = True
    with_labels: bool = True
    role: str | None = None

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
    grid = Grid(spec.size_px, spec.pixel_size_m)
    site = build_site(grid, rngs)
    slides = place_landslides(grid, site.pit, site.road, site.water, spec.n_landslides, rngs["landslides"])
    outlines = [_to_map(s.outline, spec) for s in slides]
    ids = rasterize_ids(outlines, grid, _map_transform(spec))
    z = disturb_dem(grid, site.pit, site.z, slides, ids, rngs["landslides"])
    image = render_image(grid, z, site, slides, ids, (rngs["image"], rngs["slide_image"]))
    dem = (z + 0.03 * rngs["dem_noise"].standard_normal(z.shape)).astype(np.float32)
    labels = [hand_drawn(o, grid.k, rngs["labels"]) for o in outlines]
    return SyntheticScene(image=image, dem=dem, ground_truth=(ids > 0).astype(np.uint8),
                          true_outlines=outlines, labels=labels)


def _random_streams(seed: int) -> dict[str, np.random.Generator]:
    """One independent generator per scene component (appending a name keeps the others)."""
    sequences = np.random.SeedSequence([seed, 0x0BE7]).spawn(len(_STREAMS))
    return {name: np.random.default_rng(seq) for name, seq in zip(_STREAMS, sequences)}


def _map_transform(spec: SyntheticSurveySpec) -> Affine:
    return from_origin(spec.origin[0], spec.origin[1], spec.pixel_size_m, spec.pixel_size_m)


def _to_map(geom: Polygon, spec: SyntheticSurveySpec) -> Polygon:
    """Scene metres (y down from the top edge) to map coordinates (y north)."""
    return affinity.affine_transform(geom, [1, 0, 0, -1, spec.origin[0], spec.origin[1]])


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
    return SyntheticSurvey(directory=directory, image=directory / RAW_IMAGE, dem=directory / RAW_DEM,
                           landslides=directory / RAW_LABELS[0], ground_truth=directory / GROUND_TRUTH)


def _write_scene(directory: Path, scene: SyntheticScene, spec: SyntheticSurveySpec) -> None:
    paths = _survey_paths(directory)
    _write_image(paths.image, scene.image, spec)
    if spec.with_dem:
        _write_dem(paths.dem, scene.dem, spec)
    if spec.with_labels:
        _write_labels(paths.landslides, scene.labels, spec)
    _write_ground_truth(paths.ground_truth, scene.ground_truth, spec)
    if spec.role is not None:
        (directory / SURVEY_CONFIG).write_text(f'role = "{spec.role}"\n')


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
