"""Sliding-window prediction of a trained model over a whole survey scene, in bounded memory.

The scene is cut into windows of ``window`` px (a multiple of 32, as the networks need) that
overlap their neighbours by ``overlap`` px; the last row and column of windows are snapped
inside the scene (``geo.grid.tile_offsets``), never padded, as in tiling. A window's landslide
probabilities are blended into the map with a separable weight that is 1 in the window's middle
and ramps down linearly over the ``overlap`` px at each side: where two windows overlap by
exactly ``overlap`` px the ramps sum to 1, and every weight is positive, so pixels at the scene's
edge (covered by one window only) are still defined. Each pixel's probability is its windows'
weighted mean, so there are no seams, and the pixels a network sees with least context (near a
window's edge) count least. Because the weight is separable and the windows form a full grid,
the sum of weights at a pixel is the product of a row sum and a column sum, so only the
weighted probabilities need a buffer.

Memory: the scene is read one strip of windows (``window`` rows, full width) at a time; the
blended probabilities live in one buffer of the same rows, and rows that no later window covers
are written out before the next strip is read. Memory therefore never grows with the scene's
height, and with its width only by the strip (about 4 bytes of buffer plus the image's bytes per
pixel, e.g. 50 MB for a 14,000 px wide RGB scene and 512 px windows); the GDAL block cache is
capped. What dominates is the network's activations for one batch of windows (about 110 MB per
512 px window for U-Net at width 0.125) and the libraries (about 380 MB with torch).

Inputs are built exactly as for training (``training.features.tile_features``): image bands
scaled by their dtype's range, then the terrain bands the model takes (elevation centred per
window, slope, hillshade, relief: ``training.features.terrain_feature``) from the DEM resampled
(bilinear) onto each window's grid with a margin (``geo.terrain``). The model normalises them with its training statistics and refuses imagery of
another dtype than it was trained on. Nodata pixels (the survey's nodata override, else an alpha
band, else the image's nodata value or NaN, else its internal mask, as in tiling) enter the
network as NaN, which its normalisation turns into the band mean, so a NaN cannot spread through
the convolutions, and are nodata in both outputs; windows holding no valid pixel are not run at
all. The outputs are described in ``mapping.outputs``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.windows import Window
from torch import nn

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.grid import TILE_MULTIPLE, tile_offsets
from landslide_pipeline.geo.scene import SceneFiles, SceneReader
from landslide_pipeline.geo.terrain import BASE_TERRAIN, OPTIONAL_TERRAIN_BANDS
from landslide_pipeline.layout import MAP_MASK, MAP_PROBABILITY
from landslide_pipeline.mapping.outputs import MapGrid, MapWriter
from landslide_pipeline.metrics.calibration import ARGMAX_THRESHOLD
from landslide_pipeline.nn.segmenter import LANDSLIDE_CLASS
from landslide_pipeline.progress import Progress, no_progress
from landslide_pipeline.training.checkpoint import ANY_SCALING, load_model
from landslide_pipeline.training.features import TERRAIN_BANDS, input_scaling, tile_features
from landslide_pipeline.training.loop import pick_device

#: Windows per forward pass on CUDA when the spec leaves it open.
CUDA_BATCH_SIZE = 8


@dataclass(frozen=True)
class PredictionSpec:
    """How to slide the model over a scene.

    Attributes:
        window: Window side in pixels, a multiple of 32. A scene side shorter than this gets
            the longest multiple of 32 that fits instead.
        overlap: Pixels shared by neighbouring windows, blended with linear ramps (at most half
            a window). 64 of 512 costs 1.3x the windows of no overlap.
        batch_size: Windows per forward pass; None picks ``CUDA_BATCH_SIZE`` on a GPU and 1 on a
            CPU, where a larger batch is no faster (U-Net width 0.125, 512 px windows: batch 4 took
            1.2-1.8x the time of four single windows) and each 512 px window adds about 110 MB of
            activations to the peak memory.
        threshold: A pixel is landslide when its probability exceeds this (0.5 = argmax); None:
            the model's calibrated threshold (``ModelSpec.threshold``).
        blocksize: Block side of the output COGs (a multiple of 16, at least 128).
    """

    window: int = 512
    overlap: int = 64
    batch_size: int | None = None
    threshold: float | None = None
    blocksize: int = 512

    def __post_init__(self) -> None:
        if self.window <= 0 or self.window % TILE_MULTIPLE:
            raise ValueError(f"window must be a positive multiple of {TILE_MULTIPLE}, got {self.window}")
        if not 0 <= self.overlap <= self.window // 2:
            raise ValueError(f"overlap must be within 0..window/2 ({self.window // 2}), got {self.overlap}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be within (0, 1), got {self.threshold}")
        if self.blocksize < 128 or self.blocksize % 16:
            raise ValueError(f"blocksize must be a multiple of 16 of at least 128 (GDAL's COG minimum), "
                             f"got {self.blocksize}")


@dataclass(frozen=True)
class PredictionReport:
    """Facts about one mapped scene.

    Attributes:
        probability: The probability COG written.
        mask: The mask COG written.
        height: Scene rows.
        width: Scene columns.
        pixels: height x width.
        valid_pixels: Pixels that hold data.
        landslide_pixels: Valid pixels mapped as landslide.
        landslide_fraction: landslide_pixels / valid_pixels (0 for a scene without data).
        windows: Windows run through the model.
        skipped_windows: Windows without a valid pixel, not run.
        seconds: Wall time, reading and writing included.
        megapixels_per_second: Scene megapixels over ``seconds``.
    """

    probability: Path
    mask: Path
    height: int
    width: int
    pixels: int
    valid_pixels: int
    landslide_pixels: int
    landslide_fraction: float
    windows: int
    skipped_windows: int
    seconds: float
    megapixels_per_second: float

    def to_dict(self) -> dict[str, Any]:
        """Plain values (paths as strings), e.g. for asset metadata or JSON."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def map_scene(scene: SceneFiles, model_dir: Path, out_dir: Path, spec: PredictionSpec = PredictionSpec(),
              device: torch.device | None = None, progress: Progress = no_progress) -> PredictionReport:
    """Maps a scene with a saved model into ``out_dir/probability.tif`` and ``out_dir/mask.tif``.

    The model and its input bands come from ``training.checkpoint.load_model``; without a
    threshold in ``spec``, the model's calibrated one applies.

    Raises:
        SurveyInputError: any error of ``predict_scene``.
    """
    device = device or pick_device()
    model, model_spec = load_model(Path(model_dir), device)
    spec = spec if spec.threshold is not None else replace(spec, threshold=model_spec.threshold)
    return predict_scene(scene, model, model_spec.bands, Path(out_dir) / MAP_PROBABILITY, Path(out_dir) / MAP_MASK,
                         spec=spec, device=device, image_scaling=model_spec.image_scaling, progress=progress)


