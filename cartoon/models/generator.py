"""The authors' U-Net generator (``test_code/network.py`` ``unet_generator``), a pure tensor -> tensor module."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cartoon.models.layers import LEAKY_SLOPE, Conv2dSame, resize_bilinear_legacy

STRIDE = 4
"""Input height and width must be multiples of this (two stride-2 convs); inference pads to multiples of 8."""


class ResBlock(nn.Module):
    """``x + conv(lrelu(conv(x)))`` with 3x3 convs (no activation after the sum, as the authors)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = Conv2dSame(channels, channels, 3)
        self.conv2 = Conv2dSame(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), LEAKY_SLOPE, inplace=True))


class UNetGenerator(nn.Module):
    """Wang & Yu's generator: two stride-2 convs, residual blocks, two legacy-bilinear upsamplings with skips.

    Leaky ReLU (0.2) after every conv but the last; no output activation (inference clips to [-1, 1]).
    With the defaults (``channels=32, num_blocks=4``) it has exactly 1,467,075 parameters, like the authors'.

    Args:
        channels: width of the first level (the authors: 32); levels use 1x, 2x, 4x this.
        num_blocks: residual blocks at the bottleneck (the authors: 4).

    Shapes:
        ``(B, 3, H, W)`` float in ``[-1, 1]`` -> ``(B, 3, H, W)`` float (roughly ``[-1, 1]``, unclipped);
        H and W multiples of :data:`STRIDE`.

    Saving and loading are :mod:`cartoon.checkpoint`'s job (``save_generator`` / ``load_generator``, from
    :attr:`config` and the state dict), never this module's.

    Example:
        >>> g = UNetGenerator(channels=4, num_blocks=1)
        >>> g(torch.zeros(1, 3, 8, 8)).shape
        torch.Size([1, 3, 8, 8])
    """

    def __init__(self, channels: int = 32, num_blocks: int = 4) -> None:
        super().__init__()
        self.config = {"channels": channels, "num_blocks": num_blocks}
        c = channels
        self.conv_in = Conv2dSame(3, c, 7)
        self.down1 = Conv2dSame(c, c, 3, stride=2)
        self.conv1 = Conv2dSame(c, 2 * c, 3)
        self.down2 = Conv2dSame(2 * c, 2 * c, 3, stride=2)
        self.conv2 = Conv2dSame(2 * c, 4 * c, 3)
        self.blocks = nn.Sequential(*(ResBlock(4 * c) for _ in range(num_blocks)))
        self.conv3 = Conv2dSame(4 * c, 2 * c, 3)
        self.up1 = Conv2dSame(2 * c, 2 * c, 3)
        self.up1_out = Conv2dSame(2 * c, c, 3)
        self.up2 = Conv2dSame(c, c, 3)
        self.conv_out = Conv2dSame(c, 3, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In place: every activation's input is a fresh conv output that no backward pass needs (a conv saves
        # its input and weight), so this is autograd-safe and saves one allocation and one pass per layer.
        act = lambda t: F.leaky_relu(t, LEAKY_SLOPE, inplace=True)  # noqa: E731
        x0 = act(self.conv_in(x))
        x1 = act(self.conv1(act(self.down1(x0))))
        x2 = act(self.conv2(act(self.down2(x1))))
        x2 = act(self.conv3(self.blocks(x2)))
        x3 = resize_bilinear_legacy(x2, x1.shape[-2:])
        x3 = act(self.up1_out(act(self.up1(x3 + x1))))
        x4 = resize_bilinear_legacy(x3, x0.shape[-2:])
        return self.conv_out(act(self.up2(x4 + x0)))
