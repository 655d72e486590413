import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib import colormaps
from PIL import Image

from landslide_pipeline.reports.plots import fold_summary, plot_architectures, plot_comparison, plot_training_size
from landslide_pipeline.schemas import EvaluationTable
from landslide_pipeline_tests.reports.tables import evaluation_frame

TAB10 = [tuple(int(round(255 * c)) for c in colormaps["tab10"](i)[:3]) for i in range(10)]


def png_pixels(path) -> np.ndarray:
    """The PNG's pixels as (H, W, 3) uint8, after checking that it is a real, sizeable PNG."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= 500 and image.height >= 400
        return np.asarray(image.convert("RGB"))


def has_colour(pixels: np.ndarray, colour: tuple[int, int, int], at_least: int = 50) -> bool:
    return int(np.all(pixels == colour, axis=-1).sum()) >= at_least


@pytest.fixture(autouse=True)
def no_leaked_figures():
    assert plt.get_fignums() == []
    yield
    assert plt.get_fignums() == []


def test_the_test_frame_is_evaluation_table_shaped():
    EvaluationTable.validate(evaluation_frame())


def test_plot_architectures_writes_a_png_with_one_bar_colour_per_metric(tmp_path):
    path = tmp_path / "plots" / "architectures.png"
    assert plot_architectures(evaluation_frame(), path, split="test") == path
    pixels = png_pixels(path)
    # The four metrics are the first four palette colours; the lower panels reuse two of them.
    assert all(has_colour(pixels, TAB10[i]) for i in range(4))
    assert not has_colour(pixels, TAB10[5], at_least=1)
    assert sorted(p.name for p in path.parent.iterdir()) == ["architectures.png"]


def test_plot_architectures_names_the_missing_column(tmp_path):
    with pytest.raises(ValueError, match="'kappa'"):
        plot_architectures(evaluation_frame().drop(columns="kappa"), tmp_path / "a.png")
    with pytest.raises(ValueError, match="'train_seconds'.*'parameters'|'parameters'.*'train_seconds'"):
        plot_architectures(evaluation_frame().drop(columns=["parameters", "train_seconds"]), tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []


def test_plot_architectures_rejects_an_absent_split_and_mixed_label_sources(tmp_path):
    with pytest.raises(ValueError, match="no rows for split 'test'.*validation"):
        plot_architectures(evaluation_frame(splits=("validation",)), tmp_path / "a.png", split="test")
    with pytest.raises(ValueError, match="filter the table"):
        plot_architectures(evaluation_frame(label_sources=("manual", "obia")), tmp_path / "a.png")


def test_plots_refuse_a_path_that_is_not_png(tmp_path):
    with pytest.raises(ValueError, match=r"\.png"):
        plot_architectures(evaluation_frame(), tmp_path / "a.jpg")


def test_fold_summary_is_mean_and_sample_std_over_folds():
    rows = pd.DataFrame({"architecture": ["unet"] * 3 + ["fcn"], "f1": [0.6, 0.7, 0.8, 0.5]})
    summary = fold_summary(rows, ["architecture"], ["f1"]).set_index("architecture")
    # unet: mean (0.6 + 0.7 + 0.8) / 3 = 0.7; sample std sqrt((0.01 + 0 + 0.01) / 2) = 0.1
    assert summary.loc["unet", "f1_mean"] == pytest.approx(0.7)
    assert summary.loc["unet", "f1_std"] == pytest.approx(0.1)
    # a single fold has no spread: drawn without an error bar rather than with NaN
    assert summary.loc["fcn", "f1_std"] == 0.0


def test_plot_comparison_by_label_source_draws_one_colour_per_source(tmp_path):
    table = evaluation_frame(label_sources=("manual", "obia"))
    path = plot_comparison(table, "label_source", tmp_path / "sources.png", split="test")
    pixels = png_pixels(path)
    assert has_colour(pixels, TAB10[0]) and has_colour(pixels, TAB10[1])
    assert not has_colour(pixels, TAB10[2], at_least=1)


def test_plot_comparison_by_bands_with_a_level_one_architecture_lacks(tmp_path):
    table = pd.concat([evaluation_frame(seed=1).assign(bands="rgb"),
                       evaluation_frame(architectures=("unet",), seed=2).assign(bands="rgb+dem")])
    path = plot_comparison(table, "bands", tmp_path / "bands.png", levels=["rgb", "rgb+dem"])
    assert has_colour(png_pixels(path), TAB10[1])


def test_plot_comparison_errors_name_the_factor_and_level(tmp_path):
    table = evaluation_frame()
    with pytest.raises(ValueError, match="'bands'"):
        plot_comparison(table, "bands", tmp_path / "b.png")
    with pytest.raises(ValueError, match="label_source has no rows for \\['obia'\\]"):
        plot_comparison(table, "label_source", tmp_path / "b.png", levels=["manual", "obia"])


def test_plot_training_size_draws_a_line_per_architecture(tmp_path):
    table = pd.concat([evaluation_frame(seed=size).assign(train_tiles=size) for size in (10, 40, 160)])
    path = plot_training_size(table, tmp_path / "size.png")
    pixels = png_pixels(path)
    assert has_colour(pixels, TAB10[0]) and has_colour(pixels, TAB10[1])


def test_plot_training_size_names_the_missing_column_and_repeated_rows(tmp_path):
    with pytest.raises(ValueError, match="'train_tiles'"):
        plot_training_size(evaluation_frame(), tmp_path / "size.png")
    doubled = pd.concat([evaluation_frame().assign(train_tiles=10)] * 2)
    with pytest.raises(ValueError, match="train_tiles x fold"):
        plot_training_size(doubled, tmp_path / "size.png")


def test_relative_improvement_is_study_bs_fig_9_and_plots_per_size(tmp_path):
    from landslide_pipeline.reports.experiments import compared_pair, relative_improvement, variant_summary
    from landslide_pipeline.reports.plots import plot_relative_improvement

    table = pd.concat([evaluation_frame(("unet", "linknet"), seed=size).assign(
        train_tiles=size, variant=f"n={size}", train_seconds=1.0) for size in (10, 40, 160)])
    assert compared_pair(["unet", "linknet", "fcn"]) == ("linknet", "unet")
    improvement = relative_improvement(variant_summary(table), *compared_pair(["unet", "linknet"]))
    assert len(improvement) == 6 and sorted(set(improvement["train_tiles"])) == [10, 40, 160]
    row = improvement[(improvement["split"] == "test") & (improvement["train_tiles"] == 40)].iloc[0]
    folds = table[(table["split"] == "test") & (table["train_tiles"] == 40)]
    linknet, unet = (folds.loc[folds["architecture"] == a, "f1"].mean() for a in ("linknet", "unet"))
    assert row["f1_change"] == pytest.approx((linknet - unet) / unet)
    path = plot_relative_improvement(improvement, tmp_path / "improvement.png")
    pixels = png_pixels(path)
    assert has_colour(pixels, TAB10[0]) and has_colour(pixels, TAB10[2])  # precision and F1 bars
