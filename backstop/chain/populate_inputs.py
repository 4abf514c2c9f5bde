"""The inputs of ``ape run populate`` and its trade sizing, pure (no chain): ``--move``,
amounts, leverage, and how large a pair's fill may be (docs/margin-math.md). The chain side is
:mod:`backstop.chain.populate`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Context, Decimal, InvalidOperation

from backstop.units import WAD, format_units, to_units, to_wad

#: Sizes are rounded down to a millionth of a base unit.
SIZE_STEP = 10**12
#: A pair within this share (1/100) of its target size is left as is.
MIN_TRADE_DIVISOR = 100

_MOVE = re.compile(r"^([A-Za-z0-9_.-]+)=([+-]?\d+(?:\.\d+)?)(%?)$")
_WIDE = Context(prec=400)


class PopulateError(ValueError):
    """A bad input (an unknown market, a malformed move, ...): nothing was sent."""


class PopulateFailed(RuntimeError):
    """A transaction would revert (or reverted): it and everything after it were not sent."""


@dataclass(frozen=True)
class Move:
    """``--move``: a market's new price, absolute (quote per base) or relative (percent)."""

    text: str
    market: str
    value: Decimal
    relative: bool


def parse_move(text: str) -> Move:
    """``ETH=1400`` (a price > 0) or ``ETH=-30%`` / ``ETH=+5%`` (relative to the feed's answer)."""
    m = _MOVE.match(text.strip())
    if not m:
        raise PopulateError(
            f"--move {text!r}: expected MARKET=PRICE or MARKET=±PERCENT% (ETH=1400, ETH=-30%)"
        )
    market, number, percent = m.groups()
    value = Decimal(number)
    if not percent and value <= 0:
        raise PopulateError(f"--move {text}: a price must be > 0")
    return Move(text.strip(), market, value, bool(percent))


def new_answer(move: Move, answer: int, decimals: int) -> int:
    """The feed answer ``move`` asks for, from the current ``answer`` of a feed with ``decimals``:
    a relative move rounds down to the feed's unit; an absolute price must fit its decimals."""
    if move.relative:
        scaled = _WIDE.divide(_WIDE.multiply(Decimal(answer), _WIDE.add(Decimal(100), move.value)), 100)
        result = int(scaled.to_integral_value(rounding=ROUND_FLOOR))
    else:
        try:
            result = to_units(move.value, decimals)
        except ValueError:
            raise PopulateError(
                f"--move {move.text}: {move.value} has more decimals than the {move.market} feed's {decimals}"
            ) from None
    if result <= 0:
        price = format_units(result, 10**decimals)
        raise PopulateError(f"--move {move.text}: the {move.market} price would be {price} (must stay > 0)")
    return result


def parse_amount(text: str | int | Decimal, decimals: int, what: str) -> int:
    """A non-negative decimal token amount in the token's units, exact."""
    try:
        value = Decimal(str(text))
        if not value.is_finite() or value < 0:
            raise ValueError("not a non-negative number")
        return to_units(value, decimals)
    except (ValueError, InvalidOperation) as err:
        raise PopulateError(
            f"{what} {text}: not a token amount with at most {decimals} decimals ({err})"
        ) from None


def parse_leverage(text: str | int | Decimal) -> int:
    """``--leverage`` as a WAD multiple (``5`` → 5e18); 0 means no trades."""
    try:
        value = to_wad(Decimal(str(text)))
    except (ValueError, InvalidOperation):
        raise PopulateError(f"--leverage {text}: not a number with at most 18 decimals") from None
    if value < 0:
        raise PopulateError(f"--leverage {text}: must be ≥ 0")
    return value


def side_room(
    equity: int, imr: int, size: int, price: int, leverage: int, im_ratio: int, fee_ratio: int, scale: int
) -> tuple[int, int]:
    """``(room, target)`` of one side of a trade, WAD base units: ``target = L·E/P`` (a position
    whose notional is ``leverage`` times the equity), and ``room`` what it may still add, at most
    ``target − |size|`` and small enough that ``IMR`` plus the new notional's initial margin and
    trading fee stay within ``E`` (two token units of slack for the roundings)."""
    target = leverage * max(equity, 0) // price
    want = target - abs(size)
    room = (equity - imr - 2 * scale) * WAD * WAD // (price * (im_ratio + fee_ratio))
    return max(min(want, room), 0), target


def pair_size(long: tuple[int, int], short: tuple[int, int]) -> int:
    """The fill of a pair from each side's ``(room, target)``: the smaller room, down to
    :data:`SIZE_STEP`; 0 when that is under 1/:data:`MIN_TRADE_DIVISOR` of the smaller target."""
    q = min(long[0], short[0]) // SIZE_STEP * SIZE_STEP
    if q == 0 or q * MIN_TRADE_DIVISOR < min(long[1], short[1]):
        return 0
    return q
