import numpy as np
import pytest
import torch
from torch import nn

from landslide_pipeline.training.loop import TrainingConfig, init_model, predict_masks, train_segmentation
from landslide_pipeline.training.losses import LOSSES, DiceLoss, FocalLoss, class_weights, make_loss


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


@pytest.fixture(scope="module")
def data():
    return bright_squares(32, 0), bright_squares(8, 1)


def test_training_learns_and_keeps_the_best_epoch(data):
    train, val = data
    model = init_model("unet", 3, 0.125, seed=0)
    result = train_segmentation(model, train, val, TrainingConfig(epochs=10, batch_size=8), torch.device("cpu"))
    assert len(result.history) == 10
    assert result.best_val_f1 == max(r.val_f1 for r in result.history)
    assert result.best_val_f1 > 0.6
    masks = predict_masks(model, val[0], device=torch.device("cpu"))
    tp = (masks & val[1]).sum()
    assert 2 * tp / (masks.sum() + val[1].sum()) == pytest.approx(result.best_val_f1, abs=1e-6)


def test_resume_after_interruption_equals_an_uninterrupted_run(data, tmp_path):
    train, val = data
    config = TrainingConfig(epochs=4, batch_size=8, seed=3)
    straight = init_model("unet", 3, 0.125, seed=3)
    train_segmentation(straight, train, val, config, torch.device("cpu"))

    class Interrupt(Exception):
        pass

    def stop_after_two(report):
        if report.epoch == 2:
            raise Interrupt

    checkpoint = tmp_path / "ckpt.pt"
    with pytest.raises(Interrupt):
        train_segmentation(init_model("unet", 3, 0.125, seed=3), train, val, config,
                           torch.device("cpu"), stop_after_two, checkpoint)
    resumed_model = init_model("unet", 3, 0.125, seed=99)  # weights come from the checkpoint
    resumed = train_segmentation(resumed_model, train, val, config, torch.device("cpu"), checkpoint=checkpoint)
    assert resumed.resumed_from_epoch == 2
    assert [r.epoch for r in resumed.history] == [1, 2, 3, 4]
    for a, b in zip(straight.state_dict().values(), resumed_model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_same_seed_same_weights(data):
    train, val = data
    config = TrainingConfig(epochs=1, batch_size=8, seed=5)
    a, b = (init_model("linknet", 3, 0.125, seed=5) for _ in range(2))
    train_segmentation(a, train, val, config, torch.device("cpu"))
    train_segmentation(b, train, val, config, torch.device("cpu"))
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_is_lower_for_the_right_answer(name):
    y = np.zeros((2, 8, 8), dtype=np.uint8)
    y[:, 2:5, 2:5] = 1
    target = torch.from_numpy(y).long()
    right = torch.stack([1 - target, target], dim=1).float() * 8 - 4
    loss = make_loss(name, y)
    assert float(loss(right, target)) < float(loss(-right, target))


def test_class_weights_favour_the_rare_class():
    y = np.zeros(100, dtype=np.uint8)
    y[:4] = 1
    w = class_weights(y)
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
    combined = float(make_loss("ce_dice", target.numpy())(logits, target))
    assert combined == pytest.approx(float(expected))
    assert combined > float(DiceLoss()(logits, target))


def test_unknown_loss_raises():
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("hinge", np.zeros(3, dtype=np.uint8))


def test_bf16_training_learns_like_fp32(data):
    train, val = data
    results = {}
    for precision in ("fp32", "bf16"):
        model = init_model("unet", 3, 0.125, seed=0)
        config = TrainingConfig(epochs=10, batch_size=8, precision=precision)
        results[precision] = train_segmentation(model, train, val, config, torch.device("cpu")).best_val_f1
        assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast keeps fp32 weights
    assert results["bf16"] > 0.6
    assert results["bf16"] == pytest.approx(results["fp32"], abs=0.1)


def test_auto_precision_is_fp32_off_cpu_and_follows_the_cpu_on_it():
    from landslide_pipeline.training.loop import uses_bf16
    from landslide_pipeline.training.performance import cpu_supports_bf16

    assert uses_bf16("auto", torch.device("cpu")) == cpu_supports_bf16()
    assert not uses_bf16("auto", torch.device("cuda"))
    assert uses_bf16("bf16", torch.device("cpu")) and not uses_bf16("fp32", torch.device("cpu"))
