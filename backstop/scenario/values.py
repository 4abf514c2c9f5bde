"""Scalar values of a scenario, converted exactly (docs/scenario-format.md): decimals, token
units, WAD integers, seconds, and one word of a few. Each refuses a bad value with a
``ScenarioError`` on one line that starts with ``where`` (``steps[3] (trade).size: ...``), like
every error of :mod:`backstop.scenario.parser`, which uses them.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from backstop.scenario.steps import ScenarioError
from backstop.units import to_units, to_wad


def exact_decimal(value: Any, where: str) -> Decimal:
    """A YAML scalar as an exact ``Decimal`` (ints, exact-decimal floats, numeric strings)."""
    if isinstance(value, bool) or value is None:
        raise ScenarioError(f"{where}: {value!r} is not a number")
    if isinstance(value, float):  # only from callers that bypass load_yaml; repr is the literal
        value = repr(value)
    try:
        d = (
            Decimal(value)
            if isinstance(value, int | Decimal)
            else Decimal(str(value).strip().replace("_", ""))
        )
    except InvalidOperation as err:
        raise ScenarioError(f"{where}: {value!r} is not a number") from err
    if not d.is_finite():
        raise ScenarioError(f"{where}: {value!r} is not a finite number")
    return d


def plain(d: Decimal) -> str:
    """A decimal as written (``0.0000001``, never ``1E-7``)."""
    return format(d, "f")


def non_negative(value: Any, where: str) -> Decimal:
    """:func:`exact_decimal`, refusing a negative value."""
    d = exact_decimal(value, where)
    if d < 0:
        raise ScenarioError(f"{where}: {plain(d)} must not be negative")
    return d


def token_units(value: Any, decimals: int, where: str) -> int:
    """A non-negative decimal amount of a token with ``decimals`` as an integer of its units."""
    d = non_negative(value, where)
    try:
        return to_units(d, decimals)
    except ValueError as err:
        raise ScenarioError(f"{where}: {plain(d)} has more decimals than the token's {decimals}") from err


def wad_units(value: Any, where: str) -> int:
    """A non-negative decimal (a size, a price, a ratio) as a WAD integer."""
    d = non_negative(value, where)
    try:
        return to_wad(d)
    except ValueError as err:
        raise ScenarioError(f"{where}: {plain(d)} has more than 18 decimal places") from err


def whole_seconds(value: Any, where: str) -> int:
    """A whole, non-negative number of seconds (an integer, not a decimal)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ScenarioError(f"{where}: {value!r} must be a whole number of seconds ≥ 0")
    return value


def one_of(value: Any, choices: tuple[str, ...], where: str) -> str:
    """``value`` if it is one of ``choices`` (``trade.maker``, ``trade.via``); else an error naming them."""
    if not isinstance(value, str) or value not in choices:
        raise ScenarioError(f"{where}: {value!r} must be {' or '.join(map(repr, choices))}")
    return value
