"""The risk lab's exact engine (docs/risk-lab.md §"Engines"): one price path played on the
reference model, through the real keeper policy, as a stress scenario.

:func:`scenario_of` turns a :class:`~backstop.risk.types.Lab` and one price path into a
:class:`~backstop.scenario.Scenario`: the staker stakes the fund, every pair deposits and trades
at the initial prices, then each step advances the clock, sets the path's prices and — every
``latency + 1`` steps — runs one keeper pass (the stress runner's model backend plays it as the
real keeper plays it: ``backstop.decisions`` plans with the keeper's capital, whole accounts in
batches, partial steps for solvent accounts it cannot take whole). :func:`run_path` plays it with
``backstop.stress.runner.run`` on :class:`~backstop.stress.ModelBackend` and reduces the run to
a :class:`PathResult`. The same scenario, written out, replays the path on a chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backstop.risk.types import Lab, PricePath
from backstop.scenario import Advance, KeeperPass, Price, Scenario, Stake, Trade
from backstop.stress.model_backend import ModelBackend
from backstop.stress.results import RunResult
from backstop.stress.runner import run
from backstop.units import WAD

STAKER = "staker"
KEEPER = "keeper"


def long_name(i: int) -> str:
    return f"l{i}"


def short_name(i: int) -> str:
    return f"s{i}"


def scenario_of(lab: Lab, path: PricePath, name: str | None = None) -> Scenario:
    """The path as a scenario (see the module docstring). ``path[0]`` must be the markets' initial
    prices: the pairs trade at them."""
    if len(path) != lab.steps + 1:
        raise ValueError(f"the path has {len(path)} rows; {lab.steps + 1} expected (steps + 1)")
    initial = tuple(m.mock_price for m in lab.markets)
    if tuple(path[0]) != initial:
        raise ValueError(f"the path starts at {path[0]}, not at the markets' prices {initial}")
    names = [m.name for m in lab.markets]
    accounts: dict[str, int] = {KEEPER: lab.keeper.capital, STAKER: 0}
    for i, pair in enumerate(lab.pairs):
        accounts[long_name(i)] = pair.long_margin
        accounts[short_name(i)] = pair.short_margin
    steps: list = []

    def add(step_type, **fields) -> None:
        steps.append(step_type(index=len(steps), **fields))

    if lab.fund.assets:
        add(Stake, account=STAKER, amount=lab.fund.assets)
    for i, pair in enumerate(lab.pairs):
        market = lab.markets[pair.market]
        add(
            Trade,
            buyer=long_name(i),
            seller=short_name(i),
            market=market.name,
            size=pair.size,
            price=market.mock_price,
            maker="seller",
        )
    every = lab.keeper.latency + 1
    for t in range(1, lab.steps + 1):
        add(Advance, seconds=lab.step_seconds)
        add(Price, prices=dict(zip(names, path[t], strict=True)))
        if t % every == 0:
            add(KeeperPass, by=KEEPER)
    return Scenario(
        name=name or lab.name,
        collateral_decimals=lab.collateral_decimals,
        markets=lab.markets,
        accounts=accounts,
        steps=tuple(steps),
        floor_tokens=lab.fund.floor,
        per_event_cap_tokens=lab.fund.per_event_cap,
    )


@dataclass(frozen=True)
class PathResult:
    """One path's outcome. Money in WAD (quote units × 10¹⁸); ``fund_assets`` in token units
    after setup and after every simulated step (``steps + 1`` values)."""

    bad_debt: int
    covered: int
    socialized: int
    liquidations: int  # whole-account liquidations and partial steps
    partial_steps: int
    fund_assets: tuple[int, ...]
    #: Open interest (one side, quote notional at the initial prices) the pairs opened.
    open_interest: int
    #: The largest share of its equity (before the haircut) any account lost to socialization.
    max_haircut_ratio: float
    #: Every account's margin at the end (WAD), by name.
    final_margins: dict[str, int]
    trades_failed: int  # pairs whose opening trade reverted (0 for a well-formed population)
    #: The fund ran out: a liquidation's deficit was socialized while the fund gave less than its
    #: per-event cap (or had no cap), i.e. it had nothing more above its floor.
    fund_exhausted: bool

    @property
    def haircut_per_oi(self) -> float:
        """Socialized loss per unit of open interest."""
        return self.socialized / self.open_interest if self.open_interest else 0.0


def run_path(lab: Lab, path: PricePath) -> PathResult:
    """Plays one path on the reference model (see the module docstring)."""
    return record_of(lab, run(scenario_of(lab, path), ModelBackend()))


def record_of(lab: Lab, result: RunResult) -> PathResult:
    """A :class:`PathResult` from the stress run of :func:`scenario_of`'s scenario (on any
    backend: an exported path replayed on a chain reduces the same way)."""
    trades = [s for s in result.steps if s.action == "trade"]
    # The fund after setup, then after every simulated step: each starts with its advance, and
    # the series holds the start, then the state after each step (after step k: index k + 1).
    actions = [s.action for s in result.steps]
    first = actions.index("advance") if "advance" in actions else len(actions)
    ends = [k + 1 for k in range(first, len(actions)) if k + 1 == len(actions) or actions[k + 1] == "advance"]
    scale = 10**lab.collateral_decimals
    cap = lab.fund.per_event_cap * (WAD // scale)  # WAD, like the liquidation records
    fund = [round(result.series.fund_assets[first] * scale)]
    fund += [round(result.series.fund_assets[e] * scale) for e in ends]
    oi = open_interest(lab, [not step.reverted for step in trades])
    max_haircut = max(
        (
            haircut_ratio(view.pending_loss, view.equity)
            for view in result.accounts.values()
            if view.pending_loss > 0 and view.equity is not None
        ),
        default=0.0,
    )
    return PathResult(
        bad_debt=result.totals["bad_debt"],
        covered=result.totals["insurance_covered"],
        socialized=result.totals["socialized"],
        liquidations=len(result.liquidations),
        partial_steps=sum(1 for liq in result.liquidations if liq.market is not None),
        fund_assets=tuple(fund),
        open_interest=oi,
        max_haircut_ratio=max_haircut,
        final_margins={name: view.margin for name, view in result.accounts.items()},
        trades_failed=sum(1 for s in trades if s.reverted),
        fund_exhausted=any(exhausted(cap, liq.covered, liq.socialized) for liq in result.liquidations),
    )


def open_interest(lab: Lab, opened: Sequence[bool]) -> int:
    """One side's open interest (quote notional at the initial prices) of the pairs whose opening
    trade went through (``opened[i]`` for pair ``i``)."""
    return sum(
        pair.size * lab.markets[pair.market].mock_price // WAD
        for pair, ok in zip(lab.pairs, opened, strict=True)
        if ok
    )


def haircut_ratio(pending_loss: int, equity: int) -> float:
    """The share of its equity before the haircut that an account's pending socialized loss
    takes (1 when that equity was not positive)."""
    before = equity + pending_loss
    return pending_loss / before if before > 0 else 1.0


def exhausted(cap: int, covered: int, socialized: int) -> bool:
    """Whether a liquidation found the fund exhausted: it socialized a deficit while the fund
    gave less than its per-event cap ``cap`` (WAD; 0 = no cap)."""
    return socialized > 0 and (cap == 0 or covered < cap)