def predict_scene(scene: SceneFiles, model: nn.Module, model_bands: Sequence[str], probability: Path, mask: Path, *,
                  spec: PredictionSpec = PredictionSpec(), device: torch.device | None = None,
                  image_scaling: str = ANY_SCALING, progress: Progress = no_progress) -> PredictionReport:
    """Predicts landslide probability over a whole scene and writes the probability and mask COGs.

    Args:
        scene: The image (or crops to mosaic), the DEM (required when ``model_bands`` include
            terrain bands, ignored otherwise), the image bands to feed and a nodata override
            (``geo.scene.SceneFiles``).
        model: A model mapping (N, bands, H, W) input bands (NaN where there is no data) to
            (N, classes, H, W) class probabilities, class 1 = landslide: a
            ``nn.segmenter.Segmenter``. It is moved to ``device``, channels-last, and put in
            eval mode.
        model_bands: The model's input band names (``ModelSpec.bands``), e.g. red, green, blue, slope.
        probability: Where to write the probability COG.
        mask: Where to write the mask COG.
        spec: Window, overlap, batch, threshold (None: 0.5, the arg-max) and output block size.
        device: Where to run the model; ``training.loop.pick_device()`` when None.
        image_scaling: The model's input scaling (``ModelSpec.image_scaling``); imagery of another
            dtype is refused.
        progress: Called with the strips of windows done and their total, after each strip.

    Returns:
        Pixel counts, landslide fraction, windows and timing.

    Raises:
        SurveyInputError: unreadable or truncated image, unsupported dtype, a band count other
            than the model's, imagery of another input scaling than the model's, a terrain model
            without a DEM, or a scene side under 32 px.
        ValueError: model bands with terrain bands before image bands.
    """
    start = time.perf_counter()
    device = device or pick_device()
    model.to(device, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]  # torch's stubs omit memory_format
    with ExitStack() as stack:
        reader = stack.enter_context(SceneReader(scene))
        _check_scaling(reader, image_scaling)
        terrain = _terrain_inputs(reader, model_bands)
        rows, cols = _window_axis(reader.name, reader.height, spec), _window_axis(reader.name, reader.width, spec)
        grid = MapGrid(reader.height, reader.width, reader.crs, reader.transform, spec.blocksize)
        tags = {"model_bands": ",".join(model_bands), "window": str(spec.window), "overlap": str(spec.overlap)}
        threshold = ARGMAX_THRESHOLD if spec.threshold is None else spec.threshold
        writer = stack.enter_context(MapWriter(grid, probability, mask, threshold, tags))
        counts = _map_strips(reader, terrain, _Model(model, device, batch_size(spec, device)), rows, cols, writer,
                             progress)
        writer.publish()
    return _report(writer, grid, counts, time.perf_counter() - start)


