"""``landslide evaluate`` on pre-cut data sets made on the fly, on real data, and on MLflow models."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from landslide_pipeline.cli import EVALUATE_KEYS, main
from landslide_pipeline.metrics import confusion_counts, segmentation_metrics
from landslide_pipeline.nn.segmenter import BandNormalization, NormalizedNetwork, Segmenter
from landslide_pipeline.training.checkpoint import MemberSpec, ModelSpec, save_model
from landslide_pipeline.training.features import scale_image
from landslide_pipeline.training.loop import init_model
from landslide_pipeline_tests.conftest import shared_data
from landslide_pipeline_tests.datasets.test_precut import write_plain

THRESHOLD = 0.45


class RedIsLandslide(torch.nn.Module):
    """Landslide logit = 12 x (red - 0.5): a model whose answer is known pixel by pixel."""

    def forward(self, x):
        logit = 12 * (x[:, 0] - 0.5)
        return torch.stack([torch.zeros_like(logit), logit], dim=1)


def red_model(folder: Path) -> tuple[Path, Segmenter, ModelSpec]:
    """A model folder, and the model that loading it gives (the network is no registry one)."""
    member = MemberSpec("unet", 0.125, 0, (0.0,) * 3, (1.0,) * 3)
    spec = ModelSpec(["red", "green", "blue"], "uint8", [member], threshold=THRESHOLD)
    model = Segmenter([NormalizedNetwork(BandNormalization([0.0] * 3, [1.0] * 3), RedIsLandslide())])
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(json.dumps(spec.to_dict()))
    return folder, model, spec


def l4s_like(root: Path, n: int = 5, size: int = 100, dtype=np.uint8) -> list[tuple[np.ndarray, np.ndarray]]:
    """PNG tiles like Landslide4Sense's (RGBA, masks {0, 255}), of a side that is no multiple of 32."""
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(n):
        rgb = rng.integers(0, np.iinfo(dtype).max, (3, size, size), dtype=dtype)
        mask = (rng.random((size, size)) < 0.3).astype(np.uint8)
        alpha = np.full((1, size, size), np.iinfo(dtype).max, dtype)
        write_plain(root / "images" / f"image_{i}.png", np.concatenate([rgb, alpha]), "PNG", alpha=True)
        write_plain(root / "masks" / f"mask_{i}.png", np.repeat(mask[None] * 255, 4, axis=0), "PNG")
        pairs.append((rgb, mask))
    return pairs


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["evaluate", *argv, "--quiet"])
    out, err = capsys.readouterr()
    return code, out, err


def test_scores_a_model_folder_on_a_pre_cut_data_set_exactly(tmp_path, capsys, monkeypatch):
    pairs = l4s_like(tmp_path / "data")
    folder, model, spec = red_model(tmp_path / "model")
    monkeypatch.setattr("landslide_pipeline.cli.load_model", lambda directory, device: (model, spec))
    code, out, _ = run(capsys, str(folder), "--dataset", "l4s_rgb", str(tmp_path / "data"))
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert tuple(result) == EVALUATE_KEYS
    probability = [1 / (1 + np.exp(-12 * (scale_image(rgb)[0] - 0.5))) for rgb, _ in pairs]
    counts = confusion_counts(np.stack(probability) > THRESHOLD, np.stack([m for _, m in pairs]))
    expected = segmentation_metrics(counts)
    assert result["n_tiles"] == 5 and result["threshold"] == THRESHOLD and result["model"] == str(folder)
    for key in ("precision", "recall", "f1", "iou", "kappa"):
        assert result[key] == pytest.approx(expected[key], abs=1e-6)
    assert "calibrated (p > 0.45)" in out and "arg-max (p > 0.5)" in out


def test_imagery_of_another_dtype_or_band_count_is_refused_clearly(tmp_path, capsys):
    l4s_like(tmp_path / "data", n=2, size=64, dtype=np.uint16)
    folder = tmp_path / "model"
    network = init_model("unet", 3, 0.125, seed=0)
    member = MemberSpec("unet", 0.125, 0, (0.0,) * 3, (1.0,) * 3)
    save_model(folder, Segmenter([NormalizedNetwork(BandNormalization([0.0] * 3, [1.0] * 3), network)]),
               ModelSpec(["red", "green", "blue"], "uint8", [member]))
    code, out, err = run(capsys, str(folder), "--dataset", "l4s_rgb", str(tmp_path / "data"))
    assert code == 2 and out == ""
    assert "is uint16 imagery, the model was trained on uint8 imagery" in err


@pytest.mark.parametrize("model, message", [
    ("no/such/folder", "neither a model folder"),
    ("models:/landslide-segmenter@champion", "not in the model registry"),
    ("0123456789abcdef0123456789abcdef", "has no weights/ model folder"),
])
def test_models_that_do_not_exist_are_named(tmp_path, capsys, monkeypatch, model, message):
    monkeypatch.chdir(tmp_path)
    l4s_like(tmp_path / "data", n=1, size=32)
    code, _, err = run(capsys, model, "--dataset", "l4s_rgb", str(tmp_path / "data"),
                       "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db")
    assert code == 2 and message in err


