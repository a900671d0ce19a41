"""Networks: tensor -> tensor modules only (no I/O, devices or uint8 here)."""

from cartoon.models.discriminator import PatchDiscriminator
from cartoon.models.generator import STRIDE, UNetGenerator

GENERATORS = {"unet": UNetGenerator}

__all__ = ["GENERATORS", "STRIDE", "PatchDiscriminator", "UNetGenerator"]
