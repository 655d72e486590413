"""Pre-cut tile data sets: pairing images with masks, checking them, and writing pipeline tiles.

A data set tile becomes one pipeline tile when it is ``tile_size`` square; otherwise (e.g. the
600x600 Tianshui tiles, or a data set cut at a side that is not a multiple of 32) it is re-cut
with the scene tiler's snapping grid into ``tile_size`` tiles, so every tile of the pipeline has
the same shape. Pre-cut tiles have no known place in a scene: their index rows carry
``row_off = col_off = -1`` and their footprint is drawn in the source tile's own pixel grid
(x = column, y = -row, no CRS); ``source``, ``source_row_off`` and ``source_col_off`` say where
in which data set tile a pipeline tile was cut.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine

from landslide_pipeline.datasets.adapter import DatasetAdapter
from landslide_pipeline.datasets.readers import ImageInfo, image_info, mask_shape, read_image, read_mask
from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.grid import TilingSpec, tile_offsets
from landslide_pipeline.geo.rasters import invalid_pixels
from landslide_pipeline.geo.tile_writer import BackgroundWrites, TileProfile, TileWriter
from landslide_pipeline.layout import MASK_FOLDER, TILE_IMAGES

UNPLACED = -1
#: A data set tile's own pixel grid, north up: x = column, y = -row, one unit a pixel.
PIXEL_GRID = Affine(1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class TilePair:
    """One data set tile: its key (the text matched by '*'), image file and mask file."""

    key: str
    image: Path
    mask: Path | None


@dataclass(frozen=True)
class DatasetSummary:
    """What inspecting a data set found."""

    n_tiles: int
    bands: int
    dtype: str
    sizes: tuple[tuple[int, int], ...]
    labelled: bool


def find_pairs(root: Path, adapter: DatasetAdapter) -> list[TilePair]:
    """Lists the data set's tiles in natural order (image_2 before image_10).

    Masks without an image are refused like images without a mask: either means the image and
    mask patterns do not pair the files as the data set intends (or a file is missing).

    Raises:
        SurveyInputError: no image matches, an image has no mask, a mask has no image, or two
            keys map to one tile id.
    """
    images = _match(root, adapter.image.pattern)
    if not images:
        raise SurveyInputError(root, f"no file matches the adapter's image pattern {adapter.image.pattern!r}")
    masks = _match(root, adapter.mask.pattern) if adapter.mask else {}
    if "*" not in adapter.image.pattern:  # a single pair, named after its image
        images = {path.stem: path for path in images.values()}
        masks = {key: mask for key in images for mask in masks.values()}
    if adapter.mask:
        missing = [key for key in images if key not in masks]
        if missing:
            expected = adapter.mask.pattern.replace("*", missing[0])
            raise SurveyInputError(images[missing[0]], f"no mask for {len(missing)} image(s); expected {expected}")
        orphans = sorted((key for key in masks if key not in images), key=natural_key)
        if orphans:
            expected = adapter.image.pattern.replace("*", orphans[0])
            raise SurveyInputError(masks[orphans[0]], f"no image for {len(orphans)} mask(s); expected {expected}")
    ids: dict[str, str] = {}
    for key in images:
        clash = ids.setdefault(source_id(key), key)
        if clash != key:
            raise SurveyInputError(images[key], f"tile id {source_id(key)!r} is also the id of {images[clash]}")
    return [TilePair(key, images[key], masks.get(key)) for key in sorted(images, key=natural_key)]


def source_id(key: str) -> str:
    """A data set tile's key as a tile id: characters other than letters, digits, _ . - become _."""
    return _UNSAFE_ID_CHARS.sub("_", key) or "tile"


def inspect_dataset(root: Path, adapter: DatasetAdapter) -> DatasetSummary:
    """Checks every tile's header: readable files, one band count and dtype, masks the image's size.

    Raises:
        SurveyInputError: naming the first file that is unreadable or does not fit.
    """
    pairs = find_pairs(root, adapter)
    first = image_info(pairs[0].image, adapter.image)
    sizes = set()
    for pair in pairs:
        info = image_info(pair.image, adapter.image) if pair is not pairs[0] else first
        _check_same_kind(pair.image, info, first, pairs[0].image)
        if pair.mask is not None and adapter.mask is not None:
            found = mask_shape(pair.mask, adapter.mask)
            if found != (info.height, info.width):
                raise SurveyInputError(pair.mask, f"mask is {found[0]}x{found[1]} px but its image {pair.image.name} "
                                                  f"is {info.height}x{info.width} px")
        sizes.add((info.height, info.width))
    return DatasetSummary(n_tiles=len(pairs), bands=first.count, dtype=first.dtype, sizes=tuple(sorted(sizes)),
                          labelled=adapter.mask is not None)