def test_scores_a_model_on_all_of_landslide4sense_validation(tmp_path, capsys):
    validation = shared_data("l4s_rgb") / "validation"
    folder = tmp_path / "model"
    member = MemberSpec("linknet", 0.125, 0, (0.2,) * 3, (0.1,) * 3)
    torch.manual_seed(0)
    network = init_model("linknet", 3, 0.125, seed=0)
    save_model(folder, Segmenter([NormalizedNetwork(BandNormalization([0.2] * 3, [0.1] * 3), network)]),
               ModelSpec(["red", "green", "blue"], "uint8", [member], threshold=0.5))
    code, out, _ = run(capsys, str(folder), "--dataset", "l4s_rgb", str(validation), "--batch-size", "32")
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and result["n_tiles"] == 396
    assert 0 <= result["f1"] <= 1 and -1 <= result["kappa"] <= 1


def test_train_runs_the_chain_on_the_named_surveys_with_the_profile(tmp_path, monkeypatch):
    calls = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("landslide_pipeline.demo.run_project", lambda root, surveys, config, train: calls.append(
        (root, surveys, config, train, os.environ["LANDSLIDE_FOLDS"], os.environ["LANDSLIDE_ARCHITECTURES"],
         os.environ.get("LANDSLIDE_INPUT_SETS"))))
    monkeypatch.setenv("LANDSLIDE_INPUT_SETS", "rgb-slope,rgb")  # restored after the test
    monkeypatch.setenv("LANDSLIDE_FOLDS", "5")
    monkeypatch.setenv("LANDSLIDE_ARCHITECTURES", "linknet")
    (tmp_path / "data" / "raw" / "pit_2024").mkdir(parents=True)
    assert main(["train", "pit_2024", "--epochs", "12", "--folds", "3", "--architectures", "unet,fcn"]) == 0
    assert calls == [(tmp_path, ["pit_2024"], {"trained_model": {"profile": "cpu", "epochs": 12}},
                      {"unet": {}, "fcn": {}}, "3", "unet,fcn", "rgb-slope")]
    monkeypatch.setenv("LANDSLIDE_ARCHITECTURES", "linknet,unet,resunet,fcn")
    monkeypatch.setenv("LANDSLIDE_FOLDS", "5")
    assert main(["train", "pit_2024"]) == 0  # by default LinkNet, the cpu profile's choice; partitions unchanged
    assert calls[-1][3:] == ({"linknet": {}}, "5", "linknet,unet,resunet,fcn", "rgb-slope")
    # Image-only variants: their partitions exist, and the training set needs no DEM.
    assert main(["train", "pit_2024", "--architectures", "linknet@rgb,unet@rgb"]) == 0
    assert calls[-1][2] == {"trained_model": {"profile": "cpu"}, "training_set": {"use_terrain": False}}
    assert calls[-1][3:] == ({"linknet@rgb": {}, "unet@rgb": {}}, "5", "linknet,unet", "rgb")


def test_train_on_several_label_sources_trains_each_source_alike(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("landslide_pipeline.demo.run_project",
                        lambda root, surveys, config, train, source_plans: calls.append((train, source_plans)))
    monkeypatch.setenv("LANDSLIDE_ARCHITECTURES", "linknet")
    monkeypatch.setenv("LANDSLIDE_INPUT_SETS", "rgb-slope")
    (tmp_path / "data" / "raw" / "pit").mkdir(parents=True)
    assert main(["train", "pit", "--architectures", "unet", "--label-sources", "manual,obia,union"]) == 0
    assert calls == [({"unet": {}}, {"obia": {"unet": {}}, "union": {"unet": {}}})]
    for argument, error in (("--label-sources=lidar", "unknown label source 'lidar'"),
                            ("--architectures=unet@rgb-lidar", "unknown input set 'rgb-lidar'")):
        with pytest.raises(SystemExit) as usage:
            main(["train", "pit", argument])
        assert usage.value.code == 2 and error in capsys.readouterr().err


def test_train_names_survey_folders_that_are_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "nowhere"]) == 2
    assert "no survey folder" in capsys.readouterr().err


def test_clean_removes_every_generated_output_and_keeps_the_users_surveys(tmp_path, monkeypatch, capsys):
    from landslide_pipeline.layout import DataLayout

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LANDSLIDE_ARTIFACT_ROOT", raising=False)
    layout = DataLayout(tmp_path / "data")
    for name in DataLayout.GENERATED:
        (layout.root / name / "x").mkdir(parents=True)
    for survey in ("demo_pit", "demo_pit_rgb", "my_mine"):
        (layout.raw_survey(survey)).mkdir(parents=True)
    (tmp_path / "mlruns" / "artifacts").mkdir(parents=True)
    (tmp_path / "mlruns" / "mlflow.db").write_bytes(b"db")
    (tmp_path / ".dagster").mkdir()
    assert main(["clean", "--data", "data"]) == 0
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["raw"]
    assert [p.name for p in layout.raw.iterdir()] == ["my_mine"]
    assert not (tmp_path / ".dagster").exists() and list((tmp_path / "mlruns").iterdir()) == []
    removed = len(DataLayout.GENERATED) + 2 + 2 + 1  # the generated folders, 2 demo surveys, the MLflow store, .dagster
    assert f"{removed} generated output(s) removed" in capsys.readouterr().out
