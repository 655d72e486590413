"""Reading one tile of a pre-cut data set: PNG, JPEG and TIFF through GDAL, HDF5 through h5py.

Images come back as (bands, height, width) arrays in their own dtype, masks as uint8 {0, 1}
decoded according to the adapter's encoding. Every problem is a SurveyInputError naming the file.

A tile is read whole, so its header is checked first: a tile of more than ``MAX_TILE_ELEMENTS``
values (a small file can declare any size) is refused before anything is allocated. HDF5
datasets must hold their own data: external links, virtual datasets and external raw storage,
which read other files, are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import rasterio

from landslide_pipeline.datasets.adapter import ImageFiles, MaskFiles
from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.labelme import labelme_mask, read_labelme
from landslide_pipeline.geo.rasters import alpha_band, check_dtype, open_raster, select_bands

HDF5_SUFFIXES = (".h5", ".hdf5", ".he5", ".hdf")
#: The most values (height x width x bands) one data set tile may hold: 400 MB of float32.
MAX_TILE_ELEMENTS = 100_000_000


@dataclass(frozen=True)
class ImageInfo:
    """An image's size, band count and dtype after band selection, read from its header."""

    height: int
    width: int
    count: int
    dtype: str


def is_hdf5(path: Path) -> bool:
    """Whether the file is HDF5, by its extension."""
    return path.suffix.lower() in HDF5_SUFFIXES


def image_info(path: Path, files: ImageFiles) -> ImageInfo:
    """The image's shape and dtype without reading its pixels (HDF5: without reading the array)."""
    if is_hdf5(path):
        with _open_hdf5(path) as handle:
            dataset = _hdf5_dataset(path, handle, files.hdf5_key)
            height, width, count = _hdf5_shape(path, dataset.shape, files.axes)
            dtype = str(dataset.dtype)
        bands = select_bands(path, count, files.bands, None)
    else:
        with open_raster(path) as src:
            _check_raster_size(path, src)
            height, width, dtype = src.height, src.width, src.dtypes[0]
            bands = select_bands(path, src.count, files.bands, alpha_band(src))
    check_dtype(path, dtype)
    return ImageInfo(height=height, width=width, count=len(bands), dtype=dtype)


def read_image(path: Path, files: ImageFiles) -> tuple[np.ndarray, np.ndarray | None]:
    """Reads an image tile.

    Returns:
        The selected bands as (bands, height, width) in the file's dtype, and a boolean mask of
        pixels that the alpha band marks transparent (None without an alpha band).
    """
    if is_hdf5(path):
        with _open_hdf5(path) as handle:
            dataset = _hdf5_dataset(path, handle, files.hdf5_key)
            check_dtype(path, str(dataset.dtype))
            pixels = _to_bands(path, dataset[()], files.axes)
        bands = select_bands(path, pixels.shape[0], files.bands, None)
        return pixels[[b - 1 for b in bands]], None
    with open_raster(path) as src:
        _check_raster_size(path, src)
        check_dtype(path, src.dtypes[0])
        alpha = alpha_band(src)
        bands = select_bands(path, src.count, files.bands, alpha)
        pixels = src.read(list(bands))
        transparent = src.read(alpha) == 0 if alpha is not None and alpha not in bands else None
    return pixels, transparent


def read_mask(path: Path, mask: MaskFiles, shape: tuple[int, int]) -> np.ndarray:
    """Reads and decodes a mask for an image of ``shape`` (height, width) into uint8 {0, 1}.

    Raises:
        SurveyInputError: unreadable file, a size that differs from the image's, or values that
            the encoding does not allow.
    """
    if mask.encoding == "labelme":
        document = read_labelme(path, mask.labels)
        _check_size(path, (document.height, document.width), shape)
        return labelme_mask(document, shape)
    values = _read_mask_values(path, mask)
    _check_size(path, values.shape[1:], shape)
    return decode_mask(path, values, mask)


def mask_shape(path: Path, mask: MaskFiles) -> tuple[int, int]:
    """The (height, width) a mask file describes, from its header."""
    if mask.encoding == "labelme":
        document = read_labelme(path, mask.labels)
        return document.height, document.width
    if is_hdf5(path):
        with _open_hdf5(path) as handle:
            height, width, _ = _hdf5_shape(path, _hdf5_dataset(path, handle, mask.hdf5_key).shape, mask.axes)
        return height, width
    with open_raster(path) as src:
        return src.height, src.width


