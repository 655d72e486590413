import numpy as np
import pytest

from landslide_pipeline.training.augment import choose_transforms, dihedral


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
