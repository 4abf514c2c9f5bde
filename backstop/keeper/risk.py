"""The keeper's own risk (docs/keeper.md §"The keeper's own risk"): its equity, IMR, MMR, free
collateral and gross notional after a pass, the leverage and buffer derived from them, and the
human rendering of WAD amounts used in every log line. Pure: no I/O.

- ``leverage = notional / equity`` (``inf`` when ``equity ≤ 0``);
- ``buffer = free collateral / IMR`` (``inf`` when ``IMR = 0``). The buffer is *low* when
  ``F < min_buffer·IMR`` (so with no position, only a negative ``F`` is low).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from backstop.decisions import Book, MarketTerms, gross_notional, valuation
from backstop.units import WAD

#: ``--min-buffer``'s default: warn when free collateral falls under 20 % of the keeper's IMR.
DEFAULT_MIN_BUFFER = WAD // 5


def human(wad: int, places: int = 2) -> str:
    """A WAD amount in quote units with thousands separators, rounded half up to ``places``
    decimals: ``human(12345_678 * 10**15) == "12,345.68"``."""
    value = (Decimal(wad) / WAD).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"{value + 0:,.{places}f}"  # + 0: no "-0.00"


def ratio(numerator: int, denominator: int, places: int = 2) -> str:
    """``numerator / denominator`` rounded half up to ``places`` decimals; ``inf`` for a
    denominator ≤ 0."""
    if denominator <= 0:
        return "inf"
    value = (Decimal(numerator) / Decimal(denominator)).quantize(
        Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP
    )
    return f"{value:,.{places}f}"


@dataclass(frozen=True)
class OwnRisk:
    """The keeper's own book valued at one block (WAD): ``E``, ``IMR``, ``MMR``, free collateral
    ``F = min(margin − pendingLoss, E) − IMR`` and gross notional ``Σ ceil(|size|·P)``."""

    block: int
    equity: int
    imr: int
    mmr: int
    free: int
    notional: int

    @classmethod
    def of(cls, book: Book, terms: dict[int, MarketTerms], block: int) -> OwnRisk:
        v = valuation(book, terms)
        return cls(block, v.equity, v.imr, v.mmr, v.free_collateral, gross_notional(book, terms))

    @property
    def leverage(self) -> Decimal | None:
        """``notional / equity``; None when ``equity ≤ 0``."""
        return Decimal(self.notional) / Decimal(self.equity) if self.equity > 0 else None

    @property
    def buffer(self) -> Decimal | None:
        """``F / IMR``; None when ``IMR = 0``."""
        return Decimal(self.free) / Decimal(self.imr) if self.imr > 0 else None

    def buffer_low(self, min_buffer: int) -> bool:
        """``F < min_buffer·IMR`` (``min_buffer`` WAD), exactly in integers."""
        return self.free * WAD < min_buffer * self.imr

    def fields(self) -> dict[str, str]:
        """The ``own_risk`` line's fields, in human units."""
        return {
            "equity": human(self.equity),
            "imr": human(self.imr),
            "mmr": human(self.mmr),
            "free": human(self.free),
            "notional": human(self.notional),
            "leverage": ratio(self.notional, self.equity) + ("x" if self.equity > 0 else ""),
            "buffer": ratio(self.free, self.imr),
        }
