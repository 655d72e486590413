import numpy as np
import pytest
import torch

from landslide_pipeline.training.augment import AugmentationSpec, augment, dihedral, draw


def striped_tile() -> tuple[torch.Tensor, torch.Tensor]:
    """A normalised tile: a bright square in the image bands, a constant slope band."""
    x = torch.full((4, 64, 64), -0.5)
    x[:3, 20:40, 10:30] = 1.5  # the landslide, bright in the image bands
    x[3] = 0.3  # slope band, constant
    y = torch.zeros((64, 64), dtype=torch.uint8)
    y[20:40, 10:30] = 1
    return x, y


def test_eight_distinct_symmetries_and_identity():
    a = torch.arange(9).reshape(3, 3)
    assert len({dihedral(a, k).numpy().tobytes() for k in range(8)}) == 8
    assert torch.equal(dihedral(a, 0), a)


def test_draws_are_pure_functions_of_seed_epoch_tile_and_variant():
    spec = AugmentationSpec()
    assert draw(spec, 7, 3, 11, 0) == draw(spec, 7, 3, 11, 0)
    others = {draw(spec, 7, 4, 11, 0), draw(spec, 7, 3, 12, 0), draw(spec, 7, 3, 11, 1), draw(spec, 8, 3, 11, 0)}
    assert draw(spec, 7, 3, 11, 0) not in others and len(others) == 4


def test_every_symmetry_and_the_probabilities_are_honoured_over_many_draws():
    spec = AugmentationSpec(geometric_p=0.25, photometric_p=0.75)
    draws = [draw(spec, 0, epoch, tile) for epoch in range(20) for tile in range(50)]
    assert {d.symmetry for d in draws} == set(range(8))
    assert np.mean([d.angle_deg is not None for d in draws]) == pytest.approx(0.25, abs=0.04)
    assert np.mean([d.contrast is not None for d in draws]) == pytest.approx(0.75, abs=0.04)
    none = AugmentationSpec.none()
    assert all(d.symmetry == 0 and d.angle_deg is None and d.contrast is None
               for d in (draw(none, 0, e, 0) for e in range(20)))


def test_image_and_mask_move_together_under_rotation_and_crop():
    x, y = striped_tile()
    spec = AugmentationSpec(geometric_p=1.0, photometric_p=0.0, max_rotation_deg=15, crop_scale=(0.7, 0.9))
    for epoch in range(10):
        xa, ya = augment(x, y, draw(spec, 0, epoch, 0), spec, image_bands=3)
        assert xa.shape == x.shape and ya.shape == y.shape and ya.dtype == torch.uint8
        bright = xa[0] > 0.5
        # Bilinear image edges and nearest-neighbour mask edges differ by at most a pixel's rim.
        assert (bright ^ (ya == 1)).float().mean() < 0.03
        assert ya.sum() > 0
        torch.testing.assert_close(xa[3], torch.full((64, 64), 0.3))  # terrain moved, never altered


def test_photometric_jitter_touches_image_bands_only_and_changes_them():
    x, y = striped_tile()
    spec = AugmentationSpec(dihedral=False, geometric_p=0.0, photometric_p=1.0, contrast=0.5, brightness=0.5,
                            noise_std=0.2)
    xa, ya = augment(x, y, draw(spec, 0, 0, 0), spec, image_bands=3)
    assert torch.equal(ya, y)
    assert not torch.allclose(xa[:3], x[:3])
    assert torch.equal(xa[3], x[3])
    noise = (xa[0, :20] - xa[0, :20].mean()).std()
    assert 0.1 < float(noise) < 0.3  # the Gaussian noise, in band standard deviations


def test_invalid_specs_raise():
    with pytest.raises(ValueError, match="draws"):
        AugmentationSpec(draws=0)
    with pytest.raises(ValueError, match="crop_scale"):
        AugmentationSpec(crop_scale=(0.9, 0.5))
    with pytest.raises(ValueError, match="geometric_p"):
        AugmentationSpec(geometric_p=1.5)


def test_a_tiles_draw_does_not_depend_on_how_many_tiles_an_epoch_holds():
    from landslide_pipeline.training.augment import epoch_uniforms

    assert (epoch_uniforms(3, 2, 10)[4] == epoch_uniforms(3, 2, 500)[4]).all()
    assert (epoch_uniforms(3, 2, 10, repeat=1)[4] != epoch_uniforms(3, 2, 10)[4]).all()
