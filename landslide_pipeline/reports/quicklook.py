"""A map's quicklook and report: what a geohazard engineer glances at before opening QGIS.

``quicklook.png``: the survey image (decimated, each crop of a mosaic in its place) with the
landslide outlines in red, a scale bar, a north arrow and a legend. ``report.md``: counts, areas,
the largest landslides and the model that mapped them, with the quicklook.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from PIL import Image
from rasterio.enums import Resampling

from landslide_pipeline.mapping.styles import LANDSLIDE_RGB
from landslide_pipeline.reports.markdown import MarkdownReport
from landslide_pipeline.reports.panels import stretch_rgb
from landslide_pipeline.reports.plots import save_png

#: The longest side of the image drawn, in pixels (the figure is 6.5 inches wide at 120 dpi).
QUICKLOOK_SIDE = 780
#: The quicklook in the asset's metadata (the event log) stays under this size.
INLINE_BYTES = 400_000
LARGEST_SHOWN = 10
_RED = "#{:02x}{:02x}{:02x}".format(*LANDSLIDE_RGB)


def quicklook(images: Sequence[Path], polygons: gpd.GeoDataFrame, out: Path, title: str) -> Path:
    """Draws the quicklook PNG of a mapped scene and returns its path."""
    with rasterio.open(images[0]) as first:
        crs = first.crs
    fig = Figure(figsize=(6.5, 6.5))
    ax = fig.add_subplot()
    for image in images:
        _draw_image(ax, image)
    if len(polygons):
        polygons.to_crs(crs).boundary.plot(ax=ax, color=_RED, linewidth=0.9)
    ax.set_title(title, fontsize=10)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    ax.ticklabel_format(useOffset=False, style="plain")  # full map coordinates, no "+4.4e6"
    _scale_bar(ax, crs.is_geographic)
    _north_arrow(ax)
    ax.legend(handles=[Line2D([], [], color=_RED, linewidth=1.5, label=f"landslide ({len(polygons)})")],
              loc="lower right", fontsize=8, framealpha=0.85)
    fig.tight_layout()
    return save_png(fig, out)


def thumbnail_png(path: Path, max_bytes: int = INLINE_BYTES) -> bytes:
    """The quicklook as PNG bytes of at most ``max_bytes``: as written when small enough, else in
    256 colours, halved until it fits (a noisy orthomosaic compresses badly)."""
    data = path.read_bytes()
    with Image.open(path) as original:
        image = original.convert("RGB")
    while len(data) > max_bytes and min(image.size) > 64:
        buffer = io.BytesIO()
        image.quantize(256).save(buffer, "PNG", optimize=True)
        data = buffer.getvalue()
        image = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
    return data


def _draw_image(ax: Axes, image: Path) -> None:
    with rasterio.open(image) as src:
        step = max(1.0, max(src.width, src.height) / QUICKLOOK_SIDE)
        shape = (max(1, round(src.height / step)), max(1, round(src.width / step)))
        bands = list(range(1, min(3, src.count) + 1))
        pixels = src.read(bands, out_shape=(len(bands), *shape), resampling=Resampling.average, masked=True)
        bounds = src.bounds
    rgb = stretch_rgb(np.ma.filled(pixels.astype(np.float64), np.nan))
    alpha = np.where(np.ma.getmaskarray(pixels).all(axis=0), 0, 255).astype(np.uint8)
    ax.imshow(np.dstack([rgb, alpha]), extent=(bounds.left, bounds.right, bounds.bottom, bounds.top),
              interpolation="nearest")


def _scale_bar(ax: Axes, geographic: bool) -> None:
    """A bar of a round length (1, 2 or 5 x 10^n m) near a fifth of the view's width."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    metres_per_unit = 111_320 * math.cos(math.radians((y0 + y1) / 2)) if geographic else 1.0
    wanted = (x1 - x0) * metres_per_unit / 5
    magnitude = 10 ** math.floor(math.log10(wanted))
    length_m = max(m * magnitude for m in (1, 2, 5) if m * magnitude <= wanted)
    length = length_m / metres_per_unit
    left, bottom = x0 + 0.04 * (x1 - x0), y0 + 0.05 * (y1 - y0)
    ax.add_patch(Rectangle((left, bottom), length, 0.012 * (y1 - y0), facecolor="black", edgecolor="white",
                           linewidth=0.8))
    label = f"{length_m / 1000:g} km" if length_m >= 1000 else f"{length_m:g} m"
    ax.text(left + length / 2, bottom + 0.025 * (y1 - y0), label, ha="center", va="bottom", fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})


def _north_arrow(ax: Axes) -> None:
    """North is up: the maps keep their CRS, whose grid north the image's rows follow."""
    ax.annotate("N", xy=(0.94, 0.95), xytext=(0.94, 0.84), xycoords="axes fraction", ha="center", va="center",
                fontsize=10, fontweight="bold",
                arrowprops={"facecolor": "black", "edgecolor": "white", "width": 3, "headwidth": 9},
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})


def largest_landslides(polygons: gpd.GeoDataFrame, n: int = LARGEST_SHOWN) -> pd.DataFrame:
    """The ``n`` largest landslides: area, perimeter, mean probability and the centre's coordinates."""
    largest = polygons.nlargest(n, "area_m2")
    centres = largest.geometry.representative_point()
    return largest.assign(x=centres.x.round(1), y=centres.y.round(1))[
        ["area_m2", "perimeter_m", "mean_probability", "x", "y"]].reset_index(drop=True)


def map_report(out: Path, title: str, facts: dict[str, Any], polygons: gpd.GeoDataFrame, image: Path) -> Path:
    """``report.md``: the model, counts and areas, the largest landslides and the quicklook."""
    model = (f"{facts.get('model')} v{facts.get('version')} (alias `{facts.get('alias')}`, "
             f"run `{facts.get('mlflow_run_id')}`)" if facts.get("alias") else f"{facts.get('model')}")
    report = MarkdownReport(title)
    report.paragraph(f"Mapped with {model}; decision threshold {facts.get('threshold', 'the model’s')}.")
    report.paragraph(f"**{len(polygons)} landslides**, {float(polygons['area_m2'].sum()):,.0f} m² in all, "
                     f"{100 * float(facts.get('landslide_fraction', 0.0)):.2f} % of the valid area.")
    report.image(image, "quicklook: the image with the landslide outlines")
    report.heading(f"The {min(LARGEST_SHOWN, len(polygons))} largest landslides")
    report.table(largest_landslides(polygons), floatfmt=".1f")
    return report.write(out)
