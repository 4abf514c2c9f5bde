"""The model's state: market parameters, markets, positions, accounts, fund redeem requests, health."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ModelRevert(Exception):
    """A call the contracts would revert: ``name`` is the Solidity custom error, ``args`` its arguments.

    The names are normative (docs/margin-math.md); the arguments are the model's best rendering of
    the error's fields and are informative only (hashes here are struct hashes, not digests).
    """

    def __init__(self, name: str, *args: Any) -> None:
        super().__init__(*args)
        self.name = name

    def __str__(self) -> str:
        return f"{self.name}({', '.join(map(repr, self.args))})"


#: The largest keeper-reward cap the engine stores (``uint128``): a scenario's "no cap".
MAX_KEEPER_REWARD_CAP = 2**128 - 1


@dataclass
class MarketParams:
    """Risk and fee parameters of a market; every ratio is WAD, ``oi_cap`` in WAD base units,
    ``keeper_reward_cap`` in WAD quote (the most one liquidation pays its keeper for this market)."""

    im_ratio: int
    mm_ratio: int
    keeper_reward_ratio: int
    insurance_fee_ratio: int
    price_band_ratio: int
    maker_fee_ratio: int
    taker_fee_ratio: int
    oi_cap: int
    keeper_reward_cap: int = MAX_KEEPER_REWARD_CAP


@dataclass
class Market:
    params: MarketParams
    price: int  # WAD quote per base unit, the last oracle price
    paused: bool = False
    loss_index: list[int] = field(default_factory=lambda: [0, 0])  # L[LONG], L[SHORT], WAD per WAD size
    open_interest: list[int] = field(default_factory=lambda: [0, 0])  # Σ long sizes, Σ |short sizes|


@dataclass
class Position:
    size: int = 0  # signed WAD base units, never 0 while stored
    open_notional: int = 0  # signed WAD cost basis
    snapshot: int = 0  # L[m][side] at the last settlement


@dataclass
class AccountState:
    margin: int = 0  # signed WAD
    positions: dict[int, Position] = field(default_factory=dict)  # insertion order = markets_of order
    min_nonce: int = 0


@dataclass
class RedeemRequest:
    """A controller's EIP-7540 redeem request on the insurance fund (its shares are in escrow)."""

    shares: int  # escrowed shares not yet claimed, > 0 while stored
    assets: int  # token units those shares were worth at the request (shrinks pro-rata on claims)
    requested_at: int  # timestamp of the request


@dataclass(frozen=True)
class Health:
    """An account's figures at the current prices, all WAD: ``E = margin - pending + upnl``."""

    margin: int
    pending: int
    upnl: int
    imr: int
    mmr: int

    @property
    def equity(self) -> int:
        return self.margin - self.pending + self.upnl

    @property
    def free_collateral(self) -> int:
        """``min(margin - pending, E) - IMR``: unrealized profit is never free."""
        return min(self.margin - self.pending, self.equity) - self.imr
