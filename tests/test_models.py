import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cartoon.models import PatchDiscriminator, UNetGenerator
from cartoon.models.layers import Conv2dSame, _double_axis, _lerp_axis_gather, resize_bilinear_legacy, tf_same_padding


def test_generator_has_the_authors_parameter_count():
    assert sum(p.numel() for p in UNetGenerator().parameters()) == 1_467_075
    assert len(UNetGenerator().state_dict()) == 36  # the released checkpoint's 36 tensors


@pytest.mark.parametrize("size,kernel,stride,expected", [(8, 3, 2, (0, 1)), (9, 3, 2, (1, 1)), (8, 7, 1, (3, 3)), (8, 1, 2, (0, 0))])
def test_tf_same_padding(size, kernel, stride, expected):
    assert tf_same_padding(size, kernel, stride) == expected


def test_stride2_conv_pads_bottom_right_like_tf():
    torch.manual_seed(0)
    conv = Conv2dSame(2, 3, 3, stride=2)
    x = torch.randn(1, 2, 8, 10)
    expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, conv.bias, stride=2)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    assert conv(x).shape[-2:] == (4, 5)


def legacy_resize_reference(a: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1 resize_bilinear (half_pixel_centers=False) written out per pixel."""
    in_h, in_w = a.shape
    out = np.empty((out_h, out_w))
    for i in range(out_h):
        y = i * in_h / out_h
        y0 = int(np.floor(y)); y1 = min(y0 + 1, in_h - 1); fy = y - y0
        for j in range(out_w):
            x = j * in_w / out_w
            x0 = int(np.floor(x)); x1 = min(x0 + 1, in_w - 1); fx = x - x0
            top = a[y0, x0] * (1 - fx) + a[y0, x1] * fx
            bottom = a[y1, x0] * (1 - fx) + a[y1, x1] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


@pytest.mark.parametrize("src,dst", [((4, 5), (8, 10)), ((3, 3), (7, 5)), ((6, 4), (6, 4))])
def test_legacy_bilinear_matches_tf1_formula(src, dst):
    a = np.random.default_rng(0).standard_normal(src)
    got = resize_bilinear_legacy(torch.from_numpy(a)[None, None], dst)[0, 0].numpy()
    assert np.allclose(got, legacy_resize_reference(a, *dst), atol=1e-12)


def test_legacy_bilinear_differs_from_torch_half_pixel():
    a = torch.arange(16.0).view(1, 1, 4, 4)
    assert not torch.allclose(resize_bilinear_legacy(a, (8, 8)), F.interpolate(a, (8, 8), mode="bilinear", align_corners=False))
    # Even output pixels sample input pixels exactly; the last row repeats.
    out = resize_bilinear_legacy(a, (8, 8))
    assert torch.equal(out[0, 0, ::2, ::2], a[0, 0]) and torch.equal(out[0, 0, -1], out[0, 0, -2])


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 8, 1, 6)])
def test_exact_2x_path_equals_the_gather_path_bit_for_bit(shape, channels_last):
    x = torch.randn(*shape)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    for dim in (-2, -1):
        expected = _lerp_axis_gather(x, 2 * x.shape[dim], x.shape[dim], dim)
        fast = _double_axis(x, dim)
        assert torch.equal(fast, expected)
        assert fast.is_contiguous(memory_format=torch.channels_last) == (channels_last and not x.is_contiguous())
        tracked = x.clone().requires_grad_()  # the autograd path (training) gives the same values and a gradient
        doubled = _double_axis(tracked, dim)
        assert torch.equal(doubled, expected)
        weights = torch.rand(doubled.shape)
        (doubled * weights).sum().backward()
        assert torch.allclose(tracked.grad, _gather_grad(x, dim, weights), atol=1e-6)


def _gather_grad(x: torch.Tensor, dim: int, weights: torch.Tensor) -> torch.Tensor:
    """The gradient of ``sum(weights * 2x-resize(x))`` by the gather path."""
    leaf = x.clone().requires_grad_()
    (_lerp_axis_gather(leaf, 2 * x.shape[dim], x.shape[dim], dim) * weights).sum().backward()
    return leaf.grad


@pytest.mark.parametrize("size", [(8, 8), (12, 20), (13, 9)])
def test_generator_keeps_size_and_is_differentiable(size):
    g = UNetGenerator(channels=4, num_blocks=1)
    x = torch.rand(2, 3, *size, requires_grad=True)
    out = g(x)
    assert out.shape == x.shape
    out.mean().backward()
    assert all(p.grad is not None for p in g.parameters())


def test_generator_forward_matches_layer_list():
    """The forward pass is exactly the digest's layer list (re-written here by hand from its modules)."""
    torch.manual_seed(0)
    g = UNetGenerator(channels=4, num_blocks=2).eval()
    x = torch.rand(1, 3, 16, 24) * 2 - 1
    act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
    x0 = act(g.conv_in(x))
    x1 = act(g.conv1(act(g.down1(x0))))
    x2 = act(g.conv2(act(g.down2(x1))))
    for block in g.blocks:
        x2 = x2 + block.conv2(act(block.conv1(x2)))
    x2 = act(g.conv3(x2))
    x3 = act(g.up1_out(act(g.up1(resize_bilinear_legacy(x2, (8, 12)) + x1))))
    out = g.conv_out(act(g.up2(resize_bilinear_legacy(x3, (16, 24)) + x0)))
    assert torch.allclose(g(x), out, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_discriminator_patch_scores(channels):
    d = PatchDiscriminator(in_channels=channels)
    assert d(torch.rand(2, channels, 256, 256)).shape == (2, 1, 32, 32)
    spectral = [name for name, _ in d.named_parameters() if "original" in name]
    assert len(spectral) == 7  # every conv is spectrally normalised


def test_discriminator_normalises_its_weights_together_as_torchs_spectral_norm_does_one_by_one():
    """The grouped spectral norm of ``PatchDiscriminator.forward`` against each conv's own parametrization (what
    ``conv(x)`` runs): scores, every gradient and the power method's stored vectors, over optimiser steps, in
    training and in evaluation; the state dict keeps torch's layout."""
    torch.manual_seed(0)
    grouped = PatchDiscriminator(in_channels=3, channels=8)
    one_by_one = copy.deepcopy(grouped)

    def layer_by_layer(x: torch.Tensor) -> torch.Tensor:
        for layer in one_by_one.layers:
            x = layer(x)  # a conv reads its ``weight``: torch's parametrization, power iteration included
        return x

    start = {name: b.clone() for name, b in grouped.named_buffers()}
    optimisers = [torch.optim.SGD(d.parameters(), lr=0.5) for d in (grouped, one_by_one)]
    for _ in range(3):
        x = torch.randn(2, 3, 24, 20)
        scores, expected = grouped(x), layer_by_layer(x)
        assert torch.allclose(scores, expected, rtol=1e-5, atol=1e-6)
        scores.square().mean().backward()
        expected.square().mean().backward()
        for (name, mine), (_, theirs) in zip(grouped.named_parameters(), one_by_one.named_parameters(), strict=True):
            assert torch.allclose(mine.grad, theirs.grad, rtol=1e-4, atol=1e-5 * theirs.grad.abs().max()), name
        for (name, mine), (_, theirs) in zip(grouped.named_buffers(), one_by_one.named_buffers(), strict=True):
            assert torch.allclose(mine, theirs, atol=1e-6), name  # u and v moved as torch moves them
        for optimiser in optimisers:
            optimiser.step()
            optimiser.zero_grad()
    assert not any(torch.allclose(b, start[name]) for name, b in grouped.named_buffers() if b.numel() > 1)  # moved
    grouped.eval()
    one_by_one.eval()
    buffers = {name: b.clone() for name, b in grouped.named_buffers()}
    x = torch.randn(1, 3, 16, 16)
    assert torch.allclose(grouped(x), layer_by_layer(x), rtol=1e-5, atol=1e-6)
    assert all(torch.equal(b, buffers[name]) for name, b in grouped.named_buffers())  # no power step in evaluation
    assert grouped.state_dict().keys() == one_by_one.state_dict().keys()


def test_the_division_by_sigma_has_the_gradient_of_w_over_its_largest_singular_value_estimate():
    """``_DividedBySigma``'s written-out backward against finite differences (float64) of ``W / |W^T u|`` with a
    constant unit ``u``: sigma moves with W, so its term of the gradient is checked too."""
    from cartoon.models.discriminator import _DividedBySigma

    torch.manual_seed(0)
    u = F.normalize(torch.randn(4, dtype=torch.float64), dim=0)

    def normalised(weight: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            back_product = torch.mv(weight.flatten(1).T, u)
            sigma = back_product.norm()
        return _DividedBySigma.apply(weight, u, back_product / sigma, sigma, torch.float64)

    weight = torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(normalised, (weight,))
    assert torch.autograd.gradcheck(normalised, (weight.detach().contiguous(memory_format=torch.channels_last)
                                                 .requires_grad_(),))

def test_discriminator_rejects_other_channel_counts():
    with pytest.raises(ValueError, match="in_channels"):
        PatchDiscriminator(in_channels=2)


def test_a_conditioned_generator_starts_as_its_unconditioned_self_and_follows_its_condition():
    from cartoon.models.generator import CONDITION_NAMES

    torch.manual_seed(0)
    plain = UNetGenerator(channels=4, num_blocks=2).eval()
    conditioned = UNetGenerator(channels=4, num_blocks=2, condition_dim=len(CONDITION_NAMES)).eval()
    result = conditioned.load_state_dict(plain.state_dict(), strict=False)
    assert all(k.startswith("conditioning.") for k in result.missing_keys) and not result.unexpected_keys
    extra = sum(p.numel() for p in conditioned.conditioning.parameters())
    assert extra < 0.10 * sum(p.numel() for p in UNetGenerator().parameters())  # < 10 % of G at full width
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(conditioned(x), plain(x))  # the FiLM layers start as the identity
        torch.nn.init.normal_(conditioned.conditioning.mlp[-1].weight, std=0.1)
        default = conditioned(x)
        assert torch.equal(default, conditioned(x, torch.zeros(2, 3)))  # None means the recipe's weights
        # The weights reach the FiLM layers: different weights, different outputs; each sample its own.
        condition = torch.tensor([[0.0, 0.0, 0.0], [1.0, -1.0, 0.5]])
        out = conditioned(x, condition)
        assert torch.allclose(out[0], default[0], atol=1e-6) and not torch.allclose(out[1], default[1], atol=1e-3)
    with pytest.raises(ValueError, match="not conditioned"):
        plain(x, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="condition"):
        conditioned(x, torch.zeros(2, 2))
