"""The model's integer arithmetic: WAD rounding helpers (docs/margin-math.md), sides and bounds."""

from __future__ import annotations

from backstop.units import WAD

LONG = 0
SHORT = 1

INT256_MAX = 2**255 - 1
#: Sizes and prices stay below 2**127 on chain (128-bit position storage): ``ValueOutOfRange``.
MAX_VALUE = 2**127 - 1


# --- rounding helpers (docs/margin-math.md) -------------------------------------------------------


def mul_wad_down(a: int, b: int) -> int:
    """``a·b / 1e18`` rounded down (a, b ≥ 0)."""
    return a * b // WAD


def mul_wad_up(a: int, b: int) -> int:
    """``a·b / 1e18`` rounded up (a, b ≥ 0)."""
    return -(-(a * b) // WAD)


def mul_wad_floor(x: int, b: int) -> int:
    """``x·b / 1e18`` for signed ``x``, rounded toward -∞."""
    return x * b // WAD


def mul_wad_ceil(x: int, b: int) -> int:
    """``x·b / 1e18`` for signed ``x``, rounded toward +∞."""
    return -(-(x * b) // WAD)


def mul_div_ceil(x: int, a: int, b: int) -> int:
    """``x·a / b`` for signed ``x`` (a ≥ 0, b > 0), rounded toward +∞."""
    return -(-(x * a) // b)


def ceil_div(a: int, b: int) -> int:
    """``a / b`` rounded up (a ≥ 0, b > 0)."""
    return -(-a // b)


def side_of(size: int) -> int:
    """``LONG`` for a positive size, ``SHORT`` for a negative one."""
    if size == 0:
        raise ValueError("a zero size has no side")
    return LONG if size > 0 else SHORT