def decode_mask(path: Path, values: np.ndarray, mask: MaskFiles) -> np.ndarray:
    """Turns raw mask bands (bands, H, W) into uint8 {0, 1} according to the encoding."""
    if mask.encoding == "rgb":
        if values.shape[0] < 3:
            raise SurveyInputError(path, f'encoding = "rgb" needs 3 bands, the mask has {values.shape[0]}')
        return (values[:3] == np.array(mask.color).reshape(3, 1, 1)).all(axis=0).astype(np.uint8)
    band = values[0]
    if mask.encoding == "threshold":
        return (band > mask.threshold).astype(np.uint8)
    landslide = 1 if mask.encoding == "0/1" else 255
    found = np.unique(band)
    unexpected = found[~np.isin(found, (0, landslide))]
    if unexpected.size:
        raise SurveyInputError(path, f"mask values {unexpected[:8].tolist()} are not {mask.encoding}; "
                                     'use encoding = "threshold" for lossy masks or "rgb" for colour masks')
    return (band == landslide).astype(np.uint8)


def _read_mask_values(path: Path, mask: MaskFiles) -> np.ndarray:
    bands = (1, 2, 3) if mask.encoding == "rgb" else (mask.band,)
    if is_hdf5(path):
        with _open_hdf5(path) as handle:
            values = _to_bands(path, _hdf5_dataset(path, handle, mask.hdf5_key)[()], mask.axes)
    else:
        with open_raster(path) as src:
            _check_raster_size(path, src)
            select_bands(path, src.count, bands, None)
            return src.read(list(bands))
    select_bands(path, values.shape[0], bands, None)
    return values[[b - 1 for b in bands]]


def _check_size(path: Path, found: tuple[int, ...], expected: tuple[int, int]) -> None:
    if tuple(found) != tuple(expected):
        raise SurveyInputError(path, f"mask is {found[0]}x{found[1]} px but its image is "
                                     f"{expected[0]}x{expected[1]} px (height x width)")


def _open_hdf5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise SurveyInputError(path, f"cannot read HDF5 ({err})") from err


def _hdf5_dataset(path: Path, handle: h5py.File, key: str | None) -> h5py.Dataset:
    """The dataset ``key`` (the only one when None), checked to be in the file and of a readable size."""
    # getlink: listing must not follow external links into other files.
    names = [name for name in handle if not isinstance(handle.get(name, getlink=True), h5py.ExternalLink)
             and isinstance(handle.get(name), h5py.Dataset)]
    if key is None:
        if len(names) != 1:
            raise SurveyInputError(path, f"holds datasets {names}; set hdf5_key in the adapter")
        key = names[0]
    item = handle.get(key)
    if not isinstance(item, h5py.Dataset):
        raise SurveyInputError(path, f"has no HDF5 dataset {key!r}; it holds {names}")
    _check_hdf5_dataset(path, key, handle, item)
    return item


def _check_hdf5_dataset(path: Path, key: str, handle: h5py.File, dataset: h5py.Dataset) -> None:
    """Refuses a dataset whose data lie in other files, or that is too large to read whole."""
    if dataset.file.filename != handle.filename or dataset.is_virtual or dataset.external:
        raise SurveyInputError(path, f"HDF5 dataset {key!r} reads its data from other files (external link, "
                                     "virtual dataset or external storage); copy the data into the file")
    if dataset.size > MAX_TILE_ELEMENTS:
        raise SurveyInputError(path, f"HDF5 dataset {key!r} of shape {dataset.shape} holds {dataset.size:,} values, "
                                     f"above the cap of {MAX_TILE_ELEMENTS:,} per tile (readers.MAX_TILE_ELEMENTS); "
                                     "cut it into smaller tiles")


def _check_raster_size(path: Path, src: rasterio.DatasetReader) -> None:
    """Refuses a raster tile too large to read whole."""
    values = src.height * src.width * src.count
    if values > MAX_TILE_ELEMENTS:
        raise SurveyInputError(path, f"{src.width:,} x {src.height:,} px x {src.count} band(s) tile holds {values:,} "
                                     f"values, above the cap of {MAX_TILE_ELEMENTS:,} per tile "
                                     "(readers.MAX_TILE_ELEMENTS); cut it into smaller tiles")


def _hdf5_shape(path: Path, shape: tuple[int, ...], axes: str) -> tuple[int, int, int]:
    """(height, width, bands) of a 2-D or 3-D HDF5 array."""
    if len(shape) == 2:
        return shape[0], shape[1], 1
    if len(shape) == 3:
        return (shape[0], shape[1], shape[2]) if axes == "HWC" else (shape[1], shape[2], shape[0])
    raise SurveyInputError(path, f"HDF5 array of shape {shape}; expected 2-D or 3-D")


def _to_bands(path: Path, array: np.ndarray, axes: str) -> np.ndarray:
    _hdf5_shape(path, array.shape, axes)
    if array.ndim == 2:
        return array[None]
    return np.ascontiguousarray(array.transpose(2, 0, 1)) if axes == "HWC" else array
