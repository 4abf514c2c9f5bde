"""The risk lab's fast engine (docs/risk-lab.md §"Engines"): the exact engine's results, with numpy
doing the part that grows with paths × accounts × steps.

Between two keeper passes only prices move: an account's margin, position and loss-index snapshot
change only when the keeper liquidates. So the engine keeps every account of every path of a
chunk in float64 arrays (margin, size, open notional, snapshot; per path, market and side the
loss index) and, at each keeper pass, computes every account's ``E − MMR`` on every path at once.
An account whose float ``E − MMR`` is below a billionth of its own magnitudes (:func:`screen`;
some 10⁶ times float64's rounding there) may be liquidatable. On a path with such accounts the
pass is played exactly: on that path's own copy of the set-up reference model (made the first time
the path needs one), by the keeper's own pass (:func:`backstop.stress.model_keeper.keeper_pass`,
the exact engine's) over those accounts, which are then reloaded from the model. Passes on which
every account is clearly healthy never touch the model.

The keeper's pass only ever targets liquidatable accounts, in an order that depends on nothing
else, so as long as the screen lets through every account that is liquidatable, the results are
the exact engine's integer for integer; ``tests/unit/risk/test_fast.py`` holds the two engines to
each other on random configurations.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from backstop.model import Model
from backstop.risk.exact import (
    KEEPER,
    PathResult,
    exhausted,
    haircut_ratio,
    long_name,
    open_interest,
    scenario_of,
    short_name,
)
from backstop.risk.paths import TICK
from backstop.risk.types import Lab
from backstop.scenario import Advance, Trade
from backstop.stress.model_backend import ModelBackend
from backstop.stress.model_keeper import keeper_pass
from backstop.units import WAD

#: The screen's relative tolerance on ``E − MMR`` (of ``|margin| + notional + |openNotional|``).
RELATIVE_TOLERANCE = 1e-9
#: And its absolute floor (WAD): the exact roundings are a few wei.
ABSOLUTE_TOLERANCE = 1e6


@dataclass(frozen=True, eq=False)
class SetUp:
    """A lab after its setup (the stake and the pairs' trades), shared by every path: the model,
    the keeper, and the pair accounts' state as arrays (account ``2i`` is pair ``i``'s long,
    ``2i + 1`` its short)."""

    model: Model
    keeper: str
    addresses: tuple[str, ...]  # the pair accounts
    names: dict[str, str]  # every scenario account: name -> address, in the scenario's order
    market_names: tuple[str, ...]
    market: np.ndarray  # each pair account's market (int)
    column: np.ndarray  # its side's column in the (market, side) loss-index row: 2·market + side
    mm_ratio: np.ndarray  # its market's maintenance ratio (float)
    margin: np.ndarray  # WAD (float)
    size: np.ndarray  # signed base units (float)
    open_notional: np.ndarray  # WAD (float)
    snapshot: np.ndarray  # WAD (float)
    opened: tuple[bool, ...]  # per pair: its opening trade went through
    open_interest: int  # one side's, of the opened pairs (exact.open_interest)
    trades_failed: int  # pairs whose opening trade did not go through
    fund: int  # the fund's token units after setup
    margins: dict[str, int]  # every account's margin after setup (WAD), by name


@functools.lru_cache(maxsize=4)
def set_up(lab: Lab) -> SetUp:
    """The lab's setup played on the reference model, as the exact engine plays it (the scenario
    of :func:`~backstop.risk.exact.scenario_of` up to its first advance, on
    :class:`~backstop.stress.ModelBackend`). Cached: every chunk of a run shares it."""
    flat = tuple(tuple(m.mock_price for m in lab.markets) for _ in range(lab.steps + 1))
    scenario = scenario_of(lab, flat)
    backend = ModelBackend()
    backend.setup(scenario)
    opened = []
    for step in scenario.steps:
        if isinstance(step, Advance):
            break
        outcome = backend.execute(step)
        if isinstance(step, Trade):
            opened.append(not outcome.reverted)
    model = backend.model
    assert model is not None
    addresses = tuple(backend.addresses[f(i)] for i in range(len(lab.pairs)) for f in (long_name, short_name))
    market = np.array([pair.market for pair in lab.pairs for _ in (0, 1)], dtype=np.int64)
    side = np.array([0, 1] * len(lab.pairs), dtype=np.int64)
    state = np.array([_read(model, a, int(m)) for a, m in zip(addresses, market, strict=True)])
    state = state.reshape(len(addresses), 4)
    mm = np.array([lab.markets[m].mm_ratio / WAD for m in range(len(lab.markets))])
    return SetUp(
        model=model,
        keeper=backend.addresses[KEEPER],
        addresses=addresses,
        names=dict(backend.addresses),
        market_names=tuple(scenario.market_names),
        market=market,
        column=2 * market + side,
        mm_ratio=mm[market],
        margin=state[:, 0],
        size=state[:, 1],
        open_notional=state[:, 2],
        snapshot=state[:, 3],
        opened=tuple(opened),
        open_interest=open_interest(lab, opened),
        trades_failed=list(opened).count(False),
        fund=model.fund_assets(),
        margins={name: model.margin(address) for name, address in backend.addresses.items()},
    )


def _read(model: Model, address: str, market_id: int) -> tuple[float, float, float, float]:
    """An account's ``(margin, size in base units, openNotional, snapshot)`` as floats."""
    size, open_notional = model.position(address, market_id)
    return (
        float(model.margin(address)),
        size / WAD,
        float(open_notional),
        float(model.loss_snapshot(address, market_id)),
    )


