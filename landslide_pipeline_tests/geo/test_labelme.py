import json

import numpy as np
import pytest

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.labelme import is_labelme, labelme_mask, read_labelme
from landslide_pipeline.geo.rasters import open_raster
from landslide_pipeline_tests.conftest import shared_data


def labelme_file(path, shapes, height=20, width=30):
    path.write_text(json.dumps({"version": "5.0.2", "shapes": shapes, "imageHeight": height, "imageWidth": width}))
    return path


def test_polygons_are_drawn_as_labelme_draws_them(tmp_path):
    path = labelme_file(tmp_path / "a.json", [
        {"label": "landslide", "shape_type": "polygon", "points": [[2, 2], [8, 2], [8, 6], [2, 6]]},
        {"label": "landslide", "shape_type": "circle", "points": [[20, 10], [22, 10]]},
        {"label": "tree", "shape_type": "polygon", "points": [[0, 0], [29, 0], [29, 19]]},
    ])
    document = read_labelme(path, ("landslide",))
    mask = labelme_mask(document, (20, 30))
    expected = np.zeros((20, 30), np.uint8)
    expected[2:7, 2:9] = 1  # outline included: columns 2..8, rows 2..6
    assert (mask[:, :15] == expected[:, :15]).all()
    assert mask[10, 18:23].all() and not mask[10, 23:].any()
    assert mask[:, 15:].sum() == 21  # a 5 x 5 disc without its corners
    # Drawing a window of the image shifts the shapes: pixel (0, 0) is image pixel (2, 5).
    np.testing.assert_array_equal(labelme_mask(document, (8, 8), row_off=2, col_off=5), mask[2:10, 5:13])


def test_labelme_is_told_from_geojson(tmp_path):
    assert is_labelme(labelme_file(tmp_path / "a.json", []))
    (tmp_path / "b.json").write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    assert not is_labelme(tmp_path / "b.json")


@pytest.mark.parametrize("shape, problem", [
    ({"label": "landslide", "shape_type": "point", "points": [[1, 1]]}, "is a point"),
    ({"label": "landslide", "shape_type": "polygon", "points": [[1, 1], [2, 2]]}, "has 2 points; needs 3"),
    ({"label": "landslide", "shape_type": "polygon", "points": [[1, "x"], [2, 2], [3, 1]]}, "malformed points"),
])
def test_shapes_that_are_no_area_are_refused(tmp_path, shape, problem):
    with pytest.raises(SurveyInputError, match=problem):
        read_labelme(labelme_file(tmp_path / "a.json", [shape]), ("landslide",))


def test_a_json_without_image_size_is_refused(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"shapes": []}))
    with pytest.raises(SurveyInputError, match="a.json: not a Labelme file"):
        read_labelme(tmp_path / "a.json", ("landslide",))


def test_masks_equal_the_ones_labelme_exported_for_the_coseismic_tiles():
    folder = shared_data("coseismic_labelme")
    differing, total = 0, 0
    for path in sorted((folder / "labelme").glob("*.json"))[:8]:
        mask = labelme_mask(read_labelme(path, ("landslide",)), (256, 256))
        with open_raster(folder / "masks" / f"{path.stem}.png") as src:
            exported = src.read(1)
        differing += int((mask != exported).sum())
        total += mask.size
    assert differing / total < 1e-5
