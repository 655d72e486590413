import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from landslide_pipeline.nn.segmenter import NormalizedNetwork, Segmenter
from landslide_pipeline.training.augment import AugmentationSpec
from landslide_pipeline.training.dataset import TrainingSet
from landslide_pipeline.training.loop import (
    FoldData,
    TrainingConfig,
    fit_normalization,
    init_model,
    learning_rate_factor,
    predict_masks,
    train_segmentation,
)
from landslide_pipeline.training.losses import LOSSES, DiceLoss, FocalLoss, class_weights, make_loss

CPU = torch.device("cpu")


def bright_squares(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy tiles with a bright square (the 'landslide') at a random place."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.3, 0.05, (n, 3, 32, 32)).astype(np.float32)
    y = np.zeros((n, 32, 32), dtype=np.uint8)
    for i in range(n):
        r, c = rng.integers(0, 20, 2)
        x[i, :, r:r + 10, c:c + 10] += 0.5
        y[i, r:r + 10, c:c + 10] = 1
    return x, y


def squares_fold(n_train: int = 32, n_val: int = 8) -> FoldData:
    (xt, yt), (xv, yv) = bright_squares(n_train, 0), bright_squares(n_val, 1)
    tiles = pd.DataFrame({"survey_id": "s", "tile_id": [f"t{i}" for i in range(n_train + n_val)],
                          "fold": [1] * n_train + [0] * n_val})
    samples = TrainingSet(np.concatenate([xt, xv]), np.concatenate([yt, yv]), tiles, ["red", "green", "blue"], "float")
    return FoldData(samples, np.arange(n_train), np.arange(n_train, n_train + n_val))


@pytest.fixture(scope="module")
def data() -> FoldData:
    return squares_fold()


def model_for(data: FoldData, architecture: str = "unet", seed: int = 0) -> NormalizedNetwork:
    return NormalizedNetwork(fit_normalization(data), init_model(architecture, 3, 0.125, seed=seed))


def test_training_learns_and_keeps_the_best_epoch_and_its_threshold(data):
    model = model_for(data)
    result = train_segmentation(model, data, TrainingConfig(epochs=10, batch_size=8), CPU)
    assert len(result.history) == 10
    assert result.best_val_f1 == max(r.val_f1_calibrated for r in result.history)
    assert result.best_val_f1 > 0.6
    assert result.threshold == result.history[result.best_epoch - 1].val_threshold
    assert result.best_val_f1 >= result.history[result.best_epoch - 1].val_f1  # calibrated >= arg-max
    masks = predict_masks(Segmenter([model]), data.samples.images[data.val], result.threshold, device=CPU)
    truth = data.samples.masks[data.val]
    tp = (masks & truth).sum()
    assert 2 * tp / (masks.sum() + truth.sum()) == pytest.approx(result.best_val_f1, abs=1e-6)
    assert result.histogram.pixels == truth.size


def test_normalisation_comes_from_the_training_tiles_only(data):
    normalization = fit_normalization(data)
    train = data.samples.images[data.train]
    np.testing.assert_allclose(normalization.mean.flatten().numpy(), train.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(normalization.std.flatten().numpy(), train.std(axis=(0, 2, 3)), rtol=1e-4)


def test_resume_after_interruption_equals_an_uninterrupted_run(data, tmp_path):
    config = TrainingConfig(epochs=4, batch_size=8, seed=3, schedule="cosine", warmup_epochs=1, optimizer="adamw",
                            weight_decay=1e-4, augmentation=AugmentationSpec(geometric_p=0.5, photometric_p=0.5))
    straight = model_for(data, seed=3)
    train_segmentation(straight, data, config, CPU)

    class Interrupt(Exception):
        pass

    def stop_after_two(report):
        if report.epoch == 2:
            raise Interrupt

    checkpoint = tmp_path / "ckpt.pt"
    with pytest.raises(Interrupt):
        train_segmentation(model_for(data, seed=3), data, config, CPU, stop_after_two, checkpoint)
    resumed_model = model_for(data, seed=99)  # weights come from the checkpoint
    resumed = train_segmentation(resumed_model, data, config, CPU, checkpoint=checkpoint)
    assert resumed.resumed_from_epoch == 2
    assert [r.epoch for r in resumed.history] == [1, 2, 3, 4]
    for a, b in zip(straight.state_dict().values(), resumed_model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_same_seed_same_weights(data):
    config = TrainingConfig(epochs=1, batch_size=8, seed=5)
    a, b = (model_for(data, "linknet", seed=5) for _ in range(2))
    train_segmentation(a, data, config, CPU)
    train_segmentation(b, data, config, CPU)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_warmup_then_cosine_and_step_decay_schedules():
    cosine = TrainingConfig(epochs=10, schedule="cosine", warmup_epochs=2)
    factors = [learning_rate_factor(cosine, step, 5) for step in range(50)]
    assert factors[0] == pytest.approx(1 / 25)
    assert max(factors) == pytest.approx(1.0) and factors.index(max(factors)) == 10  # end of warm-up
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))  # then only down
    assert factors[-1] < 0.01
    step = TrainingConfig(epochs=90, schedule="step", step_size=30, gamma=0.1)
    assert [learning_rate_factor(step, e * 4, 4) for e in (0, 29, 30, 60)] == pytest.approx([1, 1, 0.1, 0.01])


def test_nan_pixels_do_not_poison_training(data):
    images = np.array(data.samples.images)
    images[data.train, 0, :4, :4] = np.nan  # a no-data corner in every training tile
    samples = TrainingSet(images, data.samples.masks, data.samples.tiles, data.samples.bands, "float")
    fold = FoldData(samples, data.train, data.val)
    model = NormalizedNetwork(fit_normalization(fold), init_model("unet", 3, 0.125, seed=0))
    assert torch.isfinite(model[0].mean).all()
    result = train_segmentation(model, fold, TrainingConfig(epochs=3, batch_size=8), CPU)
    assert all(math.isfinite(r.train_loss) for r in result.history)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_scattered_nan_in_one_band_of_float_imagery_far_out_of_range_trains_finite(data):
    """A float survey in 0..10,200 with NaN in one band at 1 % of pixels: the model's per-band
    normalisation scales it and fills the NaN (also where augmentation's resampling spreads them)."""
    images = np.array(data.samples.images) * 10_200.0
    rng = np.random.default_rng(0)
    images[:, 1][rng.random(images[:, 1].shape) < 0.01] = np.nan
    samples = TrainingSet(images, data.samples.masks, data.samples.tiles, data.samples.bands, "float")
    fold = FoldData(samples, data.train, data.val)
    model = NormalizedNetwork(fit_normalization(fold), init_model("unet", 3, 0.125, seed=0))
    assert float(model.normalization.std.min()) > 100  # statistics of the imagery as it is, NaN left out
    result = train_segmentation(model, fold, TrainingConfig(epochs=3, batch_size=8), CPU)
    assert all(math.isfinite(r.train_loss) and math.isfinite(r.val_loss) for r in result.history)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert result.best_val_f1 > 0


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_is_lower_for_the_right_answer(name):
    y = np.zeros((2, 8, 8), dtype=np.uint8)
    y[:, 2:5, 2:5] = 1
    target = torch.from_numpy(y).long()
    right = torch.stack([1 - target, target], dim=1).float() * 8 - 4
    loss = make_loss(name, np.bincount(y.ravel(), minlength=2))
    assert float(loss(right, target)) < float(loss(-right, target))


def test_class_weights_favour_the_rare_class():
    w = class_weights(np.array([96, 4]))
    assert w.mean().item() == pytest.approx(1.0)
    assert w[1] / w[0] == pytest.approx(np.sqrt(96 / 4))


def test_dice_and_focal_values():
    target = torch.tensor([[[1, 0]]])
    perfect = torch.tensor([[[[-50.0, 50.0]], [[50.0, -50.0]]]])
    assert float(DiceLoss(smooth=0.0)(perfect, target)) == pytest.approx(0.0, abs=1e-6)
    even = torch.zeros(1, 2, 1, 2)
    # p = 0.5 everywhere: focal = 0.25 * ln 2 per pixel
    assert float(FocalLoss()(even, target)) == pytest.approx(0.25 * np.log(2))


def test_ce_dice_is_the_sum_of_its_parts():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 4, 4, generator=generator)
    target = torch.randint(0, 2, (2, 4, 4), generator=generator)
    expected = nn.CrossEntropyLoss()(logits, target) + DiceLoss()(logits, target)
    combined = float(make_loss("ce_dice")(logits, target))
    assert combined == pytest.approx(float(expected))
    assert combined > float(DiceLoss()(logits, target))


