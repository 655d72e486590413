import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from landslide_pipeline.reports.markdown import (
    DEFAULT_MLFLOW_UI,
    MarkdownReport,
    MlflowLinks,
    runs_from_table,
    toml_document,
)
from landslide_pipeline_tests.reports.tables import evaluation_frame


def table_cells(text: str) -> list[list[str]]:
    """The cells of every Markdown table row in ``text`` (headers and rules included)."""
    return [[cell.strip() for cell in line.strip().strip("|").split(" | ")]
            for line in text.splitlines() if line.startswith("|")]


CONFIG = {
    "profile": "cpu",
    "epochs": 3,
    "learning_rate": 1e-3,
    "use_terrain": True,
    "architectures": ["unet", "fcn"],
    "note": 'a "quoted" | piped\ttabbed\nline, ünïcode',
    "output": Path("/data/models"),
    "training_set": {"augment_factor": 5, "contrast": 0.2, "seed": np.int64(0), "crop": {"scale_min": 0.75}},
    "empty": {},
    "odd key": float("inf"),
}


def test_report_holds_table_rows_image_links_config_and_run_links(tmp_path):
    table = evaluation_frame(architectures=("unet",), folds=2, splits=("validation", "test"))
    plot = tmp_path / "experiment" / "plots" / "architectures.png"
    plot.parent.mkdir(parents=True)
    plot.write_bytes(b"png")
    links = MlflowLinks("sqlite:////work/mlruns/mlflow.db", experiment_id="3")

    report = (MarkdownReport("Architectures").heading("Scores")
              .table(table[["architecture", "fold", "split", "f1"]])
              .image(plot, "scores per architecture").config(CONFIG)
              .run_links(links, runs_from_table(table)))
    path = report.write(tmp_path / "experiment" / "report.md")
    text = path.read_text(encoding="utf-8")

    assert text.startswith("# Architectures\n\n## Scores\n")
    cells = table_cells(text)
    assert cells[0] == ["architecture", "fold", "split", "f1"]
    expected = [[r.architecture, str(r.fold), r.split, f"{r.f1:.3f}"] for r in table.itertuples()]
    assert cells[2:2 + len(table)] == expected  # every row, floats at 3 decimals
    assert "![scores per architecture](plots/architectures.png)" in text  # relative to the report
    run_id = table["mlflow_run_id"].iloc[0]
    assert f"[{run_id}](http://127.0.0.1:5000/#/experiments/3/runs/{run_id})" in text
    assert text.count("/#/experiments/3/runs/") == 2  # one per fold model, not per split
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    assert tomllib.loads(block)["training_set"]["crop"] == {"scale_min": 0.75}
    assert sorted(p.name for p in path.parent.iterdir()) == ["plots", "report.md"]  # no staging file left


def test_table_cells_render_with_their_values(tmp_path):
    frame = pd.DataFrame({"architecture": ["unet", "fcn"], "f1_mean": [0.81234, 0.7], "note": ["a|b", "c"]})
    text = MarkdownReport("t").table(frame).render(tmp_path)
    cells = table_cells(text)
    assert cells[0] == ["architecture", "f1_mean", "note"]
    # the pipe inside a cell is escaped, so the row keeps its three cells
    assert cells[2:] == [["unet", "0.812", "a\\|b"], ["fcn", "0.700", "c"]]
    assert MarkdownReport("t").table(frame.iloc[:0]).render(tmp_path).endswith("_(no rows)_\n")


def test_image_links_are_relative_to_the_report_folder(tmp_path):
    report = MarkdownReport("t").image(tmp_path / "plots" / "a b.png", "a").image(Path("panels/p.png"), "p [x]")
    text = report.render(tmp_path / "reports")
    assert "![a](../plots/a%20b.png)" in text
    assert "![p \\[x\\]](panels/p.png)" in text  # a relative path is taken as relative to the report


def test_mlflow_links_use_a_tracking_server_or_the_configured_ui():
    run = "0123456789abcdef0123456789abcdef"
    assert MlflowLinks("sqlite:///mlruns/mlflow.db", "1").run_url(run) == f"{DEFAULT_MLFLOW_UI}/#/experiments/1/runs/{run}"
    assert (MlflowLinks("file:///tmp/mlruns", "1", ui_base_url="http://host:8080/").run_url(run)
            == f"http://host:8080/#/experiments/1/runs/{run}")
    assert (MlflowLinks("https://mlflow.example.org/", "7").run_url(run)
            == f"https://mlflow.example.org/#/experiments/7/runs/{run}")
    with pytest.raises(ValueError, match="empty run id"):
        MlflowLinks("sqlite:///m.db", "1").run_url("")


def test_runs_from_table_gives_one_labelled_run_per_model_and_skips_unlogged_ones():
    table = evaluation_frame(architectures=("unet", "fcn"), folds=2, label_sources=("manual", "obia"))
    table.loc[(table["architecture"] == "fcn") & (table["label_source"] == "obia"), "mlflow_run_id"] = ""
    runs = runs_from_table(table)
    assert list(runs) == ["manual unet 0", "manual unet 1", "manual fcn 0", "manual fcn 1", "obia unet 0", "obia unet 1"]
    assert runs["obia unet 1"] == table.query("label_source == 'obia' and architecture == 'unet' and fold == 1")[
        "mlflow_run_id"].iloc[0]
    with pytest.raises(ValueError, match="'mlflow_run_id'"):
        runs_from_table(table.drop(columns="mlflow_run_id"))


def test_toml_config_round_trips():
    parsed = tomllib.loads(toml_document(CONFIG))
    expected = {**CONFIG, "output": "/data/models",
                "training_set": {"augment_factor": 5, "contrast": 0.2, "seed": 0, "crop": {"scale_min": 0.75}}}
    assert parsed == expected


def test_toml_config_rejects_none_naming_the_key():
    with pytest.raises(TypeError, match=r"training\.stride"):
        toml_document({"training": {"stride": None}})


def test_json_config_block_round_trips(tmp_path):
    text = MarkdownReport("t").config({"a": 1, "b": [1.5, "x"], "p": Path("/x")}, fmt="json").render(tmp_path)
    block = text.split("```json\n", 1)[1].split("```", 1)[0]
    assert json.loads(block) == {"a": 1, "b": [1.5, "x"], "p": "/x"}
    with pytest.raises(ValueError, match="'yaml'"):
        MarkdownReport("t").config({}, fmt="yaml")


def test_write_replaces_an_earlier_report(tmp_path):
    path = tmp_path / "r.md"
    MarkdownReport("first").write(path)
    MarkdownReport("second").paragraph("body").write(path)
    assert path.read_text(encoding="utf-8") == "# second\n\nbody\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.md"]
