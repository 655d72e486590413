import pytest

from landslide_pipeline.training.profiles import PROFILES, resolve_profile


def test_paper_b_matches_the_study():
    b = PROFILES["paper-b"]
    assert (b.width, b.training.learning_rate, b.training.step_size, b.training.gamma) == (1.0, 1e-3, 30, 0.1)
    assert (b.training.batch_size, b.training.epochs, b.training.loss) == (5, 90, "ce")


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
