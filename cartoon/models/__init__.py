"""Networks: tensor -> tensor modules only (no I/O, devices or uint8 here)."""

from cartoon.models.discriminator import PatchDiscriminator
from cartoon.models.generator import STRIDE, UNetGenerator

__all__ = ["STRIDE", "PatchDiscriminator", "UNetGenerator"]
