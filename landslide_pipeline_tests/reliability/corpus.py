"""A corpus of bad inputs, each made on the fly from a good survey, and how the pipeline takes it.

Each case spoils a freshly made good survey folder (``make_good_survey``) after a first good run
has left outputs (tiles and labels), then runs the survey chain as the assets do: ``open_survey``,
``inspect``, ``tile`` and ``label``, each output written through ``storage.atomic_directory``.
The outcome is judged on four counts:

- **clear**: the run fails with an error that names the case's file (or it is a case that must be
  accepted, and it is);
- **partial**: a staging or trash folder, or a half-written output, is left behind;
- **lost**: the previous good outputs are gone or changed although the run failed.

``bench/reliability.py`` prints these counts over the corpus; ``test_corpus.py`` runs every case.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import Polygon, box

from landslide_pipeline.geo.grid import TilingSpec
from landslide_pipeline.layout import LABEL_INDEX, TILE_INDEX, DataLayout, LabelSource
from landslide_pipeline.storage import atomic_directory
from landslide_pipeline.surveys import open_survey
from landslide_pipeline_tests.conftest import ORIGIN, UTM, write_raster
from landslide_pipeline_tests.conftest import make_small_survey as make_good_survey

SURVEY = "site"
SPEC = TilingSpec(64)


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        name: What is wrong.
        spoil: Spoils the survey folder; returns the file the error must name.
        accepted: The input is odd but valid: the run must succeed.
    """

    name: str
    spoil: Callable[[Path], str]
    accepted: bool = False


@dataclass(frozen=True)
class Outcome:
    """How the pipeline took one case."""

    case: str
    error: str | None
    clear: bool
    partial: list[str]
    lost: bool


def prepare(layout: DataLayout) -> tuple[Path, Path]:
    """Tiles and labels of the survey: (tiles folder, labels folder)."""
    survey = open_survey(layout.raw_survey(SURVEY))
    survey.inspect()
    with atomic_directory(layout.tiles(SURVEY)) as staging:
        index = survey.tile(staging, SPEC)
        index.to_parquet(staging / TILE_INDEX, index=False)
    if survey.has_labels:
        with atomic_directory(layout.labels(LabelSource.MANUAL, SURVEY)) as staging:
            survey.label(index, staging).to_parquet(staging / LABEL_INDEX, index=False)
    return layout.tiles(SURVEY), layout.labels(LabelSource.MANUAL, SURVEY)


def run_case(case: Case, root: Path) -> Outcome:
    """Runs one case in ``root`` (an empty folder) and judges the outcome."""
    layout = DataLayout(root / "data")
    make_good_survey(layout.raw_survey(SURVEY))
    tiles, labels = prepare(layout)
    before = snapshot(tiles) | snapshot(labels)
    named = case.spoil(layout.raw_survey(SURVEY))
    try:
        prepare(layout)
    except (ValueError, OSError, RuntimeError, MemoryError) as err:  # SurveyInputError is a ValueError
        error = f"{type(err).__name__}: {err}"
        after = snapshot(tiles) | snapshot(labels)
        return Outcome(case.name, error, clear=not case.accepted and named in str(err),
                       partial=leftovers(layout.root), lost=after != before)
    return Outcome(case.name, None, clear=case.accepted, partial=leftovers(layout.root), lost=False)


