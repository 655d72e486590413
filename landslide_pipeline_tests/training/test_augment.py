import numpy as np
import pytest

from landslide_pipeline.training.augment import AugmentationSpec, augment_tile, choose_transforms, dihedral


def test_eight_distinct_symmetries_and_identity():
    a = np.arange(9).reshape(3, 3)
    outputs = {dihedral(a, k).tobytes() for k in range(8)}
    assert len(outputs) == 8
    np.testing.assert_array_equal(dihedral(a, 0), a)


def test_image_and_mask_move_together():
    image = np.zeros((3, 8, 8), dtype=np.float32)
    mask = np.zeros((8, 8), dtype=np.uint8)
    image[:, 1, 6] = 1.0
    mask[1, 6] = 1
    for k in range(8):
        img_k, mask_k = dihedral(image, k), dihedral(mask, k)
        assert np.array_equal(img_k[0] > 0, mask_k > 0)
        assert np.array_equal(img_k[2] > 0, mask_k > 0)


def test_choice_is_deterministic_without_identity_or_repeats():
    a = choose_transforms(20, 5, seed=3)
    assert a.shape == (20, 4)
    assert np.array_equal(a, choose_transforms(20, 5, seed=3))
    assert (a != 0).all()
    assert all(len(set(row)) == 4 for row in a)


def test_factor_out_of_range_raises():
    with pytest.raises(ValueError):
        choose_transforms(3, 9, seed=0)


def striped_tile() -> tuple[np.ndarray, np.ndarray]:
    x = np.zeros((4, 64, 64), dtype=np.float32)
    x[:3] = 0.4
    x[:3, 20:40, 10:30] = 0.9  # bright landslide in the image bands
    x[3] = 0.3  # slope band, constant
    y = np.zeros((64, 64), dtype=np.uint8)
    y[20:40, 10:30] = 1
    return x, y


def test_augmented_copy_keeps_image_and_mask_aligned():
    x, y = striped_tile()
    spec = AugmentationSpec(noise_std=0.0, contrast=0.0, brightness=0.0)
    for seed in range(5):
        xa, ya = augment_tile(x, y, k=1 + seed % 7, spec=spec, image_bands=3, rng=np.random.default_rng(seed))
        assert xa.shape == x.shape and ya.shape == y.shape and ya.dtype == np.uint8
        assert set(np.unique(ya)) <= {0, 1}
        bright = xa[0] > 0.65
        agreement = (bright == (ya == 1)).mean()
        assert agreement > 0.97, agreement


def test_terrain_bands_are_never_jittered():
    x, y = striped_tile()
    spec = AugmentationSpec(max_rotation_deg=0, crop_scale=(1.0, 1.0), contrast=0.5, brightness=0.3, noise_std=0.1)
    xa, _ = augment_tile(x, y, k=2, spec=spec, image_bands=3, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(xa[3], np.float32(0.3))
    assert not np.allclose(xa[:3], dihedral(x[:3], 2))
    assert xa[:3].min() >= 0 and xa[:3].max() <= 1


def test_augmentation_is_deterministic_for_a_seed():
    x, y = striped_tile()
    a = augment_tile(x, y, 3, AugmentationSpec(), 3, np.random.default_rng([7, 0, 1]))
    b = augment_tile(x, y, 3, AugmentationSpec(), 3, np.random.default_rng([7, 0, 1]))
    c = augment_tile(x, y, 3, AugmentationSpec(), 3, np.random.default_rng([8, 0, 1]))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_spec_validation():
    with pytest.raises(ValueError):
        AugmentationSpec(factor=0)
    with pytest.raises(ValueError):
        AugmentationSpec(crop_scale=(0.9, 0.5))