def _check_scaling(reader: SceneReader, image_scaling: str) -> None:
    scaling = input_scaling(np.dtype(reader.dtype))
    if ANY_SCALING not in (image_scaling, scaling) and scaling != image_scaling:
        raise SurveyInputError(reader.name, f"is {scaling} imagery; the model was trained on {image_scaling} "
                                            "imagery, so its inputs would be scaled differently (convert the "
                                            "imagery, or train a model on imagery like it)")


def batch_size(spec: PredictionSpec, device: torch.device) -> int:
    """Windows per forward pass: the spec's, else ``CUDA_BATCH_SIZE`` on CUDA and 1 elsewhere."""
    return spec.batch_size or (CUDA_BATCH_SIZE if device.type == "cuda" else 1)


def ramp_weights(size: int, overlap: int) -> np.ndarray:
    """Blending weight along one side of a window: 1 in the middle, a linear ramp over ``overlap``
    px at each end, always positive; two ramps overlapping by ``overlap`` px sum to 1."""
    position = np.arange(size, dtype=np.float64)
    ramp = np.minimum(position + 1, size - position) / (overlap + 1)
    return np.minimum(ramp, 1.0).astype(np.float32)


@dataclass(frozen=True)
class _Axis:
    """The windows along one scene axis.

    Attributes:
        size: Window side along this axis.
        offsets: Window origins, the last snapped inside the scene.
        weights: (size,) blending weight of a window along this axis.
        coverage: (length,) sum of the weights of every window over each pixel.
    """

    size: int
    offsets: list[int]
    weights: np.ndarray
    coverage: np.ndarray


