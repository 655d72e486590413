"""Shared fixtures: small georeferenced rasters and polygons made on the fly."""

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
UTM = "EPSG:32650"
ORIGIN = (500_000.0, 4_400_000.0)


def write_raster(path: Path, array: np.ndarray, crs: str | None = UTM, transform=None, nodata=None) -> Path:
    """Writes a (bands, H, W) or (H, W) array as a GeoTIFF."""
    array = array if array.ndim == 3 else array[None]
    transform = transform or from_origin(*ORIGIN, 0.5, 0.5)
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[2], height=array.shape[1],
                       count=array.shape[0], dtype=array.dtype, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(array)
    return path


@pytest.fixture
def small_survey(tmp_path) -> Path:
    """A 200 x 300 px survey at 0.5 m: RGB gradient image, a tilted-plane DEM, one landslide box."""
    return make_small_survey(tmp_path / "raw" / "tiny")


def make_small_survey(folder: Path) -> Path:
    """Writes the ``small_survey`` files into ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, cols = np.mgrid[0:200, 0:300]
    image = np.stack([(cols % 256), (rows % 256), ((rows + cols) % 256)]).astype(np.uint8)
    write_raster(folder / "image.tif", image)
    dem = (100.0 + 0.5 * cols * 0.5).astype(np.float32)  # slope of 0.5 m per m eastwards
    write_raster(folder / "dem.tif", dem[None], nodata=-9999.0)
    x0, y0 = ORIGIN
    landslide = box(x0 + 20, y0 - 40, x0 + 40, y0 - 20)  # 40 x 40 px at 0.5 m
    gpd.GeoDataFrame({"landslide_id": [1]}, geometry=[landslide], crs=UTM).to_file(folder / "landslides.gpkg")
    return folder


def shared_data(name: str) -> Path:
    """A folder of ../shared/data, or skip the test when it is absent (e.g. on a user's machine)."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data {path} is absent (only present beside the project's own checkout)")
    return path
