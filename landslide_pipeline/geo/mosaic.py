"""One scene from several adjacent GeoTIFF crops, as a GDAL virtual mosaic (VRT) held in memory.

The VRT only points at the crops, so a mosaic costs no copy and no memory: each window read
is served from the crops it overlaps. Crops must share CRS, pixel size, band count, dtype and
nodata, and lie on one pixel grid (offsets of whole pixels). Where crops leave gaps and have no
nodata value, the mosaic gets an alpha band that is 255 over every crop and 0 in the gaps, so
gaps count as nodata instead of black pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import rasterio
from affine import Affine
from rasterio.io import MemoryFile
from shapely import box, union_all

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.rasters import alpha_band, open_raster

_GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32",
               "float32": "Float32", "float64": "Float64", "int8": "Int8"}
_GRID_TOLERANCE_PX = 1e-3


@dataclass(frozen=True)
class _Crop:
    path: Path
    col: int
    row: int
    width: int
    height: int


@contextmanager
def open_scene(images: tuple[Path, ...]) -> Iterator[rasterio.DatasetReader]:
    """Opens a survey's image: the file itself, or a virtual mosaic of several crops.

    Raises:
        SurveyInputError: a crop that cannot be read or does not fit the mosaic's grid.
    """
    if len(images) == 1:
        with open_raster(images[0]) as src:
            yield src
        return
    with MemoryFile(mosaic_vrt(images).encode(), ext=".vrt") as memory, memory.open() as src:
        yield src


def mosaic_vrt(images: tuple[Path, ...]) -> str:
    """The VRT XML of a mosaic of ``images``; they are checked to share one pixel grid."""
    with open_raster(images[0]) as first:
        reference = dict(crs=first.crs, transform=first.transform, count=first.count, dtypes=first.dtypes,
                         nodata=first.nodata, colorinterp=first.colorinterp, has_alpha=alpha_band(first) is not None)
    transform: Affine = reference["transform"]
    if transform.b or transform.d:
        raise SurveyInputError(images[0], "a rotated image cannot be mosaicked; warp it north-up first")
    crops = [_crop(path, reference) for path in images]
    col0, row0 = min(c.col for c in crops), min(c.row for c in crops)
    crops = [_Crop(c.path, c.col - col0, c.row - row0, c.width, c.height) for c in crops]
    width, height = max(c.col + c.width for c in crops), max(c.row + c.height for c in crops)
    covered = union_all([box(c.col, c.row, c.col + c.width, c.row + c.height) for c in crops]).area
    needs_alpha = covered < width * height and reference["nodata"] is None and not reference["has_alpha"]
    origin = transform @ Affine.translation(col0, row0)
    bands = [_band_xml(b, reference, crops) for b in range(1, reference["count"] + 1)]
    if needs_alpha:
        bands.append(_coverage_alpha_xml(reference["count"] + 1, reference["dtypes"][0], crops))
    geotransform = ", ".join(repr(v) for v in (origin.c, origin.a, origin.b, origin.f, origin.d, origin.e))
    srs = f"<SRS>{escape(reference['crs'].to_wkt())}</SRS>" if reference["crs"] else ""
    return (f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">{srs}'
            f"<GeoTransform>{geotransform}</GeoTransform>{''.join(bands)}</VRTDataset>")


def _crop(path: Path, reference: dict) -> _Crop:
    with open_raster(path) as src:
        found = [
            f"CRS {src.crs} differs from {reference['crs']}" if src.crs != reference["crs"] else None,
            f"{src.count} bands, not {reference['count']}" if src.count != reference["count"] else None,
            f"dtype {src.dtypes[0]}, not {reference['dtypes'][0]}" if src.dtypes != reference["dtypes"] else None,
            f"nodata {src.nodata}, not {reference['nodata']}" if not _same_nodata(src.nodata, reference["nodata"])
            else None,
            f"pixel size {src.res} differs" if not _same_linear(src.transform, reference["transform"]) else None,
        ]
        problems = [p for p in found if p is not None]
        if problems:
            raise SurveyInputError(path, f"cannot join the mosaic: {'; '.join(problems)}")
        col, row = ~reference["transform"] @ (src.transform.c, src.transform.f)
        if abs(col - round(col)) > _GRID_TOLERANCE_PX or abs(row - round(row)) > _GRID_TOLERANCE_PX:
            raise SurveyInputError(path, f"lies {col % 1:.3f}, {row % 1:.3f} px off the mosaic's pixel grid; "
                                         "resample it onto the grid of the other crops")
        return _Crop(Path(path).resolve(), round(col), round(row), src.width, src.height)


def _same_linear(a: Affine, b: Affine) -> bool:
    scale = max(abs(b.a), abs(b.e))
    return all(abs(x - y) <= 1e-9 * scale for x, y in zip((a.a, a.b, a.d, a.e), (b.a, b.b, b.d, b.e)))


def _same_nodata(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and a != a and b != b)  # NaN == NaN here


def _rects(crop: _Crop) -> str:
    return (f'<SrcRect xOff="0" yOff="0" xSize="{crop.width}" ySize="{crop.height}"/>'
            f'<DstRect xOff="{crop.col}" yOff="{crop.row}" xSize="{crop.width}" ySize="{crop.height}"/>')


def _band_xml(band: int, reference: dict, crops: list[_Crop]) -> str:
    nodata = reference["nodata"]
    kind = "ComplexSource" if nodata is not None else "SimpleSource"
    source_nodata = f"<NODATA>{nodata!r}</NODATA>" if nodata is not None else ""
    sources = "".join(
        f'<{kind}><SourceFilename relativeToVRT="0">{escape(str(c.path))}</SourceFilename>'
        f"<SourceBand>{band}</SourceBand>{_rects(c)}{source_nodata}</{kind}>" for c in crops)
    nodata_xml = f"<NoDataValue>{nodata!r}</NoDataValue>" if nodata is not None else ""
    interp = reference["colorinterp"][band - 1].name.capitalize()
    return (f'<VRTRasterBand dataType="{_GDAL_TYPES[reference["dtypes"][band - 1]]}" band="{band}">'
            f"{nodata_xml}<ColorInterp>{interp}</ColorInterp>{sources}</VRTRasterBand>")


def _coverage_alpha_xml(band: int, dtype: str, crops: list[_Crop]) -> str:
    # Every pixel of a crop becomes 0 * value + 255; the VRT starts at 0 where no crop lies.
    sources = "".join(
        f'<ComplexSource><SourceFilename relativeToVRT="0">{escape(str(c.path))}</SourceFilename>'
        f"<SourceBand>1</SourceBand>{_rects(c)}<ScaleOffset>255</ScaleOffset><ScaleRatio>0</ScaleRatio>"
        f"</ComplexSource>" for c in crops)
    return (f'<VRTRasterBand dataType="{_GDAL_TYPES[dtype]}" band="{band}"><ColorInterp>Alpha</ColorInterp>'
            f"{sources}</VRTRasterBand>")
