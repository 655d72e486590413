import pytest

from landslide_pipeline.training.profiles import PROFILES, resolve_profile


def test_paper_b_matches_the_study():
    b = PROFILES["paper-b"]
    assert (b.width, b.training.learning_rate, b.training.step_size, b.training.gamma) == (1.0, 1e-3, 30, 0.1)
    assert (b.training.batch_size, b.training.epochs, b.training.loss) == (5, 90, "ce")
    assert (b.training.optimizer, b.training.schedule) == ("adam", "step")
    # The study's x5 augmentation: five fresh variants of each tile per epoch, every alteration on.
    augmentation = b.training.augmentation
    assert (augmentation.draws, augmentation.geometric_p, augmentation.photometric_p) == (5, 1.0, 1.0)


def test_the_cpu_profile_uses_adamw_and_a_warm_cosine_schedule():
    cpu = PROFILES["cpu"].training
    assert (cpu.optimizer, cpu.schedule) == ("adamw", "cosine") and cpu.warmup_epochs > 0


def test_augmentation_fields_can_be_overridden_and_unknown_ones_raise():
    p = resolve_profile("cpu", draws=3, noise_std=0.0, crop_scale=[0.8, 1.0])
    assert (p.training.augmentation.draws, p.training.augmentation.noise_std) == (3, 0.0)
    assert p.training.augmentation.crop_scale == (0.8, 1.0)
    with pytest.raises(ValueError, match="unknown training settings"):
        resolve_profile("cpu", momentum=0.9)


def test_overrides_apply_and_none_keeps_the_profile():
    p = resolve_profile("cpu", epochs=3, width=None, loss="dice")
    assert p.training.epochs == 3 and p.training.loss == "dice"
    assert p.width == PROFILES["cpu"].width
    assert p.training.batch_size == PROFILES["cpu"].training.batch_size


def test_unknown_profile_or_loss_raises():
    with pytest.raises(ValueError, match="profile"):
        resolve_profile("gpu-huge")
    with pytest.raises(ValueError, match="loss"):
        resolve_profile("cpu", loss="hinge")


def test_cpu_profile_uses_bf16_where_native_and_precision_is_checked():
    assert PROFILES["cpu"].training.precision == "auto"
    assert PROFILES["paper-b"].training.precision == "fp32"
    assert resolve_profile("cpu", precision="fp32").training.precision == "fp32"
    with pytest.raises(ValueError, match="precision"):
        resolve_profile("cpu", precision="fp8")
