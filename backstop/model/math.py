"""The model's integer arithmetic: sides and bounds, and the WAD rounding helpers of ``backstop.units``."""

from __future__ import annotations

# The WAD rounding helpers (docs/margin-math.md) live in ``backstop.units``, below both the model
# and ``backstop.decisions``; the model's rules import them from here.
from backstop.units import ceil_div, mul_div_ceil, mul_wad_ceil, mul_wad_down, mul_wad_floor, mul_wad_up

LONG = 0
SHORT = 1

INT256_MAX = 2**255 - 1
#: Sizes and prices stay below 2**127 on chain (128-bit position storage): ``ValueOutOfRange``.
MAX_VALUE = 2**127 - 1


__all__ = [
    "INT256_MAX",
    "LONG",
    "MAX_VALUE",
    "SHORT",
    "ceil_div",
    "mul_div_ceil",
    "mul_wad_ceil",
    "mul_wad_down",
    "mul_wad_floor",
    "mul_wad_up",
    "side_of",
]


def side_of(size: int) -> int:
    """``LONG`` for a positive size, ``SHORT`` for a negative one."""
    if size == 0:
        raise ValueError("a zero size has no side")
    return LONG if size > 0 else SHORT
