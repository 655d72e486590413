"""Augmentation: image and mask transformed together, deterministically for a seed.

Each augmented copy of a tile applies, in order:

1. one of the 7 non-identity symmetries of the square (quarter turns, flips), distinct for each
   copy of a tile, so a x5 set holds 5 different orientations;
2. a small rotation by up to ``max_rotation_deg`` (bilinear for the image, nearest for the
   mask; borders reflected so no black corners appear);
3. a random crop of ``crop_scale`` of the side, resized back to the tile size;
4. contrast and brightness jitter, image bands only;
5. Gaussian noise, image bands only.

Terrain bands (slope, elevation, ...) are moved with the geometry but never jittered or noised:
their values are physical quantities, not exposure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

N_DIHEDRAL = 8


@dataclass(frozen=True)
class AugmentationSpec:
    """How many copies to make of each tile and how strongly to alter them.

    Attributes:
        factor: Samples per tile in the training set, the original included (study B: 5).
        max_rotation_deg: Largest small-angle rotation; 0 disables it.
        crop_scale: Range of the crop side as a fraction of the tile side; (1, 1) disables it.
        contrast: Contrast factor drawn from [1 - contrast, 1 + contrast].
        brightness: Offset drawn from [-brightness, brightness] (image scaled to [0, 1]).
        noise_std: Standard deviation of the Gaussian noise (image scaled to [0, 1]).
    """

    factor: int = 5
    max_rotation_deg: float = 15.0
    crop_scale: tuple[float, float] = (0.75, 1.0)
    contrast: float = 0.2
    brightness: float = 0.1
    noise_std: float = 0.02

    def __post_init__(self) -> None:
        if not 1 <= self.factor <= N_DIHEDRAL:
            raise ValueError(f"augmentation factor must be between 1 and {N_DIHEDRAL}, got {self.factor}")
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")


def dihedral(array: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 symmetries of the square on the last two axes: k % 4 quarter turns, then a
    left-right flip when k >= 4. k = 0 is the identity."""
    out = np.rot90(array, k % 4, axes=(-2, -1))
    if k >= 4:
        out = np.flip(out, axis=-1)
    return np.ascontiguousarray(out)


def choose_transforms(n_samples: int, factor: int, seed: int) -> np.ndarray:
    """For each sample, ``factor - 1`` distinct non-identity symmetries (deterministic for seed).

    Returns:
        int array of shape (n_samples, factor - 1) with values in 1..7.
    """
    if not 1 <= factor <= N_DIHEDRAL:
        raise ValueError(f"augmentation factor must be between 1 and {N_DIHEDRAL}, got {factor}")
    rng = np.random.default_rng(seed)
    choices = [rng.permutation(np.arange(1, N_DIHEDRAL))[: factor - 1] for _ in range(n_samples)]
    return np.array(choices, dtype=int).reshape(n_samples, factor - 1)


def _rotate(x: np.ndarray, y: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    x = ndimage.rotate(x, angle, axes=(2, 1), reshape=False, order=1, mode="reflect")
    y = ndimage.rotate(y, angle, axes=(1, 0), reshape=False, order=0, mode="reflect")
    return x, y


def _crop_resize(x: np.ndarray, y: np.ndarray, scale: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    height, width = y.shape
    ch, cw = max(2, round(height * scale)), max(2, round(width * scale))
    r, c = rng.integers(0, height - ch + 1), rng.integers(0, width - cw + 1)
    zoom = (height / ch, width / cw)
    x = ndimage.zoom(x[:, r:r + ch, c:c + cw], (1, *zoom), order=1, mode="nearest", grid_mode=True)
    y = ndimage.zoom(y[r:r + ch, c:c + cw], zoom, order=0, mode="nearest", grid_mode=True)
    return x[:, :height, :width], y[:height, :width]


def _photometric(image: np.ndarray, spec: AugmentationSpec, rng: np.random.Generator) -> np.ndarray:
    factor = rng.uniform(1 - spec.contrast, 1 + spec.contrast)
    offset = rng.uniform(-spec.brightness, spec.brightness)
    mean = image.mean(axis=(1, 2), keepdims=True)
    image = (image - mean) * factor + mean + offset
    if spec.noise_std > 0:
        image = image + rng.normal(0.0, spec.noise_std, image.shape)
    return np.clip(image, 0.0, 1.0)


def augment_tile(x: np.ndarray, y: np.ndarray, k: int, spec: AugmentationSpec, image_bands: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One augmented copy of a tile.

    Args:
        x: (C, H, W) float32 input; the first ``image_bands`` bands are image bands in [0, 1],
            the rest terrain.
        y: (H, W) mask.
        k: The dihedral symmetry to apply (1..7).
        spec: Strengths of the random alterations.
        image_bands: How many leading bands get photometric jitter.
        rng: Random source for this copy.
    """
    x, y = dihedral(x, k), dihedral(y, k)
    if spec.max_rotation_deg > 0:
        x, y = _rotate(x, y, rng.uniform(-spec.max_rotation_deg, spec.max_rotation_deg))
    if spec.crop_scale[0] < 1:
        x, y = _crop_resize(x, y, rng.uniform(*spec.crop_scale), rng)
    x = x.copy()
    x[:image_bands] = _photometric(x[:image_bands], spec, rng)
    return x.astype(np.float32), y.astype(np.uint8)
