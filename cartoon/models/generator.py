"""The authors' U-Net generator (``test_code/network.py`` ``unet_generator``), a pure tensor -> tensor module."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cartoon.models.layers import LEAKY_SLOPE, Conv2dSame, resize_bilinear_legacy

STRIDE = 4
"""Input height and width must be multiples of this (two stride-2 convs); inference pads to multiples of 8."""
CONDITION_NAMES = ("surface", "structure", "texture")
"""What a conditioned generator's ``condition`` holds, in order: log of each representation loss's weight relative
to the recipe's (0: the recipe's weight)."""


class WeightConditioning(nn.Module):
    """Loss-conditional training's conditioning (Dosovitskiy & Djolonga, ICLR 2020): a small MLP from the loss
    weights' logs to a FiLM scale and shift for each modulated layer, ``h * (1 + gamma) + beta``.

    The last layer starts at zero, so a freshly conditioned generator computes what its unconditioned weights did.

    Args:
        widths: channels of each modulated layer, in forward order.
        dim: length of the condition vector.
        hidden: width of the MLP's hidden layer.
    """

    def __init__(self, widths: list[int], dim: int = 3, hidden: int = 64) -> None:
        super().__init__()
        self.widths = list(widths)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.LeakyReLU(LEAKY_SLOPE), nn.Linear(hidden, 2 * sum(widths)))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, condition: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(B, dim)`` -> one ``(gamma, beta)`` pair of ``(B, width, 1, 1)`` per modulated layer."""
        out = self.mlp(condition)
        films, start = [], 0
        for width in self.widths:
            gamma = out[:, start : start + width, None, None]
            beta = out[:, start + width : start + 2 * width, None, None]
            films.append((gamma, beta))
            start += 2 * width
        return films


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

    With ``condition_dim`` > 0 the generator is *conditioned* on the representation losses' weights
    (:data:`CONDITION_NAMES`): :class:`WeightConditioning` modulates the residual blocks' outputs and the decoder
    (about 6 % more parameters); ``forward(x, condition)`` takes ``(B, condition_dim)`` log weight ratios, and
    ``None`` means the recipe's weights.

    Saving and loading are :mod:`cartoon.checkpoint`'s job (``save_generator`` / ``load_generator``, from
    :attr:`config` and the state dict), never this module's.

    Example:
        >>> g = UNetGenerator(channels=4, num_blocks=1)
        >>> g(torch.zeros(1, 3, 8, 8)).shape
        torch.Size([1, 3, 8, 8])
    """

    def __init__(self, channels: int = 32, num_blocks: int = 4, condition_dim: int = 0) -> None:
        super().__init__()
        self.config = {"channels": channels, "num_blocks": num_blocks}
        if condition_dim:
            self.config["condition_dim"] = condition_dim
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
        self.conditioning = (WeightConditioning([4 * c] * num_blocks + [2 * c, c, c], condition_dim)
                             if condition_dim else None)

    @property
    def conditioned(self) -> bool:
        return self.conditioning is not None

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        # In place: every activation's input is a fresh conv output that no backward pass needs (a conv saves
        # its input and weight), so this is autograd-safe and saves one allocation and one pass per layer.
        act = lambda t: F.leaky_relu(t, LEAKY_SLOPE, inplace=True)  # noqa: E731
        films = self._films(x, condition)
        x0 = act(self.conv_in(x))
        x1 = act(self.conv1(act(self.down1(x0))))
        x2 = act(self.conv2(act(self.down2(x1))))
        if films is None:
            x2 = act(self.conv3(self.blocks(x2)))
        else:
            for index, block in enumerate(self.blocks):
                x2 = _film(block(x2), films[index])
            x2 = _film(act(self.conv3(x2)), films[-3])
        x3 = resize_bilinear_legacy(x2, x1.shape[-2:])
        x3 = act(self.up1_out(act(self.up1(x3 + x1))))
        if films is not None:
            x3 = _film(x3, films[-2])
        x4 = resize_bilinear_legacy(x3, x0.shape[-2:])
        x4 = act(self.up2(x4 + x0))
        if films is not None:
            x4 = _film(x4, films[-1])
        return self.conv_out(x4)

    def _films(self, x: torch.Tensor, condition: torch.Tensor | None) -> list | None:
        """The FiLM pairs for this batch (``None`` for an unconditioned generator)."""
        if self.conditioning is None:
            if condition is not None:
                raise ValueError("this generator is not conditioned: it takes no loss weights")
            return None
        dim = self.config["condition_dim"]
        if condition is None:
            condition = x.new_zeros(x.shape[0], dim)
        if condition.shape != (x.shape[0], dim):
            raise ValueError(f"condition: expected ({x.shape[0]}, {dim}), got {tuple(condition.shape)}")
        with torch.autocast(x.device.type, enabled=False):  # a few hundred numbers: keep them exact (see _film)
            return self.conditioning(condition.to(dtype=self.conditioning.mlp[0].weight.dtype))


def _film(h: torch.Tensor, film: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``h * (1 + gamma) + beta``, written ``h + (beta + h * gamma)`` in ``h``'s precision: under bf16 autocast,
    ``1 + gamma`` rounded to 8 bits would scale a whole channel by one wrong factor, while ``gamma`` alone keeps
    its relative precision (as exact as FiLM in fp32 on the shipped model, and 25 % less time on the CPU)."""
    gamma, beta = film
    return torch.addcmul(beta.to(h.dtype), h, gamma.to(h.dtype)) + h
