import pytest
import torch
from torch import nn

from landslide_pipeline.nn import create_model
from landslide_pipeline.nn.segmenter import BandNormalization, NormalizedNetwork, Segmenter


def test_normalisation_standardises_and_turns_missing_values_into_the_mean():
    norm = BandNormalization([1.0, 10.0], [2.0, 5.0])
    x = torch.tensor([[[[3.0]], [[float("nan")]]]])
    torch.testing.assert_close(norm(x), torch.tensor([[[[1.0]], [[0.0]]]]))
    with pytest.raises(ValueError, match="positive"):
        BandNormalization([0.0], [0.0])
    with pytest.raises(ValueError, match="one value per band"):
        BandNormalization([0.0, 1.0], [1.0])


class Pointwise(nn.Module):
    """Landslide logit = the first band's value; background 0."""

    def forward(self, x):
        return torch.stack([torch.zeros_like(x[:, 0]), x[:, 0]], dim=1)


def identity() -> BandNormalization:
    return BandNormalization([0.0], [1.0])


def test_a_segmenter_returns_the_mean_probability_of_its_members():
    x = torch.tensor([[[[0.0, 2.0]]]])
    one = Segmenter([NormalizedNetwork(identity(), Pointwise())])
    shifted = Segmenter([NormalizedNetwork(BandNormalization([2.0], [1.0]), Pointwise())])
    both = Segmenter([NormalizedNetwork(identity(), Pointwise()), NormalizedNetwork(BandNormalization([2.0], [1.0]),
                                                                                      Pointwise())])
    torch.testing.assert_close(both(x), (one(x) + shifted(x)) / 2)
    torch.testing.assert_close(one(x).sum(dim=1), torch.ones(1, 1, 2))
    torch.testing.assert_close(one(x)[0, 1, 0], torch.sigmoid(torch.tensor([0.0, 2.0])))


def test_flips_average_the_mirror_images_and_keep_the_geometry():
    torch.manual_seed(0)
    network = create_model("unet", 1, 2, width=0.125).eval()
    member = NormalizedNetwork(identity(), network)
    x = torch.rand(1, 1, 32, 64)
    flipped = Segmenter([member], flips=True)(x)
    views = [member(x).softmax(1), member(x.flip(-1)).softmax(1).flip(-1), member(x.flip(-2)).softmax(1).flip(-2)]
    torch.testing.assert_close(flipped, sum(views) / 3)
    assert flipped.shape == (1, 2, 32, 64)
    with pytest.raises(ValueError, match="at least one"):
        Segmenter([])
