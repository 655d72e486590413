"""The map's quicklook, its thumbnail for the asset metadata, and the map report."""

import io
from pathlib import Path

import geopandas as gpd
import numpy as np
from PIL import Image

from landslide_pipeline.reports.quicklook import largest_landslides, map_report, quicklook, thumbnail_png
from landslide_pipeline.synthetic import SyntheticSurveySpec, generate_survey


def polygons_of(survey) -> gpd.GeoDataFrame:
    frame = gpd.read_file(survey.landslides)
    return frame.assign(area_m2=frame.area, perimeter_m=frame.length, mean_probability=0.9)


def test_quicklook_and_report_of_a_mapped_survey(tmp_path):
    survey = generate_survey(tmp_path / "pit", SyntheticSurveySpec(size_px=256, seed=5, n_landslides=4))
    polygons = polygons_of(survey)
    png = quicklook([survey.image], polygons, tmp_path / "map" / "quicklook.png", "Landslides of pit")
    with Image.open(png) as image:
        assert image.format == "PNG" and min(image.size) >= 600
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert ((pixels == (227, 26, 28)).all(axis=1)).sum() > 50  # the red outlines are drawn
    facts = {"model": "models:/landslide-segmenter@champion", "alias": "champion", "version": 7,
             "mlflow_run_id": "abc123", "threshold": 0.42, "landslide_fraction": 0.05}
    report = map_report(tmp_path / "map" / "report.md", "Landslides of pit", facts, polygons, png).read_text()
    assert "v7 (alias `champion`, run `abc123`)" in report and "decision threshold 0.42" in report
    assert f"**{len(polygons)} landslides**" in report and "![quicklook" in report and "](quicklook.png)" in report
    largest = largest_landslides(polygons, 2)
    assert list(largest["area_m2"]) == sorted(polygons["area_m2"], reverse=True)[:2]


def test_thumbnail_fits_the_event_log_and_keeps_small_images_as_they_are(tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (900, 900, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noisy.png")
    small = thumbnail_png(tmp_path / "noisy.png", 200_000)
    assert len(small) <= 200_000 and Image.open(io.BytesIO(small)).format == "PNG"
    Image.fromarray(noise[:50, :50]).save(tmp_path / "tiny.png")
    assert thumbnail_png(Path(tmp_path / "tiny.png"), 200_000) == (tmp_path / "tiny.png").read_bytes()