def screen(
    margin: np.ndarray,
    size: np.ndarray,
    open_notional: np.ndarray,
    index: np.ndarray,
    snapshot: np.ndarray,
    price: np.ndarray,
    mm_ratio: np.ndarray,
) -> np.ndarray:
    """Which accounts may be liquidatable (elementwise, floats: margin, openNotional, the loss
    index of the position's side, its snapshot and the price in WAD, the size in base units):
    a position and ``E − MMR`` below a billionth of ``|margin| + notional + |openNotional|``
    (plus :data:`ABSOLUTE_TOLERANCE`), with ``E = margin − |size|·(index − snapshot) + size·P −
    openNotional`` and ``MMR = |size|·P·mmRatio``. Every account that is liquidatable is flagged:
    float64 errs by some 1e-16 of those magnitudes, the exact roundings by a few wei."""
    notional = np.abs(size) * price
    gap = margin - np.abs(size) * (index - snapshot) + size * price - open_notional - notional * mm_ratio
    tol = RELATIVE_TOLERANCE * (np.abs(margin) + notional + np.abs(open_notional)) + ABSOLUTE_TOLERANCE
    return (size != 0) & (gap < tol)


@dataclass
class _Path:
    """One path's exact state once it needs the model, and its tallies."""

    model: Model
    bad_debt: int = 0
    covered: int = 0
    socialized: int = 0
    liquidations: int = 0
    partial_steps: int = 0
    exhausted: bool = False
    #: (step, fund token units after it), at the steps where the fund changed.
    fund_changes: list[tuple[int, int]] = field(default_factory=list)