def tile_dataset(survey_id: str, root: Path, adapter: DatasetAdapter, out_dir: Path,
                 spec: TilingSpec) -> gpd.GeoDataFrame:
    """Writes every data set tile (re-cut where needed) as ``out_dir/image/<tile_id>.tif``.

    Returns:
        The tile index: survey_id, tile_id, row_off = col_off = -1, height, width,
        nodata_fraction, source, source_row_off, source_col_off, geometry (no CRS).
    """
    (out_dir / TILE_IMAGES).mkdir(parents=True, exist_ok=True)
    pairs = find_pairs(root, adapter)
    rows: list[dict] = []
    writer: TileWriter | None = None
    first: tuple[Path, ImageInfo] | None = None
    with BackgroundWrites() as writes:
        for pair in pairs:
            pixels, transparent = read_image(pair.image, adapter.image)
            info = ImageInfo(pixels.shape[1], pixels.shape[2], pixels.shape[0], str(pixels.dtype))
            first = first or (pair.image, info)
            _check_same_kind(pair.image, info, first[1], first[0])
            writer = writer or TileWriter(_profile(info, adapter, spec), PIXEL_GRID)
            jobs, kept = _cut(survey_id, pair, pixels, _invalid(pixels, transparent, adapter.nodata), writer, spec,
                              out_dir)
            writes.submit(_run_all, jobs)
            rows += kept
    if not rows:
        raise SurveyInputError(root, f"no tile has at most {spec.max_nodata_fraction:.0%} nodata")
    return _index(rows)


@dataclass(frozen=True)
class LabelledPair:
    """One data set tile read whole: its pixels, the pixels without data, and its mask."""

    key: str
    pixels: np.ndarray  # (bands, H, W) in the file's dtype
    invalid: np.ndarray | None  # (H, W) True where there is no data
    mask: np.ndarray  # (H, W) uint8 {0, 1}


def read_labelled_pairs(root: Path, adapter: DatasetAdapter) -> Iterator[LabelledPair]:
    """Every labelled tile of a data set, one at a time and in natural order, as tiling reads it.

    Raises:
        SurveyInputError: the adapter has no masks, no tile matches, or a tile is unreadable.
    """
    if adapter.mask is None:
        raise SurveyInputError(root, f"adapter {adapter.name!r} has no [mask]; the data set is unlabelled")
    for pair in find_pairs(root, adapter):
        pixels, transparent = read_image(pair.image, adapter.image)
        assert pair.mask is not None  # find_pairs pairs every image with a mask when the adapter names masks
        mask = read_mask(pair.mask, adapter.mask, pixels.shape[1:])
        yield LabelledPair(pair.key, pixels, _invalid(pixels, transparent, adapter.nodata), mask)


def _cut(survey_id: str, pair: TilePair, pixels: np.ndarray, invalid: np.ndarray | None, writer: TileWriter,
         spec: TilingSpec, out_dir: Path) -> tuple[list, list[dict]]:
    """The write jobs and index rows of the pipeline tiles cut from one data set tile."""
    jobs, rows = [], []
    for tile_id, row, col in cut_windows(pair, pixels.shape[1:], spec):
        window = (slice(row, row + spec.tile_size), slice(col, col + spec.tile_size))
        fraction = float(invalid[window].mean()) if invalid is not None else 0.0
        if fraction > spec.max_nodata_fraction:
            continue
        jobs.append(writer.prepare(out_dir / TILE_IMAGES / f"{tile_id}.tif", pixels[:, window[0], window[1]], row, col))
        rows.append(_index_row(survey_id, tile_id, pair.key, row, col, spec.tile_size, fraction))
    return jobs, rows


