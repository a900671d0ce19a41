import numpy as np
import pytest
import torch

from cartoon.representations.texture import (
    MEAN_WEIGHTS,
    WEIGHT_RANGES,
    color_shift,
    sample_weights,
    texture,
    weights_from_seed,
)


def test_ranges_are_rgb_ordered_and_centred_on_luma():
    assert np.allclose(MEAN_WEIGHTS, (0.299, 0.587, 0.114))
    assert WEIGHT_RANGES.blue == (0.014, 0.214)  # the authors' first (BGR) range belongs to blue


def test_sampled_weights_stay_in_range():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        w = sample_weights(g)
        for value, (low, high) in zip(w, WEIGHT_RANGES):
            assert low <= value <= high


def test_reproducible_from_seed_and_different_across_seeds():
    assert weights_from_seed(3) == weights_from_seed(3)
    assert weights_from_seed(3) != weights_from_seed(4)


def test_red_weight_applies_to_red_channel():
    img = np.zeros((2, 2, 3), np.uint8)
    img[..., 0] = 255  # pure red
    w = (0.3, 0.5, 0.2)
    gray = texture(img, w)
    expected = np.rint(((0.3 * 1 + 0.5 * -1 + 0.2 * -1) / 1.0 + 1) * 127.5)
    assert np.all(gray == expected)
    assert np.array_equal(gray[..., 0], gray[..., 2])


def test_torch_twin_matches_numpy(photo):
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 127.5 - 1
    w = weights_from_seed(7)
    (gray,) = color_shift(x, weights=w)
    assert gray.shape == (1, 1, *photo.shape[:2])
    got = ((gray[0, 0] + 1) * 127.5).round().byte().numpy()
    assert np.abs(got.astype(int) - texture(photo, w)[..., 0].astype(int)).max() <= 1


def test_same_draw_for_all_images_and_generator_reproducible():
    a, b = torch.rand(2, 3, 4, 4) * 2 - 1, torch.rand(2, 3, 4, 4) * 2 - 1
    ga, gb = color_shift(a, b, generator=torch.Generator().manual_seed(5))
    (ga2,) = color_shift(a, generator=torch.Generator().manual_seed(5))
    assert torch.equal(ga, ga2)
    (gb2,) = color_shift(b, generator=torch.Generator().manual_seed(5))
    assert torch.equal(gb, gb2)


def test_does_not_touch_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    color_shift(torch.zeros(1, 3, 2, 2), generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.rand(1), expected)


def test_differentiable():
    x = (torch.rand(1, 3, 4, 4) * 2 - 1).requires_grad_()
    (gray,) = color_shift(x, weights=MEAN_WEIGHTS)
    gray.sum().backward()
    assert torch.allclose(x.grad[0, :, 0, 0], torch.tensor(MEAN_WEIGHTS, dtype=torch.float32) / sum(MEAN_WEIGHTS))


@pytest.mark.parametrize("w", [(0, 0, 0), (-1, 1, 1), (float("nan"), 1, 1)])
def test_bad_weights(w):
    with pytest.raises(ValueError, match="colour-shift weights"):
        texture(np.zeros((2, 2, 3), np.uint8), w)