def snapshot(folder: Path) -> dict[str, int]:
    """Relative path -> size of every file under ``folder``: what must not change on a failed run."""
    return {str(p.relative_to(folder.parent)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def leftovers(root: Path) -> list[str]:
    """Staging and trash paths of atomic writes left under ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name)


# --- the cases ---------------------------------------------------------------------------------

def _text_as_tiff(folder: Path) -> str:
    (folder / "image.tif").write_bytes(b"not a tiff, just text")
    return "image.tif"


def _truncated_tiff(folder: Path) -> str:
    rows, cols = np.mgrid[0:512, 0:512]
    image = np.stack([cols % 251, rows % 241, (rows * cols) % 239]).astype(np.uint8)
    path = folder / "image.tif"
    with rasterio.open(path, "w", driver="GTiff", width=512, height=512, count=3, dtype="uint8", crs=UTM,
                       transform=from_origin(*ORIGIN, 0.5, 0.5), tiled=True, blockxsize=64, blockysize=64) as dst:
        dst.write(image)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    (folder / "landslides.gpkg").unlink()
    (folder / "dem.tif").unlink()  # the header is intact: only reading the pixels can tell
    return "image.tif"


def _int32_image(folder: Path) -> str:
    write_raster(folder / "image.tif", np.zeros((3, 200, 300), np.int32))
    return "image.tif"


def _no_crs_with_dem(folder: Path) -> str:
    write_raster(folder / "image.tif", np.zeros((3, 200, 300), np.uint8), crs=None, transform=from_origin(0, 200, 1, 1))
    return "image.tif"


def _dem_not_covering(folder: Path) -> str:
    write_raster(folder / "dem.tif", np.zeros((20, 20), np.float32))
    return "dem.tif"


def _dem_without_crs(folder: Path) -> str:
    write_raster(folder / "dem.tif", np.zeros((200, 300), np.float32), crs=None)
    return "dem.tif"


def _labels_far_away(folder: Path) -> str:
    far = box(ORIGIN[0] + 5000, ORIGIN[1] + 5000, ORIGIN[0] + 5010, ORIGIN[1] + 5010)
    gpd.GeoDataFrame({"id": [1]}, geometry=[far], crs=UTM).to_file(folder / "landslides.gpkg")
    return "landslides.gpkg"


def _labels_without_crs(folder: Path) -> str:
    (folder / "landslides.gpkg").unlink()
    x0, y0 = ORIGIN
    gpd.GeoDataFrame({"id": [1]}, geometry=[box(x0 + 20, y0 - 40, x0 + 40, y0 - 20)]).to_file(
        folder / "landslides.geojson")
    return "landslides.geojson"


def _labels_not_vector(folder: Path) -> str:
    (folder / "landslides.gpkg").write_bytes(b"SQLite format 3\x00 but cut short")
    return "landslides.gpkg"


def _only_lines_as_labels(folder: Path) -> str:
    x0, y0 = ORIGIN
    from shapely.geometry import LineString

    gpd.GeoDataFrame({"id": [1]}, geometry=[LineString([(x0 + 5, y0 - 5), (x0 + 50, y0 - 50)])], crs=UTM).to_file(
        folder / "landslides.gpkg")
    return "landslides.gpkg"


def _self_intersecting_polygon(folder: Path) -> str:
    x0, y0 = ORIGIN
    bowtie = Polygon([(x0 + 10, y0 - 10), (x0 + 50, y0 - 50), (x0 + 50, y0 - 10), (x0 + 10, y0 - 50)])
    gpd.GeoDataFrame({"id": [1]}, geometry=[bowtie], crs=UTM).to_file(folder / "landslides.gpkg")
    return "landslides.gpkg"  # repaired (make_valid): accepted


def _labelme_other_size(folder: Path) -> str:
    (folder / "landslides.gpkg").unlink()
    (folder / "landslides.json").write_text(json.dumps({"imageHeight": 100, "imageWidth": 300, "shapes": []}))
    return "landslides.json"


def _broken_json_labels(folder: Path) -> str:
    (folder / "landslides.gpkg").unlink()
    (folder / "landslides.json").write_text('{"shapes": [')
    return "landslides.json"


def _toml(text: str) -> Callable[[Path], str]:
    def spoil(folder: Path) -> str:
        (folder / "survey.toml").write_text(text)
        return "survey.toml"
    return spoil


def _missing_named_dem(folder: Path) -> str:
    (folder / "survey.toml").write_text('dem = "lidar.tif"\n')
    return "lidar.tif"


def _scene_smaller_than_a_tile(folder: Path) -> str:
    write_raster(folder / "image.tif", np.zeros((3, 40, 40), np.uint8))
    (folder / "landslides.gpkg").unlink()
    return "image.tif"


def _all_nodata_image(folder: Path) -> str:
    write_raster(folder / "image.tif", np.zeros((3, 200, 300), np.uint8), nodata=0)
    (folder / "landslides.gpkg").unlink()
    return "image.tif"


def _bands_beyond_the_image(folder: Path) -> str:
    (folder / "survey.toml").write_text("bands = [1, 2, 5]\n")
    return "image.tif"


def _geopackage_without_layer(folder: Path) -> str:
    import sqlite3

    (folder / "landslides.gpkg").unlink()
    with sqlite3.connect(folder / "landslides.gpkg") as db:  # a valid GeoPackage shell, no table
        db.execute("PRAGMA application_id = 1196444487")
        db.execute("CREATE TABLE gpkg_contents (table_name TEXT PRIMARY KEY, data_type TEXT)")
    return "landslides.gpkg"


def _empty_label_layer(folder: Path) -> str:
    gpd.GeoDataFrame({"id": []}, geometry=[], crs=UTM).to_file(folder / "landslides.gpkg")
    return "landslides.gpkg"  # a survey without landslides: accepted, all-zero masks


def _unclosed_geojson_ring(folder: Path) -> str:
    (folder / "landslides.gpkg").unlink()
    x0, y0 = ORIGIN
    ring = [[x0 + 10, y0 - 10], [x0 + 30, y0 - 10], [x0 + 30, y0 - 30]]  # not closed, 3 points
    feature = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}
    (folder / "landslides.geojson").write_text(json.dumps({
        "type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32650"}},
        "features": [feature]}))
    return "landslides.geojson"


def _json_neither_labelme_nor_geojson(folder: Path) -> str:
    (folder / "landslides.gpkg").unlink()
    (folder / "landslides.json").write_text(json.dumps({"version": "5.0", "shapes": "none"}))
    return "landslides.json"


def _all_nodata_dem(folder: Path) -> str:
    write_raster(folder / "dem.tif", np.full((200, 300), -9999.0, np.float32), nodata=-9999.0)
    return "dem.tif"


def _vrt_as_geopackage(folder: Path) -> str:
    (folder / "landslides.gpkg").write_text('<OGRVRTDataSource><OGRVRTLayer name="x"><SrcDataSource>'
                                            "/vsicurl/http://127.0.0.1:9/x.geojson</SrcDataSource></OGRVRTLayer>"
                                            "</OGRVRTDataSource>")
    return "landslides.gpkg"


def _vrt_as_tif(folder: Path) -> str:
    (folder / "image.tif").write_text('<VRTDataset rasterXSize="300" rasterYSize="200"><VRTRasterBand band="1">'
                                      "<SimpleSource><SourceFilename>/etc/hostname</SourceFilename></SimpleSource>"
                                      "</VRTRasterBand></VRTDataset>")
    return "image.tif"


CASES: list[Case] = [
    Case("text file named image.tif", _text_as_tiff),
    Case("GeoTIFF truncated after its header", _truncated_tiff),
    Case("int32 image", _int32_image),
    Case("image without CRS but with a DEM", _no_crs_with_dem),
    Case("DEM that does not cover the image", _dem_not_covering),
    Case("DEM without CRS", _dem_without_crs),
    Case("labels far away", _labels_far_away),
    Case("GeoJSON labels without CRS", _labels_without_crs),
    Case("label file that is no vector file", _labels_not_vector),
    Case("labels holding only lines", _only_lines_as_labels),
    Case("self-intersecting label polygon (repaired)", _self_intersecting_polygon, accepted=True),
    Case("Labelme labels drawn on another image size", _labelme_other_size),
    Case("broken JSON labels", _broken_json_labels),
    Case("survey.toml: invalid TOML", _toml("bands = [1, 2\n")),
    Case("survey.toml: unknown key", _toml('dme = "dem.tif"\n')),
    Case("survey.toml: wrong type", _toml('bands = "red"\n')),
    Case("survey.toml: bad date", _toml('date = "yesterday"\n')),
    Case("survey.toml: unknown terrain band", _toml('terrain_bands = ["aspect"]\n')),
    Case("survey.toml: source folder missing", _toml('source = "../nowhere"\n')),
    Case("survey.toml: tiles without adapter", _toml('kind = "tiles"\n')),
    Case("survey.toml: zero band number", _toml("bands = [0, 1]\n")),
    Case("survey.toml: a DEM it names is missing", _missing_named_dem),
    Case("bands the image does not have", _bands_beyond_the_image),
    Case("scene smaller than a tile", _scene_smaller_than_a_tile),
    Case("image that is all nodata", _all_nodata_image),
    Case("GeoPackage without any layer", _geopackage_without_layer),
    Case("empty label layer (a survey without landslides)", _empty_label_layer, accepted=True),
    Case("GeoJSON polygon with an unclosed ring", _unclosed_geojson_ring),
    Case("JSON labels that are neither Labelme nor GeoJSON", _json_neither_labelme_nor_geojson),
    Case("survey.toml: nodata = nan on uint8 imagery", _toml("nodata = nan\n")),
    Case("survey.toml: nodata outside the uint8 range", _toml("nodata = 300\n")),
    Case("DEM that is all nodata", _all_nodata_dem),
    Case("label file holding OGR VRT XML that points at a URL", _vrt_as_geopackage),
    Case("image.tif holding VRT XML that points at another file", _vrt_as_tif),
]
