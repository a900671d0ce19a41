"""The authors' spectral-norm PatchGAN discriminator (``train_code/network.py`` ``disc_sn``)."""

from __future__ import annotations

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
        return self.layers(x)
