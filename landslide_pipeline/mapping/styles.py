"""How the maps look when opened: a colour table on ``mask.tif``, QGIS styles (``.qml``) beside
the rasters, and layer styles embedded in the GeoPackages (QGIS's ``layer_styles`` table, which it
applies by default when the layer is opened).

Colours: landslides red (#e31a1c), probability on a white -> yellow -> red ramp, changes coloured
by kind: new red, grown orange, stable grey, gone blue.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from xml.sax.saxutils import quoteattr

from landslide_pipeline.storage import atomic_file

#: mask.tif's colour table: landslide red, the rest black (a TIFF palette holds no alpha: the
#: transparency of 0 and 255 is the QGIS style's and the nodata value's).
MASK_COLORS = {0: (0, 0, 0, 0), 1: (227, 26, 28, 255), 255: (0, 0, 0, 0)}
LANDSLIDE_RGB = (227, 26, 28)
#: A change set's polygons, by their ``change`` value.
CHANGE_COLORS = {"new": (227, 26, 28), "grown": (255, 127, 0), "stable": (150, 150, 150), "gone": (31, 120, 180)}
_HEADER = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"


def _rgba(rgb: tuple[int, int, int], alpha: int) -> str:
    return ",".join(str(v) for v in (*rgb, alpha))


def mask_qml() -> str:
    """A paletted style for ``mask.tif``: landslide red, background transparent."""
    labels = {0: "not landslide", 1: "landslide"}
    entries = "".join(f'<paletteEntry value="{v}" color="#{r:02x}{g:02x}{b:02x}" alpha="{a}" label={quoteattr(labels[v])}/>'
                      for v, (r, g, b, a) in MASK_COLORS.items() if v in labels)
    return (_HEADER + '<qgis version="3.28" styleCategories="Symbology"><pipe>'
            '<rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">'
            f"<colorPalette>{entries}</colorPalette></rasterrenderer></pipe></qgis>\n")


def probability_qml() -> str:
    """A pseudocolour style for ``probability.tif`` (0..1 once the band's scale is applied)."""
    stops = ((0.0, "#ffffff", 0), (0.5, "#fecc5c", 255), (1.0, "#bd0026", 255))
    items = "".join(f'<item value="{v}" color="{c}" alpha="{a}" label="{v:g}"/>' for v, c, a in stops)
    return (_HEADER + '<qgis version="3.28" styleCategories="Symbology"><pipe>'
            '<rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" alphaBand="-1" '
            'classificationMin="0" classificationMax="1"><rastershader>'
            '<colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0">'
            f"{items}</colorrampshader></rastershader></rasterrenderer></pipe></qgis>\n")


def _fill_symbol(name: str, rgb: tuple[int, int, int]) -> str:
    options = {"color": _rgba(rgb, 90), "outline_color": _rgba(rgb, 255), "outline_width": "0.6",
               "outline_width_unit": "MM", "style": "solid", "outline_style": "solid"}
    option_xml = "".join(f'<Option name="{k}" type="QString" value="{v}"/>' for k, v in options.items())
    return (f'<symbol type="fill" name="{name}" alpha="1" clip_to_extent="1" force_rhr="0">'
            f'<layer class="SimpleFill" enabled="1" pass="0" locked="0"><Option type="Map">{option_xml}</Option>'
            "</layer></symbol>")


def landslides_qml() -> str:
    """Landslide polygons: red outline over a translucent red fill."""
    return (_HEADER + '<qgis version="3.28" styleCategories="Symbology">'
            '<renderer-v2 type="singleSymbol" symbollevels="0" enableorderby="0" forceraster="0">'
            f"<symbols>{_fill_symbol('0', LANDSLIDE_RGB)}</symbols></renderer-v2></qgis>\n")


def changes_qml() -> str:
    """Change polygons by their ``change`` value: new, grown, stable, gone."""
    categories = "".join(f'<category symbol="{i}" value="{kind}" label="{kind}" render="true"/>'
                         for i, kind in enumerate(CHANGE_COLORS))
    symbols = "".join(_fill_symbol(str(i), rgb) for i, rgb in enumerate(CHANGE_COLORS.values()))
    return (_HEADER + '<qgis version="3.28" styleCategories="Symbology">'
            '<renderer-v2 type="categorizedSymbol" attr="change" symbollevels="0" enableorderby="0" forceraster="0">'
            f"<categories>{categories}</categories><symbols>{symbols}</symbols></renderer-v2></qgis>\n")


def write_raster_style(raster: Path, qml: str) -> Path:
    """Writes ``<raster stem>.qml`` beside the raster: QGIS applies it when the raster is opened."""
    target = raster.with_suffix(".qml")
    with atomic_file(target) as staging:
        staging.write_text(qml)
    return target


def embed_layer_style(geopackage: Path, layer: str, qml: str, name: str) -> None:
    """Stores ``qml`` as the default style of ``layer`` in the GeoPackage's ``layer_styles`` table
    (created as QGIS creates it, and registered as an attributes table)."""
    with sqlite3.connect(geopackage) as db:
        db.execute("CREATE TABLE IF NOT EXISTS layer_styles (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                   "f_table_catalog TEXT(256), f_table_schema TEXT(256), f_table_name TEXT(256), "
                   "f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, styleSLD TEXT, "
                   "useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30), "
                   "update_time DATETIME DEFAULT CURRENT_TIMESTAMP)")
        db.execute("INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier) "
                   "VALUES ('layer_styles', 'attributes', 'layer_styles')")
        column = db.execute("SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)).fetchone()
        db.execute("DELETE FROM layer_styles WHERE f_table_name = ?", (layer,))
        db.execute("INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, "
                   "styleName, styleQML, styleSLD, useAsDefault, description, owner, ui) "
                   "VALUES ('', '', ?, ?, ?, ?, '', 1, ?, '', '')",
                   (layer, column[0] if column else "geom", name, qml, f"{name} (landslide-pipeline)"))
    db.close()