def label_dataset(index: pd.DataFrame, root: Path, adapter: DatasetAdapter, out_dir: Path) -> pd.DataFrame:
    """Writes ``out_dir/masks/<tile_id>.tif`` (uint8 {0, 1}) for every tile of the index.

    Returns:
        ``index`` with a ``landslide_fraction`` column.

    Raises:
        SurveyInputError: the adapter has no masks, or a mask is unreadable, of another size than
            its image, or holds values its encoding does not allow.
    """
    if adapter.mask is None:
        raise SurveyInputError(root, f"adapter {adapter.name!r} has no [mask]; the data set is unlabelled")
    (out_dir / MASK_FOLDER).mkdir(parents=True, exist_ok=True)
    pairs = {pair.key: pair for pair in find_pairs(root, adapter)}
    size = int(index["height"].iloc[0])
    writer = TileWriter(TileProfile(size, size, 1, "uint8", None, None, ("landslide",)), PIXEL_GRID)
    fractions = pd.Series(np.nan, index=index.index)
    with BackgroundWrites() as writes:
        for key, tiles in index.groupby("source", sort=False):
            pair = pairs[key]
            info = image_info(pair.image, adapter.image)
            assert pair.mask is not None and adapter.mask is not None  # checked on entry: the adapter names masks
            mask = read_mask(pair.mask, adapter.mask, (info.height, info.width))
            jobs = []
            for label, tile in tiles.iterrows():
                row, col = int(tile["source_row_off"]), int(tile["source_col_off"])
                piece = mask[row:row + size, col:col + size]
                jobs.append(writer.prepare(out_dir / MASK_FOLDER / f"{tile['tile_id']}.tif", piece[None], row, col))
                fractions[label] = float(piece.mean())
            writes.submit(_run_all, jobs)
    return index.assign(landslide_fraction=fractions)


def cut_windows(pair: TilePair, shape: tuple[int, int], spec: TilingSpec) -> Iterator[tuple[str, int, int]]:
    """(tile id, row, col) of each pipeline tile cut from one data set tile.

    A tile that is already ``tile_size`` square is kept whole under its own id; any other is
    re-cut and its pieces are named ``<id>_r<row>_c<col>``.

    Raises:
        SurveyInputError: the tile is smaller than ``tile_size``.
    """
    height, width = shape
    base = source_id(pair.key)
    if (height, width) == (spec.tile_size, spec.tile_size):
        yield base, 0, 0
        return
    try:
        rows, cols = tile_offsets(height, spec.tile_size, spec.step), tile_offsets(width, spec.tile_size, spec.step)
    except ValueError as err:
        raise SurveyInputError(pair.image, f"{height}x{width} px tile: {err}; lower tile_size") from err
    for row in rows:
        for col in cols:
            yield f"{base}_r{row:04d}_c{col:04d}", row, col


def _match(root: Path, pattern: str) -> dict[str, Path]:
    if "*" not in pattern:
        path = root / pattern
        return {"": path} if path.is_file() else {}
    before, after = pattern.split("*")
    regex = re.compile(re.escape(before) + r"([^/]*)" + re.escape(after) + r"\Z")
    found = {}
    for path in root.glob(pattern):
        match = regex.match(path.relative_to(root).as_posix())
        if match and path.is_file():
            found[match.group(1)] = path
    return found


def natural_key(key: str) -> list:
    """Sort key that orders embedded numbers by value (image_2 before image_10)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", key) if part]


def _check_same_kind(path: Path, info: ImageInfo, first: ImageInfo, first_path: Path) -> None:
    if (info.count, info.dtype) != (first.count, first.dtype):
        raise SurveyInputError(path, f"has {info.count} band(s) of {info.dtype}, but {first_path.name} has "
                                     f"{first.count} of {first.dtype}; every tile needs the same bands "
                                     "(select them with [image] bands)")


def _profile(info: ImageInfo, adapter: DatasetAdapter, spec: TilingSpec) -> TileProfile:
    return TileProfile(spec.tile_size, spec.tile_size, info.count, info.dtype, None, adapter.nodata,
                       (None,) * info.count, spec.compress)


def _invalid(pixels: np.ndarray, transparent: np.ndarray | None, nodata: float | None) -> np.ndarray | None:
    missing = invalid_pixels(pixels, nodata)
    if transparent is None:
        return missing
    return transparent if missing is None else transparent | missing


def _index_row(survey_id: str, tile_id: str, key: str, row: int, col: int, size: int, fraction: float) -> dict:
    return dict(survey_id=survey_id, tile_id=tile_id, row_off=UNPLACED, col_off=UNPLACED, height=size, width=size,
                nodata_fraction=fraction, source=key, source_row_off=row, source_col_off=col)


def _index(rows: list[dict]) -> gpd.GeoDataFrame:
    frame = pd.DataFrame(rows)
    size = frame["height"].to_numpy()
    left, top = frame["source_col_off"].to_numpy(), -frame["source_row_off"].to_numpy()
    geometry = shapely.box(left, top - size, left + size, top)
    return gpd.GeoDataFrame(frame, geometry=geometry, crs=None)


def _run_all(jobs: list) -> None:
    for job in jobs:
        job()
