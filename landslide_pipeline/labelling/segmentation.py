"""Multi-scale segmentation of a scene, window by window, into nested objects.

1. Each window is cut into superpixels (SLIC k-means on the image bands and slope) and reduced
   to region statistics; superpixel ids are written to a scratch raster on disk, so memory holds
   one window of pixels at a time.
2. The windows' region graphs are joined, with edges across window borders taken from the
   border pixels, into one graph of the scene's superpixels.
3. That graph is merged (``merging.py``) at each scale in turn, fine to coarse. Merging works on
   the whole scene's graph, so objects grow across window borders exactly as inside a window:
   a window border is at most a superpixel border, never an object border by construction.

The memory of step 3 grows with the number of superpixels (about 300 bytes each, 7,000 per
megapixel at the default size), not with pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from skimage.measure import label
from skimage.segmentation import slic

from landslide_pipeline.labelling.features import visible_bands
from landslide_pipeline.labelling.merging import MergeCriteria, merge_regions
from landslide_pipeline.labelling.regions import RegionGraph, border_edges, concatenate, region_statistics
from landslide_pipeline.labelling.scene import SceneSource, WindowPixels, windows
from landslide_pipeline.progress import Progress, no_progress

SLOPE = "slope"
ELEVATION = "elevation"
#: Slope enters the superpixels as slope / 90 degrees, image bands as value / 255.
_SLOPE_RANGE = 90.0


@dataclass(frozen=True)
class SegmentationParams:
    """How to segment.

    Attributes:
        scales: eCognition-like scale parameters, fine to coarse; one level of objects each.
        shape: Weight of shape against colour in the merging criterion (0..0.9).
        compactness: Weight of compactness against smoothness within shape (0..1).
        weights: Colour-criterion weight per band name (``slope`` included); image bands not
            named weigh 1, slope 0 unless named. Elevation never enters the criterion.
        superpixel_px: Mean superpixel area in pixels, the finest possible object.
        superpixel_compactness: SLIC compactness (on 0..1 bands): higher gives rounder superpixels.
        superpixel_iterations: SLIC k-means iterations.
        window_px: Side of the windows the scene is read in.
        texture_levels: Grey levels of the GLCM texture.
    """

    scales: tuple[float, ...] = (20.0, 40.0, 80.0)
    shape: float = 0.3
    compactness: float = 0.5
    weights: dict[str, float] = field(default_factory=lambda: {SLOPE: 0.5})
    superpixel_px: int = 150
    superpixel_compactness: float = 0.25
    superpixel_iterations: int = 3
    window_px: int = 1024
    texture_levels: int = 32

    def __post_init__(self) -> None:
        if not self.scales or any(b <= a for a, b in zip(self.scales, self.scales[1:])):
            raise ValueError(f"scales must be a non-empty increasing list, got {self.scales}")
        if self.superpixel_px < 4 or self.window_px < 64:
            raise ValueError("superpixel_px must be >= 4 and window_px >= 64")
        if not 2 <= self.texture_levels <= 256:
            raise ValueError(f"texture_levels must be within 2..256, got {self.texture_levels}")
        MergeCriteria(self.scales[0], self.shape, self.compactness, ())  # validates shape, compactness

    def channel_weights(self, channels: tuple[str, ...], image_bands: tuple[str, ...]) -> tuple[float, ...]:
        """The colour weight of every channel of a graph."""
        def weight(name: str) -> float:
            if name in self.weights:
                return float(self.weights[name]) if name != ELEVATION else 0.0
            return 1.0 if name in image_bands else 0.0
        return tuple(weight(name) for name in channels)


class ScratchRaster:
    """A (height, width) array in a ``.npy`` file, read and written one window at a time.

    Each access maps the file only for its duration, so the pages it touched leave the
    process's memory with it: memory stays bounded by the window, not by the scene.
    """

    def __init__(self, path: Path, shape: tuple[int, int], dtype: type) -> None:
        self.path, self.shape = path, shape
        created = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        del created

    def write(self, row: int, col: int, values: np.ndarray) -> None:
        mapped = np.load(self.path, mmap_mode="r+")
        mapped[row:row + values.shape[0], col:col + values.shape[1]] = values
        mapped.flush()
        del mapped

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        mapped = np.load(self.path, mmap_mode="r")
        window = np.array(mapped[row:row + height, col:col + width])
        del mapped
        return window


@dataclass
class Segmentation:
    """A segmented scene: superpixel ids on disk and, per scale, which object each belongs to.

    Attributes:
        source: The scene.
        params: How it was segmented.
        superpixels: (height, width) int32 superpixel ids (-1 for nodata), on disk.
        brightness: (height, width) uint8 brightness (mean of the visible bands), on disk.
        level_of: Per scale, the object id (0..m-1) of every superpixel.
        graphs: Per scale, the objects' statistics and adjacency.
    """

    source: SceneSource
    params: SegmentationParams
    superpixels: ScratchRaster
    brightness: ScratchRaster
    level_of: list[np.ndarray]
    graphs: list[RegionGraph]

    def objects(self, level: int, row: int, col: int, height: int, width: int) -> np.ndarray:
        """Object ids of a window at one level (-1 for nodata)."""
        ids = self.superpixels.read(row, col, height, width)
        lookup = self.level_of[level]
        return np.where(ids >= 0, lookup[np.maximum(ids, 0)], -1)

    def parents(self, level: int, coarser: int) -> np.ndarray:
        """For each object of ``level``, the object of the coarser level that contains it."""
        first = np.zeros(self.graphs[level].n_regions, dtype=np.int64)
        first[self.level_of[level]] = self.level_of[coarser]
        return first


def segment_scene(source: SceneSource, params: SegmentationParams, scratch: Path,
                  progress: Progress = no_progress) -> Segmentation:
    """Segments a scene at every scale of ``params``.

    Args:
        source: The scene, read window by window.
        params: Scales, criteria and superpixel settings.
        scratch: An existing folder for the superpixel and brightness rasters.
        progress: Called with the windows superpixelled so far and their total.

    Raises:
        ValueError: the scene holds no valid pixel.
    """
    superpixels = ScratchRaster(scratch / "superpixels.npy", (source.height, source.width), np.int32)
    brightness = ScratchRaster(scratch / "brightness.npy", (source.height, source.width), np.uint8)
    names = source.bands + ((SLOPE, ELEVATION) if source.has_dem else ())
    graphs, borders, offset = [], [], 0
    all_windows = list(windows(source.height, source.width, params.window_px))
    for done, (row, col, height, width) in enumerate(all_windows, start=1):
        pixels = source.read(row, col, height, width)
        local = superpixel_window(pixels, params)
        n = int(local.max()) + 1
        labels = np.where(local >= 0, local + offset, -1).astype(np.int32)
        superpixels.write(row, col, labels)
        brightness.write(row, col, np.clip(np.rint(_brightness(pixels, source.bands)), 0, 255).astype(np.uint8))
        progress(done, len(all_windows))
        if n == 0:
            continue  # nodata only
        graph = region_statistics(local, _channels(pixels), names, n, pixels.elevation, row, col)
        graph.edges += offset
        graphs.append(graph)
        borders += _borders_with_done(superpixels, labels, row, col)
        offset += n
    if offset == 0:
        raise ValueError("the scene holds no valid pixel to segment")
    graph = concatenate(graphs, borders)
    weights = params.channel_weights(graph.channels, source.bands)
    level_of, levels = [], []
    lookup = np.arange(graph.n_regions)
    for scale in params.scales:
        objects, graph = merge_regions(graph, MergeCriteria(scale, params.shape, params.compactness, weights))
        lookup = objects[lookup]
        level_of.append(lookup)
        levels.append(graph)
    return Segmentation(source, params, superpixels, brightness, level_of, levels)


def superpixel_window(pixels: WindowPixels, params: SegmentationParams) -> np.ndarray:
    """SLIC superpixels of one window: ids 0..n-1, -1 where the image has no data."""
    valid = pixels.valid
    if not valid.any():
        return np.full(valid.shape, -1, dtype=np.int64)
    layers = [band / np.float32(255.0) for band in pixels.image]
    slope_weight = params.weights.get(SLOPE, 0.0)
    if pixels.slope is not None and slope_weight > 0:
        layers.append(np.nan_to_num(pixels.slope, nan=0.0) * np.float32(slope_weight / _SLOPE_RANGE))
    stack = np.stack(layers, axis=-1)
    masked = not valid.all()
    if masked:
        # SLIC's own mask places its seeds by k-means over every pixel, far too slow for large
        # windows; nodata set far below every band keeps superpixels from straddling it instead.
        stack[~valid] = -1.0
    # SLIC stretches each window's values to 0..1; scaling the compactness by the same range
    # keeps superpixels independent of the window's contrast (and of the window).
    spread = float(stack.max() - stack.min()) or 1.0
    labels = slic(stack, n_segments=max(1, int(valid.sum()) // params.superpixel_px),
                  compactness=params.superpixel_compactness / spread, max_num_iter=params.superpixel_iterations,
                  convert2lab=False, channel_axis=-1, start_label=0)
    if masked:
        # Cutting nodata out of a superpixel could split it: number connected parts instead.
        return label(np.where(valid, labels + 1, 0), background=0, connectivity=1).astype(np.int64) - 1
    return _dense(labels.astype(np.int64))


def _dense(labels: np.ndarray) -> np.ndarray:
    """Renumbers the ids present to 0..n-1 (SLIC may skip ids), keeping -1."""
    present = np.bincount(labels[labels >= 0]) > 0
    lookup = np.cumsum(present) - 1
    return np.where(labels >= 0, lookup[np.maximum(labels, 0)], -1)


def _channels(pixels: WindowPixels) -> np.ndarray:
    layers = list(pixels.image)
    if pixels.elevation is not None:
        assert pixels.slope is not None  # a DEM gives a window both its elevation and its slope
        layers += [_fill(pixels.slope), _fill(pixels.elevation)]
    return np.stack(layers)


def _fill(values: np.ndarray) -> np.ndarray:
    """DEM holes take the window's mean, so they do not drag object means towards zero."""
    holes = np.isnan(values)
    if not holes.any():
        return values
    return np.where(holes, np.nanmean(values) if not holes.all() else 0.0, values).astype(np.float32)


def _brightness(pixels: WindowPixels, bands: tuple[str, ...]) -> np.ndarray:
    return pixels.image[visible_bands(bands)].mean(axis=0)


def _borders_with_done(superpixels: ScratchRaster, labels: np.ndarray, row: int,
                       col: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Edges between this window and the windows above and to the left, already written."""
    height, width = labels.shape
    out = []
    if row > 0:
        out.append(border_edges(labels[0], superpixels.read(row - 1, col, 1, width)[0]))
    if col > 0:
        out.append(border_edges(labels[:, 0], superpixels.read(row, col - 1, height, 1)[:, 0]))
    return out
