"""The keeper's pass on the reference model, as the real keeper plays it (docs/keeper.md): the
stress runner's model backend and the risk lab's fast engine both call :func:`keeper_pass`.

Its targets come from ``plan_liquidations`` over the health of the accounts it is given, a
capital plan from the model's books (``plan_pass`` with the keeper's defaults), and the plan is
played by ``play_actions``. A batch whose accounts are all healthy by now is not sent (the
keeper's dry run liquidates nobody); a batch the model refuses is split, as the keeper splits one
whose dry run fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from backstop.decisions import (
    Batch,
    Book,
    GasModel,
    MarketTerms,
    PartialStep,
    plan_liquidations,
    plan_pass,
    play_actions,
)
from backstop.decisions.fallback import (
    DEFAULT_BUFFER_RATIO,
    DEFAULT_GAS_BUDGET,
    DEFAULT_MAX_INHERIT_NOTIONAL,
    DEFAULT_MIN_STEP_NOTIONAL,
)
from backstop.model import Model, ModelRevert
from backstop.stress.backend import partial_record
from backstop.stress.results import LIQUIDATION_FIELDS


def whole_record(account: str, liquidator: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """The report entry of ``liquidate``'s result (addresses and WAD integers)."""
    return {"account": account, "liquidator": liquidator, **{k: result[k] for k in LIQUIDATION_FIELDS}}


def step_record(account: str, liquidator: str, market: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """The report entry of ``liquidate_position``'s result in market ``market`` (its name)."""
    return partial_record(
        account,
        liquidator,
        market,
        result["size"],
        result["price"],
        result["keeper_reward"],
        result["insurance_fee"],
    )


def keeper_pass(
    model: Model, keeper: str, accounts: Iterable[str], market_names: Sequence[str]
) -> tuple[list[dict[str, Any]], int]:
    """One pass of ``keeper`` over ``accounts`` (addresses; the keeper itself may be among them
    and is never a target) on ``model``: the liquidation records in the order they happened, and
    how many attempts failed. Only liquidatable accounts can become targets, so any superset of
    them gives the same pass."""
    order = plan_liquidations(model.health_snapshot(accounts), keeper)
    liquidations: list[dict[str, Any]] = []
    failed = 0
    if not order.targets:
        return liquidations, failed
    books = [_book(model, a) for a in (*order.targets, keeper)]
    terms = _terms(model, {m for b in books for m in b.positions})
    priced = [b for b in books[:-1] if set(b.positions) <= set(terms)]
    failed += len(books) - 1 - len(priced)
    gas = GasModel(budget=DEFAULT_GAS_BUDGET)
    plan = plan_pass(
        priced,
        books[-1],
        terms,
        buffer_ratio=DEFAULT_BUFFER_RATIO,
        min_step_notional=DEFAULT_MIN_STEP_NOTIONAL,
        max_notional=DEFAULT_MAX_INHERIT_NOTIONAL,
        gas=gas,
    )

    def batch(b: Batch) -> bool:
        nonlocal failed
        if not any(model.liquidatable(a) for a in b.accounts):
            return True
        try:
            result = model.liquidate_many(list(b.accounts), keeper)
        except ModelRevert:
            failed += len(b.accounts) == 1
            return False
        liquidations.extend(whole_record(e["account"], keeper, e) for e in result["liquidated"])
        return True

    def step(s: PartialStep) -> None:
        nonlocal failed
        try:
            result = model.liquidate_position(s.account, s.market_id, s.size, keeper)
        except ModelRevert as err:
            failed += err.name != "NotLiquidatable"
            return
        liquidations.append(step_record(s.account, keeper, market_names[s.market_id], result))

    play_actions(plan.actions, gas, batch=batch, step=step)
    return liquidations, failed


def _book(model: Model, address: str) -> Book:
    positions = {m: model.position(address, m) for m in model.markets_of(address)}
    return Book(address, model.margin(address), model.pending_loss(address), positions)


def _terms(model: Model, market_ids: set[int]) -> dict[int, MarketTerms]:
    """The keeper's view of each market: its usable oracle price and risk parameters."""
    out = {}
    for m in sorted(market_ids):
        try:
            price = model.price(m)
        except ModelRevert:
            continue  # stale: the keeper leaves its accounts for a later pass
        p = model.markets[m].params
        out[m] = MarketTerms(
            m,
            price,
            p.im_ratio,
            p.mm_ratio,
            p.keeper_reward_ratio,
            p.keeper_reward_cap,
            p.insurance_fee_ratio,
        )
    return out