def test_unknown_loss_and_missing_counts_raise():
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("hinge")
    with pytest.raises(ValueError, match="pixels per class"):
        make_loss("weighted_ce")


def test_bf16_training_learns_like_fp32(data):
    results = {}
    for precision in ("fp32", "bf16"):
        model = model_for(data)
        config = TrainingConfig(epochs=10, batch_size=8, precision=precision)
        results[precision] = train_segmentation(model, data, config, CPU).best_val_f1
        assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast keeps fp32 weights
    assert results["bf16"] > 0.6
    assert results["bf16"] == pytest.approx(results["fp32"], abs=0.1)


def test_auto_precision_is_fp32_off_cpu_and_follows_the_cpu_on_it():
    from landslide_pipeline.training.loop import uses_bf16
    from landslide_pipeline.training.performance import cpu_supports_bf16

    assert uses_bf16("auto", torch.device("cpu")) == cpu_supports_bf16()
    assert not uses_bf16("auto", torch.device("cuda"))
    assert uses_bf16("bf16", torch.device("cpu")) and not uses_bf16("fp32", torch.device("cpu"))


def test_invalid_configs_raise():
    with pytest.raises(ValueError, match="optimizer"):
        TrainingConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="schedule"):
        TrainingConfig(schedule="linear")


