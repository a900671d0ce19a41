"""The authors' spectral-norm PatchGAN discriminator (``train_code/network.py`` ``disc_sn``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm

from cartoon.models.layers import LEAKY_SLOPE, Conv2dSame


class PatchDiscriminator(nn.Module):
    """Spectral-norm PatchGAN: ``num_blocks`` x (conv3x3/2, lrelu, conv3x3, lrelu), then a 1x1 conv to one score.

    Args:
        in_channels: 3 for the surface discriminator D_s, 1 for the texture discriminator D_t.
        channels: width of the first block (the authors: 32); it doubles each block.
        num_blocks: number of stride-2 blocks (the authors: 3): the score map is ``1 / 2**num_blocks`` the size.

    Shapes:
        ``(B, in_channels, H, W)`` in ``[-1, 1]`` -> ``(B, 1, ceil(H/8), ceil(W/8))`` unbounded scores (LSGAN).

    Each conv carries torch's ``spectral_norm`` parametrization (its state: ``original``, ``_u``, ``_v``), but the
    forward pass normalises all the convs' weights together (:func:`spectral_normalised_weights`): the same values,
    about a third of the kernels.

    Example:
        >>> PatchDiscriminator(in_channels=1)(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 1, 4, 4])
    """

    def __init__(self, in_channels: int = 3, channels: int = 32, num_blocks: int = 3) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (texture) or 3 (surface), got {in_channels}")
        layers: list[nn.Module] = []
        width_in = in_channels
        for index in range(num_blocks):
            width = channels * 2**index
            layers += [
                spectral_norm(Conv2dSame(width_in, width, 3, stride=2)),
                nn.LeakyReLU(LEAKY_SLOPE),
                spectral_norm(Conv2dSame(width, width, 3)),
                nn.LeakyReLU(LEAKY_SLOPE),
            ]
            width_in = width
        layers.append(spectral_norm(Conv2dSame(width_in, 1, 1)))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        convs = [layer for layer in self.layers if isinstance(layer, Conv2dSame)]
        weights = iter(spectral_normalised_weights(convs, power_iteration=self.training))
        for layer in self.layers:
            x = layer(x, next(weights)) if isinstance(layer, Conv2dSame) else layer(x)
        return x


def spectral_normalised_weights(convs: Sequence[nn.Module], power_iteration: bool) -> list[torch.Tensor]:
    """``W / sigma(W)`` for each conv registered with torch's ``spectral_norm`` (``dim=0``, one power iteration).

    What each conv's own parametrization gives as ``conv.weight``, for all of them at once. With
    ``power_iteration`` (training), first one step of the power method on ``W`` as a ``(out, in*k*k)`` matrix:
    ``u = Wv / |Wv|``, ``v = W^T u / |W^T u|``, written back to the stored ``u``, ``v``; then ``sigma = u^T W v``,
    the estimate of W's largest singular value, with ``u`` and ``v`` held constant (gradient ``u v^T``).

    Differences in how, none in what:
    - After that step ``u^T W v = |W^T u|`` (``v`` being ``W^T u`` normalised), so sigma is that norm: no third
      matrix-vector product.
    - The layers' norms and clamps run as single foreach kernels, and the power method in float32 even under
      autocast (on CUDA autocast ran its products in bf16, so sigma had about three significant digits).
    - The division by sigma has its gradient written out (:class:`_DividedBySigma`), and under autocast writes the
      autocast dtype directly: the convolutions then cast nothing.
    Per discriminator some 40 kernels forward and 40 backward instead of about 100 and 85.
    Without ``power_iteration`` (evaluation): ``sigma = u^T W v`` from the stored vectors, as torch computes it.

    Returns:
        One tensor per conv, shaped like its weight, differentiable with respect to the stored ``original``.
    """
    parametrizations = [conv.parametrizations.weight for conv in convs]
    norms = [parametrization[0] for parametrization in parametrizations]
    if any(norm.dim != 0 or norm.n_power_iterations != 1 for norm in norms):
        raise ValueError("spectral_normalised_weights expects spectral_norm(dim=0, n_power_iterations=1)")
    weights = [parametrization.original for parametrization in parametrizations]
    device = weights[0].device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weights[0].dtype
    us = [norm._u for norm in norms]
    vs = [norm._v for norm in norms]
    eps = norms[0].eps
    with torch.no_grad(), torch.autocast(device, enabled=False):
        matrices = [weight.flatten(1) for weight in weights]
        if not power_iteration:
            us, vs = [u.clone() for u in us], [v.clone() for v in vs]  # the buffers may move before the backward
            sigmas = [torch.vdot(u, torch.mv(matrix, v)) for matrix, u, v in zip(matrices, us, vs)]
        else:
            products = [torch.mv(matrix, v) for matrix, v in zip(matrices, vs)]
            new_us = torch._foreach_div(products, torch._foreach_clamp_min(torch._foreach_norm(products), eps))
            back_products = [torch.mv(matrix.T, u) for matrix, u in zip(matrices, new_us)]
            sigmas = torch._foreach_norm(back_products)
            new_vs = torch._foreach_div(back_products, torch._foreach_clamp_min(sigmas, eps))
            torch._foreach_copy_(us + vs, new_us + new_vs)
            us, vs = new_us, new_vs
    return [_DividedBySigma.apply(weight, u, v, sigma, dtype) for weight, u, v, sigma in zip(weights, us, vs, sigmas)]


class _DividedBySigma(torch.autograd.Function):
    """``W / sigma`` written in ``dtype``, where ``sigma = u^T W v`` for constant vectors ``u``, ``v``.

    Backward, from ``d sigma / dW = u v^T``: ``dL/dW = (g - <g, W> / sigma * u v^T) / sigma`` (six kernels; autograd's
    path through the division, the norm and the matrix-vector product took about twelve).
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor,
                dtype: torch.dtype) -> torch.Tensor:
        ctx.save_for_backward(weight, u, v, sigma)
        return torch.div(weight, sigma, out=torch.empty_like(weight, dtype=dtype))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None, None]:
        weight, u, v, sigma = ctx.saved_tensors
        along_weight = (grad * weight).sum() / sigma
        rank_one = torch.outer(u, v).view(weight.shape)
        return torch.addcmul(grad, rank_one, along_weight, value=-1).div_(sigma), None, None, None, None
