"""The white-box losses (Wang & Yu 2020, §3.5; the authors' ``train_code/loss.py``). Weights are applied by the
trainer, never here. All inputs are ``(B, C, H, W)`` tensors; images in ``[-1, 1]``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from cartoon.representations.surface import guided_filter

TRAIN_FILTER_RADIUS = 1
TRAIN_FILTER_EPS = 1e-2
"""The guided filter on G's output during training (the authors' r=1, eps=1e-2)."""


def training_output(photo: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
    """What every loss (and every sample grid) sees: ``guided_filter(x, G(x), r=1, eps=1e-2)``, in fp32.

    Args:
        photo: ``(B, 3, H, W)`` the generator's input ``x``, the guide.
        raw: ``(B, 3, H, W)`` the generator's output ``G(x)`` (any float dtype).
    """
    return guided_filter(photo.float(), raw.float(), TRAIN_FILTER_RADIUS, TRAIN_FILTER_EPS)


def lsgan_loss(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN term: ``mean((scores - 1)^2)`` for real targets, ``mean(scores^2)`` for fake ones."""
    target = 1.0 if real else 0.0
    return (scores.float() - target).pow(2).mean()


def discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The authors' D objective: ``0.5 * (mean((D(real) - 1)^2) + mean(D(fake)^2))``."""
    return 0.5 * (lsgan_loss(real_scores, True) + lsgan_loss(fake_scores, False))


def feature_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Content/structure loss on features ``(B, C, h, w)``: mean absolute difference divided by ``h*w*c``
    (the authors' normalisation, kept so the 200 weight means what it meant for them).

    The difference is taken in the features' own precision and summed in float32: in bf16 the difference of two
    bf16 values keeps its sign (so the gradient is the same) and the loss moves by rounding only, in a third of the
    passes over the features that casting both to float32 first took."""
    _, c, h, w = a.shape
    return (a - b).abs().sum(dtype=torch.float32) / (a.numel() * h * w * c)


def colour_loss(output: torch.Tensor, photo: torch.Tensor, pool: int = 8) -> torch.Tensor:
    """Not in the paper: mean squared difference of ``pool x pool`` average-pooled images (their colours at
    1/pool resolution). Leaves edges, flat regions and texture to the white-box losses and penalises colour casts.
    Squared, not L1: its gradient fades near the photo's colours (an L1 term's does not, and anchored G to the
    identity) and grows with a cast."""
    low_output = F.avg_pool2d(output.float(), pool, ceil_mode=True)
    return (low_output - F.avg_pool2d(photo.float(), pool, ceil_mode=True)).pow(2).mean()


def cast_loss(output: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """Not in the paper: mean squared shift of each image's channel means from the photo's, over ``(B, 3, H, W)``
    pairs: a colour cast (or a brightness change) of the whole patch, and nothing else.

    :func:`colour_loss` charges casts too, but with every local colour change; raising its weight to stop casts
    pulled the whole output back towards the photo (README). This term leaves local colour, edges and flat regions
    free. Squared, so that its gradient fades as the cast does."""
    shift = output.float().mean(dim=(2, 3)) - photo.float().mean(dim=(2, 3))
    return shift.pow(2).mean()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """``(mean(dx^2) + mean(dy^2)) / (3 * H * W)`` of ``(B, 3, H, W)`` (the authors' form, not an L1 sum)."""
    _, _, height, width = x.shape
    return _Variation.apply(x.float(), True) / (3 * height * width)


def _l1_variation(x: torch.Tensor) -> torch.Tensor:
    """``mean|dx x| + mean|dy x|`` of ``(B, C, H, W)``: the L1 total variation both priors below charge."""
    return _Variation.apply(x, False)


class _Variation(torch.autograd.Function):
    """``mean(f(dx)) + mean(f(dy))`` over the differences of horizontally and vertically neighbouring pixels of
    ``(B, C, H, W)`` ``x``, ``f`` the square (``squared``) or the absolute value.

    The backward pass is written out: each difference's slope goes to its two pixels, as in-place updates of one
    gradient. Autograd's went through the slices, building a zero tensor for each and adding them up: about a
    third of the passes over the image. The forward pass is the same ops as before, so the values are too.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, squared: bool) -> torch.Tensor:
        dx = x[..., :, 1:] - x[..., :, :-1]
        dy = x[..., 1:, :] - x[..., :-1, :]
        ctx.squared, ctx.shape = squared, x.shape
        ctx.save_for_backward(dx, dy)
        if squared:
            return dx.pow(2).mean() + dy.pow(2).mean()
        return dx.abs().mean() + dy.abs().mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        dx, dy = ctx.saved_tensors
        result = dx.new_zeros(ctx.shape)
        for difference, later, earlier in ((dx, result[..., :, 1:], result[..., :, :-1]),
                                           (dy, result[..., 1:, :], result[..., :-1, :])):
            # d mean(f(d)) / d d: 2 d / n for the square, sign(d) / n for the absolute value
            slope = difference if ctx.squared else difference.sign()
            scale = (2 * grad if ctx.squared else grad) / difference.numel()
            later.addcmul_(slope, scale)
            earlier.addcmul_(slope, scale, value=-1)
        return result, None


def chroma_variation(x: torch.Tensor) -> torch.Tensor:
    """Not in the paper: L1 total variation of the chroma of ``(B, 3, H, W)`` images, ``mean|dx c| + mean|dy c|``
    with ``c = x - mean over channels`` (the part of each pixel off the grey axis).

    The texture representation sees only a grey projection, and the surface representation is self-guided, so
    neither discriminator tells chroma noise from texture: their gradients, through those two representations,
    grow high-frequency colour noise (green/magenta hatching) that nothing else but the weak squared TV term
    pulls back. L1 leaves edges and ramps their total change (a flat region with a sharp colour edge costs
    what a gradual ramp of the same height does) and charges only oscillation: flat colours stay, noise goes.
    """
    x = x.float()
    return _l1_variation(x - x.mean(dim=1, keepdim=True))


def grey_variation(x: torch.Tensor) -> torch.Tensor:
    """Not in the paper: L1 total variation of the grey (channel mean) of ``(B, 3, H, W)`` images,
    ``mean|dx g| + mean|dy g|``: the surface prior (``--w-surface-prior``).

    The counterpart of :func:`chroma_variation` for brightness. L1 charges a step edge only its height, whatever
    its sharpness, and oscillation on every swing: flat areas with crisp boundaries stay cheap, while grain,
    hatching and high-contrast outlines cost. Weighted with the surface factor under loss-conditional training,
    it is what makes more surface weight give smoother, cleaner areas (the paper's claim for lambda_1, which its
    adversarial surface loss alone did not deliver here: README).
    """
    return _l1_variation(x.float().mean(dim=1, keepdim=True))


def reconstruction_l1(output: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """Pretraining loss: mean absolute difference between ``G(x)`` and ``x``."""
    return (output.float() - photo.float()).abs().mean()
