import numpy as np
import pytest
from PIL import Image

from landslide_pipeline.layout import REPORT
from landslide_pipeline.reports.experiments import write_architecture_report
from landslide_pipeline.reports.markdown import MlflowLinks
from landslide_pipeline.reports.panels import class_panels
from landslide_pipeline_tests.reports.tables import evaluation_frame

LINKS = MlflowLinks("sqlite:///mlruns/mlflow.db", experiment_id="3")
CONFIG = {"label_source": "manual", "architectures": ["unet", "fcn"]}


def example_panels(directory):
    rng = np.random.default_rng(0)
    reference = np.zeros((4, 16, 16), np.uint8)
    reference[:, 2:8, 2:8] = 1
    return class_panels(rng.random((4, 3, 16, 16)), reference, {"unet": reference, "fcn": reference[::-1]},
                        {"small landslides": np.array([0, 2]), "complex background": np.array([3])}, directory)


def test_architecture_report_embeds_the_example_panels_per_class(tmp_path):
    examples = example_panels(tmp_path)
    report = write_architecture_report(evaluation_frame(), tmp_path, LINKS, CONFIG, examples=examples)
    text = (tmp_path / REPORT).read_text(encoding="utf-8")
    section = text.split("## Examples per class (study B, Figs. 10-12)\n", 1)[1].split("\n## ", 1)[0]
    assert "### small landslides\n\n![examples: small landslides](examples_small_landslides.png)" in section
    assert "### complex background\n\n![examples: complex background](examples_complex_background.png)" in section
    assert section.index("### small landslides") < section.index("### complex background")
    assert report.plots[-2:] == [examples["small landslides"], examples["complex background"]]
    for path in examples.values():
        with Image.open(path) as image:
            assert image.format == "PNG"


def test_architecture_report_without_examples_has_no_example_section(tmp_path):
    report = write_architecture_report(evaluation_frame(), tmp_path, LINKS, CONFIG)
    assert "Examples per class" not in report.markdown.read_text(encoding="utf-8")
    assert not list(tmp_path.glob("examples_*.png"))


def test_example_panels_must_lie_in_the_report_folder(tmp_path):
    elsewhere = example_panels(tmp_path)
    (tmp_path / "report").mkdir()
    with pytest.raises(ValueError, match="not a file in the report folder"):
        write_architecture_report(evaluation_frame(), tmp_path / "report", LINKS, CONFIG, examples=elsewhere)
