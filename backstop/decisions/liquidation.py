"""The keeper's liquidation policy (docs/design.md §4), as pure functions of a health snapshot.

A pass liquidates the accounts that are liquidatable when it starts (``E < MMR`` with a
position), most negative ``E − MMR`` first, ties broken by address (case-insensitive,
ascending). The liquidator never targets itself. Each target is re-checked with fresh health
just before acting (:attr:`AccountHealth.liquidatable` on the fresh reading): that re-check is
the caller's, because only the caller can read the chain or the model at that moment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class AccountHealth:
    """One account's ``healthOf`` entry (WAD amounts, as the engine reports them)."""

    account: str
    margin: int
    pending_loss: int
    equity: int
    initial_margin: int
    maintenance_margin: int
    has_positions: bool

    @property
    def buffer(self) -> int:
        """``E − MMR``: negative means liquidatable (if the account holds a position)."""
        return self.equity - self.maintenance_margin

    @property
    def liquidatable(self) -> bool:
        """docs/design.md §4: holds a position and ``E < MMR`` (strict: ``E == MMR`` is safe)."""
        return self.has_positions and self.equity < self.maintenance_margin


@dataclass(frozen=True)
class LiquidationPlan:
    """A pass's targets in the order to act on them, and the liquidatable accounts left out
    because they are the liquidator itself (a self-liquidation reverts on chain)."""

    targets: tuple[str, ...]
    skipped_self: tuple[AccountHealth, ...]


def _order_key(health: AccountHealth) -> tuple[int, str]:
    return (health.buffer, health.account.lower())


def decide(snapshot: Iterable[AccountHealth]) -> list[str]:
    """The accounts to liquidate, in order: every liquidatable account of ``snapshot``, most
    negative ``E − MMR`` first, ties broken by address (case-insensitive, ascending). An account
    listed twice counts once (its first entry). Pure: no I/O, no clock."""
    return list(plan_liquidations(snapshot, liquidator=None).targets)


def plan_liquidations(snapshot: Iterable[AccountHealth], liquidator: str | None) -> LiquidationPlan:
    """:func:`decide` for a pass run by ``liquidator``: the liquidator itself is never a target
    (it goes to ``skipped_self`` if it is liquidatable). ``liquidator=None`` excludes nobody."""
    me = liquidator.lower() if liquidator is not None else None
    seen: set[str] = set()
    chosen: list[AccountHealth] = []
    skipped: list[AccountHealth] = []
    for health in snapshot:
        key = health.account.lower()
        if key in seen:
            continue
        seen.add(key)
        if not health.liquidatable:
            continue
        (skipped if key == me else chosen).append(health)
    chosen.sort(key=_order_key)
    return LiquidationPlan(targets=tuple(h.account for h in chosen), skipped_self=tuple(skipped))
