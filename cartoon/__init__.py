"""White-box cartoonization (Wang & Yu, CVPR 2020) as a small, typed library.

The image contract, everywhere in this package:

* **At the edges** (app, CLI, files): ``np.ndarray`` of shape ``(H, W, 3)``, dtype ``uint8``, RGB.
  :func:`cartoon.image.load_image` turns anything a user may hand us (path, bytes, PIL image, array of any
  mode) into that, or raises :class:`cartoon.image.ImageError` with a message a person understands.
* **Inside** (network, representations' torch twins, losses): float ``torch.Tensor`` of shape
  ``(B, 3, H, W)`` in ``[-1, 1]`` (the paper's range, ``x / 127.5 - 1``). Convert only with
  :func:`cartoon.image.to_tensor` and :func:`cartoon.image.to_uint8`.

Paper constants the authors give in BGR order are stored in RGB order next to the op that uses them.
"""

from cartoon.image import ImageError, load_image, to_tensor, to_uint8
from cartoon.representations import (
    StructureParams,
    color_shift,
    guided_filter,
    structure,
    surface,
    texture,
    whitebox_mix,
)

__all__ = [
    "ImageError",
    "StructureParams",
    "color_shift",
    "guided_filter",
    "load_image",
    "structure",
    "surface",
    "texture",
    "to_tensor",
    "to_uint8",
    "whitebox_mix",
]
__version__ = "0.1.0"
