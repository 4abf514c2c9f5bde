"""The risk lab's plain data (no numpy, no I/O): what a run simulates, in the units of the
reference model. Token amounts are in the collateral token's units; prices and sizes WAD."""

from __future__ import annotations

from dataclasses import dataclass

from backstop.config import MarketConfig


@dataclass(frozen=True)
class Pair:
    """Two accounts opening opposite positions of ``size`` (WAD base units, > 0) in ``market``
    (an index into :attr:`Lab.markets`) against each other, at the market's initial price: the
    long deposits ``long_margin`` and the short ``short_margin`` token units first."""

    market: int
    size: int
    long_margin: int
    short_margin: int


@dataclass(frozen=True)
class Fund:
    """The insurance fund at the start (token units): ``assets`` staked; the deficit cover per
    liquidation is ``min(max(assets − floor, 0), per_event_cap or ∞)``."""

    assets: int
    floor: int = 0
    per_event_cap: int = 0


@dataclass(frozen=True)
class Keeper:
    """The liquidator: ``capital`` token units of margin; it passes every ``latency + 1`` steps
    (latency 0: every step), so an account that becomes liquidatable waits at most ``latency``
    steps."""

    capital: int
    latency: int = 0


@dataclass(frozen=True)
class Lab:
    """Everything but the price path: one run's markets, population, fund, keeper and horizon
    (``steps`` steps of ``step_seconds``)."""

    name: str
    collateral_decimals: int
    markets: tuple[MarketConfig, ...]
    pairs: tuple[Pair, ...]
    fund: Fund
    keeper: Keeper
    steps: int
    step_seconds: int

    @property
    def accounts(self) -> int:
        return 2 * len(self.pairs)


#: A price path: ``path[t][m]`` is market ``m``'s oracle price (WAD) after step ``t``
#: (``t = 0``: the initial prices, then one row per step, ``steps + 1`` rows).
PricePath = tuple[tuple[int, ...], ...]