def run_fast(lab: Lab, ticks: np.ndarray) -> list[PathResult]:
    """Every path of ``ticks`` (int64 price ticks of shape ``(paths, steps + 1, markets)``, as
    :func:`~backstop.risk.paths.to_ticks` gives them) on the fast engine (see the module
    docstring): the same :class:`~backstop.risk.exact.PathResult` s as the exact engine's."""
    su = set_up(lab)
    n_paths, rows, n_markets = ticks.shape
    if rows != lab.steps + 1 or n_markets != len(lab.markets):
        raise ValueError(
            f"ticks of shape {ticks.shape}; (paths, {lab.steps + 1}, {len(lab.markets)}) expected"
        )
    initial = tuple(m.mock_price // TICK for m in lab.markets)
    if not np.all(ticks[:, 0, :] == initial):
        raise ValueError("every path must start at the markets' prices")
    prices = ticks.astype(np.float64) * float(TICK)  # WAD
    margin = np.tile(su.margin, (n_paths, 1))
    size = np.tile(su.size, (n_paths, 1))
    open_notional = np.tile(su.open_notional, (n_paths, 1))
    snapshot = np.tile(su.snapshot, (n_paths, 1))
    loss_index = np.zeros((n_paths, 2 * n_markets))
    cap = lab.fund.per_event_cap * (WAD // 10**lab.collateral_decimals)
    paths: dict[int, _Path] = {}
    every = lab.keeper.latency + 1
    for t in range(every, lab.steps + 1, every):
        price = prices[:, t, :][:, su.market]
        flags = screen(margin, size, open_notional, loss_index[:, su.column], snapshot, price, su.mm_ratio)
        for p in np.flatnonzero(flags.any(axis=1)):
            path = paths.get(p)
            if path is None:
                path = paths[p] = _Path(su.model.copy())
            model = path.model
            for m in range(n_markets):
                model.set_price(m, int(ticks[p, t, m]) * TICK)
            accounts = np.flatnonzero(flags[p])
            records, _ = keeper_pass(model, su.keeper, [su.addresses[a] for a in accounts], su.market_names)
            if not records:
                continue
            for rec in records:
                path.bad_debt += rec["deficit"]
                path.covered += rec["covered"]
                path.socialized += rec["socialized"]
                path.partial_steps += rec.get("market") is not None
                path.exhausted |= exhausted(cap, rec["covered"], rec["socialized"])
            path.liquidations += len(records)
            path.fund_changes.append((t, model.fund_assets()))
            for a in accounts:  # the pass touched only these (and the keeper)
                address = su.addresses[a]
                margin[p, a], size[p, a], open_notional[p, a], snapshot[p, a] = _read(
                    model, address, int(su.market[a])
                )
            for m in range(n_markets):
                loss_index[p, 2 * m] = model.loss_index(m, 0)
                loss_index[p, 2 * m + 1] = model.loss_index(m, 1)
    return [_result(lab, su, ticks[p, -1], paths.get(p)) for p in range(n_paths)]


def _result(lab: Lab, su: SetUp, last: np.ndarray, path: _Path | None) -> PathResult:
    if path is None:  # no keeper pass flagged an account: nothing moved after the setup
        return PathResult(
            bad_debt=0,
            covered=0,
            socialized=0,
            liquidations=0,
            partial_steps=0,
            fund_assets=(su.fund,) * (lab.steps + 1),
            open_interest=su.open_interest,
            max_haircut_ratio=0.0,
            final_margins=dict(su.margins),
            trades_failed=su.trades_failed,
            fund_exhausted=False,
        )
    model = path.model
    for m, tick in enumerate(last):
        model.set_price(m, int(tick) * TICK)
    fund = [su.fund] * (lab.steps + 1)
    for t, value in path.fund_changes:
        fund[t:] = [value] * (lab.steps + 1 - t)
    max_haircut = 0.0
    for address in su.names.values():
        pending = model.pending_loss(address)
        if pending > 0:
            max_haircut = max(max_haircut, haircut_ratio(pending, model.equity(address)))
    return PathResult(
        bad_debt=path.bad_debt,
        covered=path.covered,
        socialized=path.socialized,
        liquidations=path.liquidations,
        partial_steps=path.partial_steps,
        fund_assets=tuple(fund),
        open_interest=su.open_interest,
        max_haircut_ratio=max_haircut,
        final_margins={name: model.margin(address) for name, address in su.names.items()},
        trades_failed=su.trades_failed,
        fund_exhausted=path.exhausted,
    )