class GoesNaN(nn.Module):
    """A network whose output turns NaN: what exploding weights or poisoned inputs lead to."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return torch.stack([x[:, 0], x[:, 1]], dim=1) * self.scale * float("nan")


def test_a_non_finite_loss_stops_training_and_names_the_surveys_and_tiles(data):
    from landslide_pipeline.training.loop import NonFiniteLossError

    model = NormalizedNetwork(fit_normalization(data), GoesNaN())
    with pytest.raises(NonFiniteLossError, match=r"epoch 1: the training loss is nan on a batch of tiles s/t\d+, s/t"):
        train_segmentation(model, data, TrainingConfig(epochs=2, batch_size=8), CPU)


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty", "not a checkpoint"])
def test_a_corrupt_checkpoint_is_set_aside_and_training_starts_from_scratch(data, tmp_path, caplog, damage):
    checkpoint = tmp_path / "ckpt.pt"
    torch.save({"model": torch.zeros(1000)}, checkpoint)
    content = {"truncated": checkpoint.read_bytes()[:500], "random bytes": np.random.default_rng(0).bytes(2000),
               "empty": b"", "not a checkpoint": checkpoint.read_bytes()}[damage]
    checkpoint.write_bytes(content)
    (tmp_path / "ckpt.pt.corrupt").write_bytes(b"an older corrupt checkpoint")
    with caplog.at_level("WARNING", logger="landslide_pipeline.training.loop"):
        result = train_segmentation(model_for(data), data, TrainingConfig(epochs=1, batch_size=16), CPU,
                                    checkpoint=checkpoint)
    assert (result.resumed_from_epoch, len(result.history)) == (0, 1)
    assert (tmp_path / "ckpt.pt.corrupt").read_bytes() == content  # only the newest is kept
    assert f"checkpoint {checkpoint} cannot be read" in caplog.text and "training starts from scratch" in caplog.text
    assert len(torch.load(checkpoint, weights_only=True)["history"]) == 1  # a fresh, readable checkpoint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "ckpt.pt.corrupt"]
