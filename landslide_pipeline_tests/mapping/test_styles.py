"""QGIS styles and colour tables: what a user sees on opening the maps."""

import sqlite3
import xml.etree.ElementTree as ET

import geopandas as gpd
import pyogrio
import pytest
from shapely.geometry import box

from landslide_pipeline.mapping.styles import (
    CHANGE_COLORS,
    changes_qml,
    landslides_qml,
    mask_qml,
    probability_qml,
    write_raster_style,
)
from landslide_pipeline.mapping.vectorize import write_geopackage


def renderer(qml: str) -> ET.Element:
    root = ET.fromstring(qml.split("\n", 1)[1])  # after the DOCTYPE line
    found = root.find("pipe/rasterrenderer")
    return found if found is not None else root.find("renderer-v2")


def test_mask_style_paints_landslides_red_and_the_rest_transparent():
    style = renderer(mask_qml())
    assert style.get("type") == "paletted"
    entries = {e.get("value"): (e.get("color"), e.get("alpha"), e.get("label")) for e in style.iter("paletteEntry")}
    assert entries == {"0": ("#000000", "0", "not landslide"), "1": ("#e31a1c", "255", "landslide")}


def test_probability_style_ramps_over_zero_to_one():
    style = renderer(probability_qml())
    assert style.get("type") == "singlebandpseudocolor"
    assert [float(i.get("value")) for i in style.iter("item")] == [0.0, 0.5, 1.0]


def test_change_style_has_a_colour_per_kind_of_change():
    style = renderer(changes_qml())
    assert style.get("type") == "categorizedSymbol" and style.get("attr") == "change"
    assert [c.get("value") for c in style.iter("category")] == list(CHANGE_COLORS) == ["new", "grown", "stable", "gone"]
    assert len(list(style.iter("symbol"))) == 4


def test_raster_style_lies_beside_the_raster(tmp_path):
    raster = tmp_path / "mask.tif"
    assert write_raster_style(raster, mask_qml()) == tmp_path / "mask.qml"
    assert (tmp_path / "mask.qml").read_text() == mask_qml()


@pytest.mark.parametrize(("layer", "qml"), [("landslides", landslides_qml()), ("changes", changes_qml())])
def test_geopackage_carries_its_layers_default_style_the_way_qgis_stores_it(tmp_path, layer, qml):
    path = tmp_path / "out.gpkg"
    frame = gpd.GeoDataFrame({"change": ["new"]}, geometry=[box(0, 0, 5, 5)], crs="EPSG:32650")
    write_geopackage(frame, path, layer=layer, style=qml)
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT f_table_name, f_geometry_column, styleQML, useAsDefault FROM layer_styles").fetchall()
        registered = db.execute("SELECT data_type FROM gpkg_contents WHERE table_name = 'layer_styles'").fetchone()
    assert rows == [(layer, "geom", qml, 1)] and registered == ("attributes",)
    assert gpd.read_file(path, layer=layer)["change"].tolist() == ["new"]  # the data are untouched
    assert [name for name, _ in pyogrio.list_layers(path)][0] == layer  # the default layer is still the polygons
