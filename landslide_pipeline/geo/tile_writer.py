"""Writing many GeoTIFF tiles of one shape, dtype and CRS quickly.

Creating a GeoTIFF through GDAL costs about 1.5 ms a file whatever its size, mostly fixed
overhead (driver set-up, GeoKeys from the CRS, the directory on close). A 20,000 px square
scene cut into 128 px tiles makes 24,000 files, so that overhead alone is ten times the time of
reading the scene. For uncompressed tiles every file of a scene has the same bytes except the
pixels and the tie point (the upper-left corner), so GDAL writes one template tile and each
tile is that template with its pixels and corner put in (about 75 us a tile instead of 1.5 ms).
Compressed tiles go through GDAL one by one.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile

_TIFF_LE = b"II*\x00"
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8}
_TYPE_FORMATS = {3: "H", 4: "I", 16: "Q"}
_STRIP_OFFSETS, _STRIP_BYTE_COUNTS = 273, 279
_MODEL_TIEPOINT, _MODEL_TRANSFORMATION = 33922, 34264


@dataclass(frozen=True)
class TileProfile:
    """What all tiles written by one TileWriter share.

    Attributes:
        height: Tile height in pixels.
        width: Tile width in pixels.
        count: Number of bands.
        dtype: numpy dtype name of the pixels.
        crs: The tiles' CRS, or None for tiles that are not on a map.
        nodata: The nodata value written into the tiles, if any.
        descriptions: One band description per band (None for none).
        compress: "none", or a GDAL compression name ("deflate", "lzw", "zstd").
    """

    height: int
    width: int
    count: int
    dtype: str
    crs: CRS | None
    nodata: float | None
    descriptions: tuple[str | None, ...]
    compress: str = "none"

    def gdal_profile(self, transform: Affine) -> dict:
        profile = dict(driver="GTiff", width=self.width, height=self.height, count=self.count, dtype=self.dtype,
                       crs=self.crs, transform=transform, nodata=self.nodata, interleave="band")
        if self.compress == "none":
            # One strip per band: the layout the fast path knows how to fill.
            return {**profile, "tiled": False, "blockysize": self.height}
        return {**profile, "compress": self.compress}


@dataclass(frozen=True)
class _Template:
    """A GDAL-written tile cut around its pixel block, with where its corner coordinates sit."""

    head: bytes
    tail: bytes
    corner_slots: tuple[tuple[bool, int], ...]  # (in tail?, byte offset) of the x value; y follows at +8 or +32
    corner_shift: tuple[float, float]  # tie point minus transform origin (half a pixel for PixelIsPoint)
    y_after_x: int  # bytes from the x to the y value


class TileWriter:
    """Writes tiles that are windows of one grid; uncompressed tiles take the template fast path.

    Args:
        profile: What every tile shares.
        grid: The transform of the grid the tiles are cut from (a scene's, or a pre-cut tile's
            pixel grid); a tile at (row, col) has that grid's transform moved by (col, row) pixels.
    """

    def __init__(self, profile: TileProfile, grid: Affine) -> None:
        self.profile = profile
        self._grid = tuple(grid)[:6]  # plain floats: Affine attribute access costs microseconds per tile
        self._dtype = np.dtype(profile.dtype).newbyteorder("<")
        self._template = _make_template(profile, grid) if profile.compress == "none" else None

    def transform(self, row: int, col: int) -> Affine:
        """The transform of the tile whose upper-left pixel is grid pixel (row, col)."""
        return Affine(*self._origin(row, col))

    def write(self, path: Path | str, pixels: np.ndarray, row: int, col: int) -> None:
        """Writes one tile now; see ``prepare``."""
        self.prepare(path, pixels, row, col)()

    def prepare(self, path: Path | str, pixels: np.ndarray, row: int, col: int) -> Callable[[], None]:
        """Returns the job that writes one tile, to run on any thread.

        The job copies the pixels itself (numpy releases the GIL while copying), so they may be
        a strided view of a larger buffer, which must stay unchanged until the job has run.

        Args:
            path: Where to write the GeoTIFF.
            pixels: (count, height, width) array of the profile's dtype.
            row: Grid row of the tile's upper-left pixel.
            col: Grid column of the tile's upper-left pixel.
        """
        self._check(pixels)
        template = self._template
        if template is None:
            return partial(_gdal_write, path, pixels, self.transform(row, col), self.profile)
        _, _, x, _, _, y = self._origin(row, col)
        x, y = x + template.corner_shift[0], y + template.corner_shift[1]
        head, tail = bytearray(template.head), bytearray(template.tail)
        for in_tail, offset in template.corner_slots:
            struct.pack_into("<d", tail if in_tail else head, offset, x)
            struct.pack_into("<d", tail if in_tail else head, offset + template.y_after_x, y)
        return partial(_write_raw, path, head, pixels, self._dtype, tail)

    def _origin(self, row: int, col: int) -> tuple[float, ...]:
        # The arithmetic of rasterio.windows.transform, so tiles match rasterio's window transforms.
        a, b, c, d, e, f = self._grid
        x, y = a * col + b * row + c, d * col + e * row + f
        return a, b, (x - c) + c, d, e, (y - f) + f

    def _check(self, pixels: np.ndarray) -> None:
        expected = (self.profile.count, self.profile.height, self.profile.width)
        if pixels.shape != expected or pixels.dtype != self._dtype:
            raise ValueError(f"tile of shape {pixels.shape} and dtype {pixels.dtype} does not fit the profile "
                             f"{expected} {self.profile.dtype}")


def _write_raw(path: Path | str, head: bytes | bytearray, pixels: np.ndarray, dtype: np.dtype,
               tail: bytes | bytearray) -> None:
    data = np.ascontiguousarray(pixels, dtype=dtype)
    views = [memoryview(head).cast("B"), data.data.cast("B"), memoryview(tail).cast("B")]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while views:
            written = os.writev(descriptor, views)
            while views and written >= len(views[0]):
                written -= len(views.pop(0))
            if views:
                views[0] = views[0][written:]
    finally:
        os.close(descriptor)


def _gdal_write(path: Path | str | MemoryFile, pixels: np.ndarray, transform: Affine, profile: TileProfile) -> None:
    opener = path.open if isinstance(path, MemoryFile) else lambda **kw: rasterio.open(path, "w", **kw)
    with warnings.catch_warnings():
        # A pre-cut tile's pixel grid at (0, 0) is the flipped identity, which GeoTIFF stores fine.
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        dst = opener(**profile.gdal_profile(transform))
    with dst:
        dst.write(pixels)
        for band, text in enumerate(profile.descriptions, start=1):
            if text:
                dst.set_band_description(band, text)


def _make_template(profile: TileProfile, transform: Affine) -> _Template | None:
    """GDAL writes one tile of zeros; None when its layout is not the expected plain one."""
    zeros = np.zeros((profile.count, profile.height, profile.width), dtype=profile.dtype)
    with MemoryFile() as memory:
        _gdal_write(memory, zeros, transform, profile)
        data = memory.read()
    return _parse_template(data, zeros.nbytes, transform)


def _parse_template(data: bytes, pixel_bytes: int, transform: Affine) -> _Template | None:
    if data[:4] != _TIFF_LE:
        return None
    (ifd,) = struct.unpack_from("<I", data, 4)
    (n_entries,) = struct.unpack_from("<H", data, ifd)
    (next_ifd,) = struct.unpack_from("<I", data, ifd + 2 + 12 * n_entries)
    if next_ifd:
        return None  # a second image (mask, overview) in the file: not the plain layout
    tags = {}
    for i in range(n_entries):
        tag, kind, count, value = struct.unpack_from("<HHII", data, ifd + 2 + 12 * i)
        inline = _TYPE_SIZES.get(kind, 0) * count <= 4
        tags[tag] = (kind, count, ifd + 2 + 12 * i + 8 if inline else value)
    offsets, counts = _values(data, tags.get(_STRIP_OFFSETS)), _values(data, tags.get(_STRIP_BYTE_COUNTS))
    if offsets is None or counts is None or sum(counts) != pixel_bytes:
        return None
    if any(offsets[i] + counts[i] != offsets[i + 1] for i in range(len(offsets) - 1)):
        return None
    start, end = offsets[0], offsets[0] + pixel_bytes
    corner = _corner_slots(data, tags, start, end)
    if corner is None:
        return None
    slots, y_after_x, (x, y) = corner
    return _Template(head=data[:start], tail=data[end:], corner_slots=slots, y_after_x=y_after_x,
                     corner_shift=(x - transform.c, y - transform.f))


def _values(data: bytes, entry: tuple[int, int, int] | None) -> list[int] | None:
    if entry is None or entry[0] not in _TYPE_FORMATS:
        return None
    kind, count, offset = entry
    return list(struct.unpack_from(f"<{count}{_TYPE_FORMATS[kind]}", data, offset))


def _corner_slots(data: bytes, tags: dict, start: int,
                  end: int) -> tuple[tuple[tuple[bool, int]], int, tuple[float, float]] | None:
    """Where the upper-left x (and y) are stored: the tie point, or the transformation matrix."""
    if _MODEL_TIEPOINT in tags and tags[_MODEL_TIEPOINT][1] == 6:
        x_at, y_after_x = tags[_MODEL_TIEPOINT][2] + 24, 8
    elif _MODEL_TRANSFORMATION in tags and tags[_MODEL_TRANSFORMATION][1] == 16:
        x_at, y_after_x = tags[_MODEL_TRANSFORMATION][2] + 24, 32
    else:
        return None
    if start <= x_at < end or start <= x_at + y_after_x < end:
        return None
    x, = struct.unpack_from("<d", data, x_at)
    y, = struct.unpack_from("<d", data, x_at + y_after_x)
    slot = (True, x_at - end) if x_at >= end else (False, x_at)
    return (slot,), y_after_x, (x, y)


class BackgroundWrites:
    """Runs write jobs on worker threads with a bounded number in flight.

    File writes release the GIL, so they overlap with reading the next strip of the scene.
    The first failed job's error is raised from ``submit`` or on leaving the ``with`` block.
    """

    def __init__(self, workers: int = 2, max_pending: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tile-writer")
        self._pending: deque[Future] = deque()
        self._max_pending = max_pending

    def submit(self, job: Callable[..., None], *args: object) -> None:
        while len(self._pending) >= self._max_pending:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(job, *args))

    def __enter__(self) -> BackgroundWrites:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            while self._pending:
                future = self._pending.popleft()
                if exc is None:
                    future.result()
                else:
                    future.exception()  # wait; the error in flight already explains the failure
        finally:
            self._pool.shutdown(wait=True)
