"""Geometric augmentation applied to image and mask together."""

from __future__ import annotations

import numpy as np

N_DIHEDRAL = 8


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
