"""Named training profiles: the studies' settings, and one chosen by measurement for a CPU.

| profile | width | epochs | batch | optimiser and schedule | loss | augmentation |
|---|---|---|---|---|---|---|
| ``cpu`` (default) | 0.25 | 32 | 16 | AdamW 6e-3, wd 1e-4, 2-epoch warm-up + cosine | ce_dice | flips/quarter turns every draw; rotation + crop-resize, contrast/noise on half |
| ``paper-b`` | 1.0 | 90 | 5 | Adam 1e-3, x0.1 every 30 epochs | ce | the study's set, 5 draws per tile per epoch (its "x5") |
| ``paper-a`` | 1.0 | 60 | 16 | Adam 1e-4, constant | ce | the study's set, one draw per tile per epoch |

The ``cpu`` profile was chosen by a sweep on Landslide4Sense RGB (``bench/profile_sweep.py``,
figures in the README under "Choosing the CPU profile"): at a budget of about 5.5 minutes per
fold model on 2 cores (5 folds in under 30 minutes), many epochs of a narrow LinkNet did as well
as or better than fewer epochs of a wider LinkNet, a U-Net or a LinkNet on 2x upsampled tiles.
Its forward pass runs under bfloat16 autocast on CPUs with native bf16 dot products (AVX512-BF16
or AMX) and in fp32 elsewhere. The paper profiles stay fp32, as published.

Study A gives the learning rate only as a power of ten (lost in OCR); 1e-4 is the usual choice.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from landslide_pipeline.training.augment import AugmentationSpec
from landslide_pipeline.training.loop import TrainingConfig
from landslide_pipeline.training.losses import LOSSES

#: The augmentation of studies A and B: rotation, flips, random crop, contrast, Gaussian noise.
STUDY_AUGMENTATION = AugmentationSpec(geometric_p=1.0, photometric_p=1.0)


@dataclass(frozen=True)
class TrainingProfile:
    """Model width plus the training loop's configuration."""

    width: float
    training: TrainingConfig


#: The named training profiles.
ProfileName = Literal["cpu", "paper-a", "paper-b"]

PROFILES: dict[str, TrainingProfile] = {
    "cpu": TrainingProfile(0.25, TrainingConfig(
        epochs=32, batch_size=16, learning_rate=6e-3, optimizer="adamw", weight_decay=1e-4, schedule="cosine",
        warmup_epochs=2, loss="ce_dice", precision="auto", augmentation=AugmentationSpec())),
    "paper-b": TrainingProfile(1.0, TrainingConfig(
        epochs=90, batch_size=5, learning_rate=1e-3, optimizer="adam", schedule="step", step_size=30, gamma=0.1,
        loss="ce", augmentation=replace(STUDY_AUGMENTATION, draws=5))),
    "paper-a": TrainingProfile(1.0, TrainingConfig(
        epochs=60, batch_size=16, learning_rate=1e-4, optimizer="adam", schedule="step", step_size=1000, gamma=0.1,
        loss="ce", augmentation=STUDY_AUGMENTATION)),
}
#: Overrides that set a field of the profile's augmentation rather than of the loop.
AUGMENTATION_FIELDS = frozenset(f.name for f in fields(AugmentationSpec))


def resolve_profile(name: str, **overrides: Any) -> TrainingProfile:
    """The named profile with every non-None override applied: ``width``, any field of the
    training loop, or any field of its augmentation (``draws``, ``noise_std``, ...).

    Raises:
        ValueError: an unknown profile, loss, precision, optimizer, schedule or override name.
    """
    if name not in PROFILES:
        raise ValueError(f"unknown training profile {name!r}; choose from {sorted(PROFILES)}")
    profile = PROFILES[name]
    given = {k: v for k, v in overrides.items() if v is not None}
    if given.get("loss", profile.training.loss) not in LOSSES:
        raise ValueError(f"unknown loss {given['loss']!r}; choose from {LOSSES}")
    width = given.pop("width", profile.width)
    augmentation = {k: given.pop(k) for k in list(given) if k in AUGMENTATION_FIELDS}
    if "crop_scale" in augmentation:
        augmentation["crop_scale"] = tuple(augmentation["crop_scale"])
    unknown = set(given) - {f.name for f in fields(TrainingConfig)}
    if unknown:
        raise ValueError(f"unknown training settings {sorted(unknown)}")
    training = replace(profile.training, **given, augmentation=replace(profile.training.augmentation, **augmentation))
    return TrainingProfile(width, training)
