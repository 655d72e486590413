"""Labelme JSON: landslide polygons drawn in an image's pixel space.

Masks are drawn the way Labelme itself draws them (``labelme.utils.shape_to_mask``: a Pillow
polygon filled *and* outlined, integer coordinates at pixel centres), so a mask made here equals
the one Labelme's own export makes; on the coseismic data set they differ in 1 pixel of
1.3 million. Pixels touched by the outline count as landslide, unlike vector labels, which are
burnt with pixel centres inside only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from landslide_pipeline.geo.errors import SurveyInputError

AREA_SHAPES = ("polygon", "rectangle", "circle")
#: The shape labels that mark a landslide unless a survey or adapter names others.
DEFAULT_LABEL_NAMES = ("landslide",)


@dataclass(frozen=True)
class LabelmeShape:
    """One annotated area: its shape type and its points (x = column, y = row)."""

    shape_type: str
    points: tuple[tuple[float, float], ...]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(min x, min y, max x, max y), circles included."""
        xs, ys = [p[0] for p in self.points], [p[1] for p in self.points]
        if self.shape_type == "circle":
            radius = math.dist(self.points[0], self.points[1])
            return xs[0] - radius, ys[0] - radius, xs[0] + radius, ys[0] + radius
        return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True)
class LabelmeDocument:
    """The landslide shapes of one Labelme file and the image size it was drawn on."""

    path: Path
    height: int
    width: int
    shapes: tuple[LabelmeShape, ...]


def is_labelme(path: Path) -> bool:
    """Whether a .json file is a Labelme annotation rather than GeoJSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "shapes" in data and "imageHeight" in data


def read_labelme(path: Path, names: tuple[str, ...]) -> LabelmeDocument:
    """Reads the shapes whose label is in ``names``.

    Raises:
        SurveyInputError: unreadable JSON, a missing image size, or a landslide shape that is
            not an area (line, point) or has too few points.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        height, width = int(data["imageHeight"]), int(data["imageWidth"])
        raw_shapes = data["shapes"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SurveyInputError(path, f"cannot read Labelme JSON ({err})") from err
    except (KeyError, TypeError, ValueError) as err:
        raise SurveyInputError(path, f"not a Labelme file: needs imageHeight, imageWidth and shapes ({err})") from err
    try:
        shapes = tuple(_shape(path, i, s) for i, s in enumerate(raw_shapes) if s.get("label") in names)
    except (AttributeError, TypeError) as err:
        raise SurveyInputError(path, f"malformed Labelme shape ({err})") from err
    return LabelmeDocument(path=Path(path), height=height, width=width, shapes=shapes)


def _shape(path: Path, index: int, raw: dict) -> LabelmeShape:
    shape_type = raw.get("shape_type") or "polygon"
    try:
        points = tuple((float(x), float(y)) for x, y in raw.get("points", []))
    except ValueError as err:
        raise SurveyInputError(path, f"shape {index} has malformed points ({err})") from err
    needed = 3 if shape_type == "polygon" else 2
    if shape_type not in AREA_SHAPES:
        raise SurveyInputError(path, f"shape {index} ({raw.get('label')!r}) is a {shape_type}; a landslide "
                                     f"must be one of {AREA_SHAPES}")
    if len(points) < needed:
        raise SurveyInputError(path, f"shape {index} ({shape_type}) has {len(points)} points; needs {needed}")
    return LabelmeShape(shape_type, points)


def labelme_mask(document: LabelmeDocument, shape: tuple[int, int], row_off: int = 0, col_off: int = 0) -> np.ndarray:
    """Draws the shapes into a uint8 {0, 1} mask of ``shape`` whose pixel (0, 0) is the image's
    pixel (row_off, col_off), as Labelme draws them."""
    height, width = shape
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for item in document.shapes:
        x0, y0, x1, y1 = item.bounds
        if x1 < col_off - 1 or y1 < row_off - 1 or x0 > col_off + width or y0 > row_off + height:
            continue
        xy = [(x - col_off, y - row_off) for x, y in item.points]
        if item.shape_type == "circle":
            radius = math.dist(xy[0], xy[1])
            (cx, cy) = xy[0]
            draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=1, fill=1)
        elif item.shape_type == "rectangle":
            (ax, ay), (bx, by) = xy[0], xy[1]
            draw.rectangle([min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)], outline=1, fill=1)
        else:
            draw.polygon(xy, outline=1, fill=1)
    return np.asarray(canvas, dtype=np.uint8)
