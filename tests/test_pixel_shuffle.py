"""Pixel shuffle: InternVL2's reshapes, torch's PixelUnshuffle up to a fixed channel order, the token count."""

import pytest
import torch

from course_lib.pixel_shuffle import pixel_shuffle, token_arithmetic, unshuffle_permutation, via_pixel_unshuffle


@pytest.mark.parametrize("shape", [(1, 32, 32, 8), (3, 32, 32, 96), (2, 4, 4, 1), (1, 16, 8, 5)])
def test_equals_pixel_unshuffle_up_to_a_fixed_channel_permutation(shape):
    x = torch.randn(shape)
    out = pixel_shuffle(x)
    assert out.shape == (shape[0], shape[1] // 2, shape[2] // 2, 4 * shape[3])
    assert torch.equal(out, via_pixel_unshuffle(x))
    permutation = unshuffle_permutation(shape[3])
    assert sorted(permutation) == list(range(4 * shape[3]))  # a true permutation, the same for any input


def test_identity_permutation_only_for_one_channel():
    assert unshuffle_permutation(1) == [0, 1, 2, 3]
    # InternVL puts block position k of channel c at k*C + c; PixelUnshuffle at c*4 + k
    assert unshuffle_permutation(2) == [0, 4, 1, 5, 2, 6, 3, 7]


def test_matches_the_models_own_pixel_shuffle(tiny):
    model, _ = tiny
    x = torch.randn(2, 32, 32, model.config.vision_config.hidden_size)
    assert torch.equal(pixel_shuffle(x, 0.5, model.ps_version), model.pixel_shuffle(x, 0.5))


def test_v1_is_the_transposed_grid_of_v2():
    x = torch.randn(2, 8, 8, 3)
    assert torch.equal(pixel_shuffle(x, 0.5, "v1"), pixel_shuffle(x, 0.5, "v2").transpose(1, 2))


def test_token_arithmetic():
    assert token_arithmetic() == {
        "patches per side": 32,
        "patches per tile": 1024,
        "tokens per tile": 256,
        "channels multiplier": 4,
    }
    assert token_arithmetic(224, 14, 0.5)["tokens per tile"] == 64


def test_odd_grid_is_refused():
    with pytest.raises(ValueError, match="cannot be shuffled"):
        pixel_shuffle(torch.randn(1, 5, 4, 2))
