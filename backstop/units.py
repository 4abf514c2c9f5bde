"""Exact unit conversions and the WAD rounding helpers (docs/margin-math.md), shared by the model,
the decisions, the tests and the scripts (integers, never floats)."""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow

WAD = 10**18
#: Arithmetic that never rounds silently (the default context keeps 28 digits: a 2^127 cap, or
#: ``123456789.123456789123456789`` WAD, would lose its last digits).
_EXACT = Context(prec=400, traps=[Inexact, InvalidOperation, Overflow])


def _scaled(value: int | str | Decimal, factor: int) -> Decimal:
    try:
        return _EXACT.multiply(Decimal(str(value)), Decimal(factor))
    except (Inexact, InvalidOperation, Overflow) as err:
        raise ValueError(f"{value} is not an exact decimal quantity") from err


def to_wad(value: int | str | Decimal) -> int:
    """A decimal quantity (``"1.5"``, ``Decimal``, ``int``) as an exact WAD integer.

    Raises ``ValueError`` if the value has more than 18 decimal places.
    """
    scaled = _scaled(value, WAD)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than 18 decimal places")
    return int(scaled)


def token_scale(decimals: int) -> int:
    """WAD per token unit, ``10**(18 - decimals)`` for 0 < decimals <= 18."""
    if not 0 < decimals <= 18:
        raise ValueError(f"unsupported token decimals {decimals}")
    return 10 ** (18 - decimals)


def to_units(value: int | str | Decimal, decimals: int) -> int:
    """A decimal token amount in the token's own units (exact)."""
    d = _scaled(value, 10**decimals)
    if d != d.to_integral_value():
        raise ValueError(f"{value} has more than {decimals} decimal places")
    return int(d)


def format_units(value: int, scale: int = WAD) -> str:
    """An exact decimal rendering of ``value / scale`` (``2000``, ``0.5``): WAD by default."""
    wide = Context(prec=400)
    return format(wide.divide(Decimal(value), Decimal(scale)).normalize(wide), "f")


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