def _window_axis(name: Path, length: int, spec: PredictionSpec) -> _Axis:
    size = min(spec.window, length // TILE_MULTIPLE * TILE_MULTIPLE)
    if size == 0:
        raise SurveyInputError(name, f"a scene side of {length} px is shorter than {TILE_MULTIPLE} px, "
                                     "the smallest window the networks take")
    overlap = min(spec.overlap, size // 2)
    offsets = tile_offsets(length, size, size - overlap)
    weights = ramp_weights(size, overlap)
    coverage = np.zeros(length, dtype=np.float32)
    for offset in offsets:
        coverage[offset:offset + size] += weights
    return _Axis(size, offsets, weights, coverage)


def _terrain_inputs(reader: SceneReader, model_bands: Sequence[str]) -> tuple[str, ...]:
    """Checks the scene against the model's bands; the terrain bands the model takes, in order.

    Raises:
        ValueError: terrain bands before image bands, or one ``tile_features`` does not build.
        SurveyInputError: the scene has another number of image bands, no DEM for the terrain
            bands, or no CRS to place the DEM on.
    """
    terrain = tuple(b for b in model_bands if b in TERRAIN_BANDS)
    n_model_image_bands = len(model_bands) - len(terrain)
    if tuple(model_bands[n_model_image_bands:]) != terrain:
        raise ValueError(f"model bands {list(model_bands)}: terrain bands must follow the image bands")
    if n_model_image_bands != len(reader.bands):
        raise SurveyInputError(reader.name, f"has {len(reader.bands)} image band(s) to feed; the model takes "
                                            f"{n_model_image_bands} ({', '.join(model_bands[:n_model_image_bands])})")
    if terrain and not reader.has_dem:
        raise SurveyInputError(reader.name, f"the model takes terrain bands (bands {', '.join(model_bands)}); "
                                            "give the survey's DEM, or map it with an image-only model "
                                            "(alias champion-rgb)")
    if terrain and reader.crs is None:
        raise SurveyInputError(reader.name, "has no CRS, so the DEM cannot be placed on it for the terrain bands")
    return terrain


class _Model:
    """Landslide probabilities of batches of windows."""

    def __init__(self, network: nn.Module, device: torch.device, batch_size: int) -> None:
        self.network, self.device, self.batch_size = network, device, batch_size

    @torch.inference_mode()
    def probability(self, x: np.ndarray) -> np.ndarray:
        """(N, H, W) float32 landslide probability of float32 inputs (N, C, H, W)."""
        probability = self.network(torch.from_numpy(x).to(self.device, memory_format=torch.channels_last))
        return probability[:, LANDSLIDE_CLASS].float().cpu().numpy()


class _Stitcher:
    """Blends window probabilities into the rows of the current strip and hands out finished rows."""

    def __init__(self, rows: _Axis, cols: _Axis, width: int) -> None:
        self.rows, self.cols, self.width = rows, cols, width
        self.weights = np.outer(rows.weights, cols.weights)
        self.start = 0
        self.sums = np.zeros((0, width), dtype=np.float32)
        self.invalid: np.ndarray | None = None

    def begin_strip(self, row: int, invalid: np.ndarray | None) -> tuple[int, np.ndarray, np.ndarray | None] | None:
        """Moves to the strip of windows starting at ``row`` (rows ``row .. row + window`` and their
        nodata pixels); returns the rows above it, which no later window covers, or None."""
        done = row - self.start
        finished = self._blended(done) if done > 0 else None
        sums = np.zeros((self.rows.size, self.width), dtype=np.float32)
        carried = self.sums[done:]
        sums[:len(carried)] = carried
        self.start, self.sums, self.invalid = row, sums, invalid
        return finished

    def add(self, col: int, probability: np.ndarray) -> None:
        self.sums[:, col:col + self.cols.size] += probability * self.weights

    def finish(self) -> tuple[int, np.ndarray, np.ndarray | None]:
        """The rows of the last strip."""
        return self._blended(len(self.sums))

    def _blended(self, n_rows: int) -> tuple[int, np.ndarray, np.ndarray | None]:
        coverage = self.rows.coverage[self.start:self.start + n_rows, None] * self.cols.coverage[None, :]
        invalid = self.invalid[:n_rows] if self.invalid is not None else None
        return self.start, self.sums[:n_rows] / coverage, invalid


def _map_strips(reader: SceneReader, terrain: tuple[str, ...], model: _Model, rows: _Axis, cols: _Axis,
                writer: MapWriter, progress: Progress) -> dict[str, int]:
    """Runs every strip of windows and writes the finished rows; returns pixel and window counts."""
    counts = {"valid": 0, "landslide": 0, "windows": 0, "skipped": 0}
    stitcher = _Stitcher(rows, cols, reader.width)

    def write(finished: tuple[int, np.ndarray, np.ndarray | None] | None) -> None:
        if finished is not None:
            valid, landslide = writer.write(*finished)
            counts["valid"] += valid
            counts["landslide"] += landslide

    for strip, row in enumerate(rows.offsets):
        progress(strip, len(rows.offsets))
        image, invalid = reader.read(Window(0, row, reader.width, rows.size))
        write(stitcher.begin_strip(row, invalid))
        live = [c for c in cols.offsets if invalid is None or not invalid[:, c:c + cols.size].all()]
        counts["windows"] += len(live)
        counts["skipped"] += len(cols.offsets) - len(live)
        for batch in _batches(live, model.batch_size):
            x = np.stack([_window_input(reader, terrain, image, invalid, row, col, cols.size)
                          for col in batch])
            for col, probability in zip(batch, model.probability(x)):
                stitcher.add(col, probability)
    write(stitcher.finish())
    progress(len(rows.offsets), len(rows.offsets))
    return counts


def _report(writer: MapWriter, grid: MapGrid, counts: dict[str, int], seconds: float) -> PredictionReport:
    pixels = grid.height * grid.width
    return PredictionReport(
        probability=writer.targets["probability"], mask=writer.targets["mask"], height=grid.height,
        width=grid.width, pixels=pixels, valid_pixels=counts["valid"], landslide_pixels=counts["landslide"],
        landslide_fraction=counts["landslide"] / counts["valid"] if counts["valid"] else 0.0,
        windows=counts["windows"], skipped_windows=counts["skipped"], seconds=seconds,
        megapixels_per_second=pixels / 1e6 / seconds)


def _batches(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _window_input(reader: SceneReader, terrain: tuple[str, ...], image: np.ndarray, invalid: np.ndarray | None,
                  row: int, col: int, width: int) -> np.ndarray:
    """Network input (image bands, then ``terrain``, H, W) of the window at scene (row, col) of a strip."""
    height = image.shape[1]
    heights = None
    if terrain:
        derived = BASE_TERRAIN.bands + tuple(b for b in OPTIONAL_TERRAIN_BANDS if b in terrain)
        heights = dict(zip(derived, reader.terrain(row, col, height, width, derived, BASE_TERRAIN.relief_radius_m)))
    return tile_features(image[:, :, col:col + width], heights, None if invalid is None else invalid[:, col:col + width],
                         terrain)
