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
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from landslide_pipeline.geo.errors import SurveyInputError

AREA_SHAPES = ("polygon", "rectangle", "circle")
#: The shape labels that mark a landslide unless a survey or adapter names others.
DEFAULT_LABEL_NAMES = ("landslide",)
#: The keys every Labelme file has.
LABELME_KEYS = ("imageHeight", "imageWidth", "shapes")


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


def json_label_format(path: Path) -> str:
    """Tells a .json label file's format by its content: "geojson" (it has a ``type``) or "labelme".

    A file with any Labelme key counts as Labelme, so that ``read_labelme`` can name the keys it lacks.

    Raises:
        SurveyInputError: the file is not valid JSON, or is neither GeoJSON nor Labelme.
    """
    data = _load_json(path)
    if isinstance(data, dict) and "type" in data:
        return "geojson"
    if isinstance(data, dict) and data.keys() & {*LABELME_KEYS, "imagePath", "imageData"}:
        return "labelme"
    raise SurveyInputError(path, "neither Labelme JSON (an object with imageHeight, imageWidth and shapes) nor "
                                 'GeoJSON (an object with a "type")')


def read_labelme(path: Path, names: tuple[str, ...]) -> LabelmeDocument:
    """Reads the shapes whose label is in ``names``.

    Raises:
        SurveyInputError: unreadable or invalid JSON, a missing or non-integer image size, no
            shapes list, or a landslide shape that is not an area (line, point) or has too few
            points.
    """
    data = _load_json(path)
    missing = [key for key in LABELME_KEYS if key not in data] if isinstance(data, dict) else list(LABELME_KEYS)
    if missing:
        raise SurveyInputError(path, f"not a Labelme file: missing {', '.join(missing)} (Labelme JSON is an object "
                                     f"with {', '.join(LABELME_KEYS)})")
    height, width = _image_size(path, data)
    raw_shapes = data["shapes"]
    if not isinstance(raw_shapes, list) or not all(isinstance(s, dict) for s in raw_shapes):
        raise SurveyInputError(path, f"malformed Labelme file: shapes must be a list of objects, got {raw_shapes!r:.80}")
    try:
        shapes = tuple(_shape(path, i, s) for i, s in enumerate(raw_shapes) if s.get("label") in names)
    except (AttributeError, TypeError) as err:
        raise SurveyInputError(path, f"malformed Labelme shape ({err})") from err
    return LabelmeDocument(path=Path(path), height=height, width=width, shapes=shapes)


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise SurveyInputError(path, f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise SurveyInputError(path, f"cannot read JSON ({err})") from err


def _image_size(path: Path, data: dict) -> tuple[int, int]:
    try:
        height, width = int(data["imageHeight"]), int(data["imageWidth"])
    except (TypeError, ValueError) as err:
        raise SurveyInputError(path, f"not a Labelme file: imageHeight and imageWidth must be integers ({err})") from err
    if height <= 0 or width <= 0:
        raise SurveyInputError(path, f"not a Labelme file: the image size {height}x{width} px is empty")
    return height, width


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
