"""The two rasters of a mapped survey, written strip by strip and published as Cloud-Optimized GeoTIFFs.

Encoding (both single-band uint8, in the survey's CRS and transform):

- ``probability.tif``: landslide probability ``p`` stored as ``round(p * 254)``, so 0..254 covers
  0..1 in steps of 0.004; 255 is nodata. The band's GDAL scale is 1/254, so QGIS, GDAL and
  ``rasterio`` (``src.scales``) read back probabilities. uint8 rather than float32: a quarter of
  the size, and a probability map needs no finer steps than 1/254 (the mask is thresholded from
  the unrounded probabilities, not from this file).
- ``mask.tif``: 1 landslide, 0 not, 255 nodata.

GDAL's COG driver can only copy a finished raster (it writes overviews and reorders blocks), not
take windowed writes. So each raster is first written window by window, uncompressed, into a
tiled GeoTIFF in a scratch folder beside the outputs, then copied with the COG driver (deflate,
overviews averaged for the probability, nearest for the mask) into a temporary file that is
renamed into place (``storage.atomic_file``). Both costs stay bounded by GDAL's block cache,
whatever the survey's size; the scratch files are removed afterwards, also on failure.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from landslide_pipeline.mapping.styles import MASK_COLORS
from landslide_pipeline.storage import atomic_file

#: Stored value of probability 1.0; probability = value / PROBABILITY_SCALE.
PROBABILITY_SCALE = 254
PROBABILITY_NODATA = 255
MASK_NODATA = 255
_NODATA = {"probability": PROBABILITY_NODATA, "mask": MASK_NODATA}


@dataclass(frozen=True)
class MapGrid:
    """The survey grid the outputs share.

    Attributes:
        height: Rows of the scene.
        width: Columns of the scene.
        crs: The scene's CRS (None for an image that is not on a map).
        transform: The scene's affine transform.
        blocksize: Side of the GeoTIFF blocks (a multiple of 16).
    """

    height: int
    width: int
    crs: CRS | None
    transform: Affine
    blocksize: int = 512


def encode_probability(probability: np.ndarray, invalid: np.ndarray | None) -> np.ndarray:
    """uint8 probability raster values: round(p * 254), 255 where ``invalid``."""
    encoded = np.rint(np.clip(probability, 0.0, 1.0) * PROBABILITY_SCALE).astype(np.uint8)
    if invalid is not None:
        encoded[invalid] = PROBABILITY_NODATA
    return encoded


def encode_mask(probability: np.ndarray, invalid: np.ndarray | None, threshold: float) -> np.ndarray:
    """uint8 mask values: 1 where p > ``threshold`` (argmax at 0.5), else 0; 255 where ``invalid``."""
    mask = (probability > threshold).astype(np.uint8)
    if invalid is not None:
        mask[invalid] = MASK_NODATA
    return mask


class MapWriter:
    """Writes the probability and mask rasters strip by strip, then publishes them as COGs.

    Use as a context manager; call ``publish`` once every row is written. Leaving the block
    without publishing (an error) removes the scratch files and leaves the targets untouched.
    The scratch rasters are uncompressed: they need about 2 bytes per scene pixel of free disk
    beside the outputs while the scene is mapped.

    Args:
        grid: The survey grid of both rasters.
        probability: Where the probability COG goes.
        mask: Where the mask COG goes.
        threshold: Probability above which a pixel is landslide.
        tags: Extra GDAL metadata for both rasters (e.g. the model's bands, window, overlap).
    """

    def __init__(self, grid: MapGrid, probability: Path, mask: Path, threshold: float,
                 tags: dict[str, str] | None = None) -> None:
        self.grid, self.threshold, self.tags = grid, threshold, tags or {}
        self.targets = {"probability": Path(probability), "mask": Path(mask)}
        self._stack = ExitStack()
        self._datasets: dict[str, rasterio.io.DatasetWriter] = {}

    def __enter__(self) -> MapWriter:
        target = self.targets["probability"]
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(self._stack.enter_context(
            tempfile.TemporaryDirectory(prefix=f".{target.stem}.scratch-", dir=target.parent)))
        for name in self.targets:
            self._datasets[name] = self._stack.enter_context(rasterio.open(scratch / f"{name}.tif", "w",
                                                                           **self._profile(_NODATA[name])))
        self._describe()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stack.close()

    def write(self, row: int, probability: np.ndarray, invalid: np.ndarray | None) -> tuple[int, int]:
        """Writes rows ``row .. row + len(probability)`` of both rasters.

        Returns:
            (valid pixels, landslide pixels) of these rows.
        """
        window = Window(0, row, self.grid.width, probability.shape[0])
        mask = encode_mask(probability, invalid, self.threshold)
        self._datasets["probability"].write(encode_probability(probability, invalid), 1, window=window)
        self._datasets["mask"].write(mask, 1, window=window)
        valid = mask.size - (int(np.count_nonzero(invalid)) if invalid is not None else 0)
        return valid, int(np.count_nonzero(mask == 1))

    def publish(self) -> None:
        """Closes the scratch rasters and copies each into place as a COG, atomically."""
        scratch = {name: Path(dataset.name) for name, dataset in self._datasets.items()}
        for dataset in self._datasets.values():
            dataset.close()
        with atomic_file(self.targets["probability"]) as probability, atomic_file(self.targets["mask"]) as mask:
            to_cog(scratch["probability"], probability, "AVERAGE", self.grid.blocksize)
            to_cog(scratch["mask"], mask, "NEAREST", self.grid.blocksize)

    def _profile(self, nodata: int) -> dict:
        grid = self.grid
        return dict(driver="GTiff", width=grid.width, height=grid.height, count=1, dtype="uint8", crs=grid.crs,
                    transform=grid.transform, nodata=nodata, tiled=True, blockxsize=grid.blocksize,
                    blockysize=grid.blocksize, BIGTIFF="IF_SAFER")

    def _describe(self) -> None:
        probability, mask = self._datasets["probability"], self._datasets["mask"]
        probability.set_band_description(1, "landslide probability")
        probability.scales, probability.offsets = (1.0 / PROBABILITY_SCALE,), (0.0,)
        mask.set_band_description(1, "landslide")
        mask.write_colormap(1, MASK_COLORS)  # landslide red in any GIS
        probability.update_tags(**self.tags, encoding=f"probability = value / {PROBABILITY_SCALE}; 255 = nodata")
        mask.update_tags(**self.tags, encoding="1 = landslide, 0 = not; 255 = nodata",
                         threshold=f"probability > {self.threshold}")


def to_cog(source: Path, target: Path, overview_resampling: str, blocksize: int = 512) -> None:
    """Copies a raster into a Cloud-Optimized GeoTIFF (deflate, internal overviews).

    Args:
        source: A finished raster.
        target: The COG to write.
        overview_resampling: GDAL resampling of the overviews ("AVERAGE", "NEAREST", ...).
        blocksize: Side of the COG's blocks; overviews are added until one fits in a block.
    """
    rasterio.shutil.copy(source, target, driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES", BLOCKSIZE=blocksize,
                         OVERVIEWS="IGNORE_EXISTING", OVERVIEW_RESAMPLING=overview_resampling, BIGTIFF="IF_SAFER")
