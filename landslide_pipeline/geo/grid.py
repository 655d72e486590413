"""The tile grid: tile size, stride, snapped offsets and tile ids, shared by scenes and tile sets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rasterio.windows import Window

#: The networks downsample five times, so tile sides must be multiples of 2**5.
TILE_MULTIPLE = 32
OUTPUT_COMPRESSIONS = ("none", "deflate", "lzw", "zstd")


@dataclass(frozen=True)
class TilingSpec:
    """How to cut a scene (or a pre-cut tile that is not ``tile_size`` square) into tiles.

    Attributes:
        tile_size: Tile width and height in pixels, a multiple of 32.
        stride: Step between tile origins, at most ``tile_size``; None means ``tile_size``
            (no overlap). A smaller stride makes overlapping tiles.
        max_nodata_fraction: Tiles with a larger share of nodata pixels are skipped.
        compress: Compression of the tile GeoTIFFs. "none" (default) is the fast path: a tile
            is a GDAL-made header plus the raw pixels. Deflate, LZW or Zstandard make GDAL
            encode every tile, which costs 2 to 3 times the time of the whole read.
    """

    tile_size: int = 128
    stride: int | None = None
    max_nodata_fraction: float = 0.5
    compress: str = "none"

    def __post_init__(self) -> None:
        if self.tile_size <= 0 or self.tile_size % TILE_MULTIPLE:
            raise ValueError(f"tile_size must be a positive multiple of {TILE_MULTIPLE}, got {self.tile_size}")
        if self.stride is not None and not 0 < self.stride <= self.tile_size:
            raise ValueError(f"stride must be within 1..tile_size ({self.tile_size}), got {self.stride}")
        if not 0.0 <= self.max_nodata_fraction <= 1.0:
            raise ValueError(f"max_nodata_fraction must be within 0..1, got {self.max_nodata_fraction}")
        if self.compress not in OUTPUT_COMPRESSIONS:
            raise ValueError(f"compress must be one of {OUTPUT_COMPRESSIONS}, got {self.compress!r}")

    @property
    def step(self) -> int:
        return self.stride or self.tile_size


def tile_offsets(length: int, tile_size: int, stride: int) -> list[int]:
    """Tile origins along one axis; the last one is snapped so the tile ends at ``length``.

    Raises:
        ValueError: ``length`` is smaller than ``tile_size``.
    """
    if length < tile_size:
        raise ValueError(f"scene side of {length} px is smaller than the tile size {tile_size}")
    offsets = list(range(0, length - tile_size + 1, stride))
    if offsets[-1] + tile_size < length:
        offsets.append(length - tile_size)
    return offsets


def plan_windows(height: int, width: int, spec: TilingSpec) -> Iterator[Window]:
    """All tile windows of a scene, row by row."""
    for row in tile_offsets(height, spec.tile_size, spec.step):
        for col in tile_offsets(width, spec.tile_size, spec.step):
            yield Window(col, row, spec.tile_size, spec.tile_size)


def tile_id(row_off: int, col_off: int) -> str:
    """The id of the tile whose upper-left pixel is at (row_off, col_off) of its scene."""
    return f"r{row_off:06d}_c{col_off:06d}"


def column_chunks(col_offsets: list[int], tile_size: int, max_width: int) -> list[list[int]]:
    """Groups tile columns so that each group spans at most ``max_width`` pixels (one tile at least).

    Reading a scene one group of columns at a time bounds the memory of a strip of tile rows
    whatever the scene's width.
    """
    chunks: list[list[int]] = [[col_offsets[0]]]
    for col in col_offsets[1:]:
        if col + tile_size - chunks[-1][0] > max_width:
            chunks.append([col])
        else:
            chunks[-1].append(col)
    return chunks
