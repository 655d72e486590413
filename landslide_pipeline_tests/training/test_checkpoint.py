import json
import re

import numpy as np
import pytest
import torch

from landslide_pipeline.metrics.calibration import ProbabilityHistogram
from landslide_pipeline.nn.segmenter import BandNormalization, NormalizedNetwork, Segmenter
from landslide_pipeline.training.checkpoint import (
    ModelFileError,
    ModelInputError,
    ModelSpec,
    fold_ensemble,
    load_model,
    member_spec,
    read_spec,
    save_calibration,
    save_model,
)
from landslide_pipeline.training.loop import init_model


def fold_model(fold: int, mean: float) -> tuple[Segmenter, ModelSpec]:
    normalization = BandNormalization([mean] * 3, [0.2] * 3)
    network = init_model("linknet", 3, 0.125, seed=fold)
    member = member_spec(network, "linknet", 0.125, fold, normalization, best_epoch=3, train_seconds=10.0,
                         mlflow_run_id=f"run{fold}")
    spec = ModelSpec(["red", "green", "blue"], "uint8", [member], threshold=0.4, mlflow_run_id=f"run{fold}")
    return Segmenter([NormalizedNetwork(normalization, network)]).eval(), spec


def test_a_saved_model_reloads_identically_with_its_contract(tmp_path):
    model, spec = fold_model(0, 0.3)
    save_model(tmp_path, model, spec)
    loaded, loaded_spec = load_model(tmp_path)
    assert loaded_spec == spec
    assert (loaded_spec.kind, loaded_spec.fold, loaded_spec.architecture) == ("single", 0, "linknet")
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(loaded(x), model(x))


def test_the_input_contract_refuses_other_band_counts_and_dtypes():
    _, spec = fold_model(0, 0.3)
    spec.check_input(3, "uint8")
    with pytest.raises(ModelInputError, match="4 input bands, the model takes 3"):
        spec.check_input(4, "uint8")
    with pytest.raises(ModelInputError, match="uint16 imagery, the model was trained on uint8"):
        spec.check_input(3, "uint16")


def test_a_model_folder_of_the_flat_format_still_loads(tmp_path):
    network = init_model("unet", 3, 0.125, seed=1).eval()
    torch.save(network.state_dict(), tmp_path / "weights.pt")
    (tmp_path / "model.json").write_text(json.dumps({
        "architecture": "unet", "in_channels": 3, "num_classes": 2, "width": 0.125, "bands": ["red", "green", "blue"],
        "fold": 2, "label_source": "manual", "parameters": 5, "best_epoch": 4, "train_seconds": 1.0,
        "mlflow_run_id": "abc"}))
    model, spec = load_model(tmp_path)
    assert (spec.fold, spec.threshold, spec.image_scaling, spec.best_epoch) == (2, 0.5, "any", 4)
    spec.check_input(3, "uint16")  # no recorded contract: not checked
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(model(x), network(x).softmax(1))


def test_a_fold_ensemble_averages_its_members_at_the_pooled_out_of_fold_threshold(tmp_path):
    dirs = []
    rng = np.random.default_rng(0)
    pooled = ProbabilityHistogram()
    for fold in range(3):
        model, spec = fold_model(fold, 0.2 + 0.1 * fold)
        directory = tmp_path / f"fold_{fold}"
        save_model(directory, model, spec)
        histogram = ProbabilityHistogram()
        truth = rng.random((4, 8, 8)) < 0.2
        histogram.add(np.clip(np.where(truth, 0.3, 0.1) + rng.normal(0, 0.05, truth.shape), 0, 1), truth)
        save_calibration(directory, histogram)
        pooled = pooled + histogram
        dirs.append(directory)
    ensemble, spec, histogram = fold_ensemble(dirs, flips=True)
    assert (spec.kind, spec.fold, len(spec.members), spec.flips) == ("ensemble", -1, 3, True)
    assert spec.threshold == pooled.best_threshold()[0] and histogram.pixels == pooled.pixels
    x = torch.rand(1, 3, 32, 32)
    members = [load_model(d)[0] for d in dirs]
    flip = lambda m, x: (m(x) + m(x.flip(-1)).flip(-1) + m(x.flip(-2)).flip(-2)) / 3  # noqa: E731
    torch.testing.assert_close(ensemble(x), sum(flip(m, x) for m in members) / 3)
    save_model(tmp_path / "ensemble", ensemble, spec)
    assert read_spec(tmp_path / "ensemble") == spec
    torch.testing.assert_close(load_model(tmp_path / "ensemble")[0](x), ensemble(x))


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty", "another model's"])
def test_unreadable_weights_fail_naming_the_file_the_architecture_and_the_fold(tmp_path, damage):
    model, spec = fold_model(2, 0.3)
    save_model(tmp_path, model, spec)
    weights = tmp_path / "weights.pt"
    content = weights.read_bytes()
    if damage == "another model's":
        torch.save(init_model("unet", 3, 0.125, seed=0).state_dict(), weights)
    else:
        damaged = {"truncated": content[:len(content) // 2], "empty": b"",
                   "random bytes": np.random.default_rng(0).bytes(len(content))}
        weights.write_bytes(damaged[damage])
    with pytest.raises(ModelFileError, match=re.escape(f"{weights}: cannot load the weights of the linknet model "
                                                       "(fold 2)")):
        load_model(tmp_path)


@pytest.mark.parametrize("content", [b"{", b"[]", b'{"bands": ["red"]}', b"\xff\xfe"],
                         ids=["truncated", "a list", "missing keys", "not utf-8"])
def test_an_unreadable_model_description_fails_naming_the_file(tmp_path, content):
    model, spec = fold_model(0, 0.3)
    save_model(tmp_path, model, spec)
    (tmp_path / "model.json").write_bytes(content)
    with pytest.raises(ModelFileError, match=re.escape(f"{tmp_path / 'model.json'}: not a readable model description")):
        load_model(tmp_path)
