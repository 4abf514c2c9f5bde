"""The stress runner: plays a scenario (docs/scenario-format.md) through a backend and builds the report.

Two backends implement the same small seam (:class:`~backstop.stress.backend.ScenarioBackend`),
and one table (:data:`~backstop.stress.backend.STEP_HANDLERS`) dispatches every step kind to them:

- ``ChainBackend`` deploys a fresh suite with ``backstop.chain.deploy`` on the connected (local) chain,
  funds every named account's wallet from the mock token, signs orders with the test accounts'
  keys and matches them from a relayer (test account 0), or for a ``via: fill`` trade has the
  taker send ``fillOrder`` of the maker's signed order from its own key, and runs the real keeper
  (``backstop.keeper.Keeper.run_once``) for ``keeper`` steps;
- ``ModelBackend`` plays the same steps on the exact-integer reference model
  (``backstop.model.Model``); its keeper step is ``backstop.decisions.plan_liquidations`` over the model's
  health of every account, then ``Model.liquidate`` in that order, re-checking each first.

Both produce a ``RunResult`` from their own views, so the two reports of one scenario must be
equal except for ``gas_used`` and ``chain_id``. After every step the runner checks the solvency
identity (docs/design.md §9): ``vault_assets = liabilities + dust`` with ``dust ≥ 0``. A step whose
outcome differs from its ``expect_revert`` fails the run; the run always plays every step, so the
report is complete, and ``RunResult.ok`` says whether it passed.

Account names map to test accounts in order of first appearance (index 1, 2, ...; index 0 deploys
and relays). ``withdraw: max`` withdraws the free collateral floored to a token unit; when that is
≤ 0 the withdrawal of 0 reverts (``ZeroAmount``). ``unstake`` without ``shares`` redeems the whole
pending request (0 shares, hence ``NoRedeemRequest``, when there is none).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from backstop.scenario import Scenario, Step
from backstop.stress.backend import ScenarioBackend
from backstop.stress.describe import describe
from backstop.stress.results import (
    LIQUIDATION_FIELDS,
    LiquidationRecord,
    Outcome,
    RunResult,
    Series,
    StepRecord,
    StepState,
)
from backstop.units import WAD, format_units

log = logging.getLogger("backstop.stress")


def _expected(step: Step, outcome: Outcome) -> tuple[bool, str | None]:
    """Whether the outcome is what the step expects, and why not."""
    if outcome.crashed:
        return False, f"the runner crashed: {outcome.error}"
    if outcome.reverted and not step.expects_revert:
        return False, f"unexpected revert {outcome.error}"
    if not outcome.reverted and step.expects_revert:
        return False, "expected a revert, but the step succeeded"
    if outcome.reverted and isinstance(step.expect_revert, str) and outcome.error != step.expect_revert:
        return False, f"expected revert {step.expect_revert}, got {outcome.error}"
    return True, None


def _tokens(value: int | None, scale: int) -> float:
    return float("nan") if value is None else value / scale


ProgressFn = Callable[[StepRecord, int, list[str]], None]


def run(scenario: Scenario, backend: ScenarioBackend, progress: ProgressFn | None = None) -> RunResult:
    """Plays ``scenario`` on ``backend``; never stops early (see the module docstring).

    ``progress(record, total, problems)`` is called after every step."""
    started = time.monotonic()
    backend.setup(scenario)
    failures: list[str] = []
    liquidations: list[LiquidationRecord] = []
    trading_fees = 0
    flows = {name: -amount for name, amount in scenario.accounts.items()}
    stakers = scenario.stakers()
    series = Series(
        prices={m: [] for m in scenario.market_names},
        equity={n: [] for n in scenario.account_names()},
        staked_value={n: [] for n in stakers},
    )
    scale = scenario.scale
    states: list[StepState] = []

    def invariants(where: str) -> list[str]:
        vault_assets, liabilities, dust = backend.solvency()
        problems = []
        if dust < 0:
            problems.append(f"{where}: solvency identity broken: dust {dust} < 0")
        if vault_assets != liabilities + dust:
            problems.append(
                f"{where}: vault_assets {vault_assets} != liabilities {liabilities} + dust {dust}"
            )
        problems.extend(f"{where}: {p}" for p in backend.checks())
        return problems

    def record(x: int, label: str) -> None:
        assets, supply = backend.fund()
        shares = backend.fund_shares(stakers)
        state = StepState(
            time=backend.clock(),
            prices=backend.prices(),
            equity=backend.equities(),
            fund_assets=assets * scale,
            socialized_total=sum(liq.socialized for liq in liquidations),
            staked_value={n: shares[n] * assets * scale // supply if supply else 0 for n in stakers},
        )
        states.append(state)
        series.x.append(x)
        series.time.append(state.time)
        series.labels.append(label)
        for market, price in state.prices.items():
            series.prices[market].append(price / WAD)
        for name, equity in state.equity.items():
            series.equity[name].append(_tokens(equity, WAD))
        for name, value in state.staked_value.items():
            series.staked_value[name].append(value / WAD)
        series.fund_assets.append(state.fund_assets / WAD)
        series.socialized.append(state.socialized_total / WAD)

    failures.extend(invariants("setup"))
    record(-1, "start")
    records: list[StepRecord] = []
    total = len(scenario.steps)
    for step in scenario.steps:
        try:
            outcome = backend.execute(step)
        except Exception as err:
            log.exception("step %s crashed", step.index)
            outcome = Outcome(reverted=True, error=f"{type(err).__name__}: {err}", crashed=True)
        ok, why = _expected(step, outcome)
        problems = [] if ok else [f"steps[{step.index}] ({step.action}): {why}"]
        problems.extend(invariants(f"after steps[{step.index}] ({step.action})"))
        for liq in outcome.liquidations:
            liquidations.append(
                LiquidationRecord(
                    step=step.index,
                    account=backend.name_of(liq["account"]),
                    liquidator=backend.name_of(liq["liquidator"]),
                    **{k: int(liq[k]) for k in LIQUIDATION_FIELDS},
                    market=liq.get("market"),
                    size=liq.get("size"),
                )
            )
        trading_fees += outcome.trading_fees
        if outcome.flow and not outcome.reverted:
            flows[step.account] = flows.get(step.account, 0) + outcome.flow  # type: ignore[attr-defined]
        rec = StepRecord(
            index=step.index,
            action=step.action,
            description=describe(step, scenario),
            ok=not problems,
            reverted=outcome.reverted,
            gas_used=outcome.gas_used,
            error=outcome.error,
            expect_revert=step.expect_revert,
            note=outcome.note
            or (
                f"received {format_units(outcome.flow, 10**scenario.collateral_decimals)}"
                if outcome.flow > 0 and not outcome.reverted
                else ""
            ),
        )
        records.append(rec)
        failures.extend(problems)
        record(step.index, step.action)
        if progress is not None:
            progress(rec, total, problems)

    vault_assets, liabilities, dust = backend.solvency()
    fund_assets, fund_supply = backend.fund()
    totals = {
        "bad_debt": sum(liq.deficit for liq in liquidations),
        "insurance_covered": sum(liq.covered for liq in liquidations),
        "socialized": sum(liq.socialized for liq in liquidations),
        "keeper_rewards": sum(liq.keeper_reward for liq in liquidations),
        "insurance_fees": sum(liq.insurance_fee for liq in liquidations),
        "trading_fees": trading_fees,
    }
    return RunResult(
        scenario=scenario,
        backend=backend.name,
        chain_id=backend.chain_id,
        steps=records,
        accounts={name: backend.account(name) for name in scenario.account_names()},
        insurance_assets=fund_assets * scale,
        insurance_supply=fund_supply,
        liquidations=liquidations,
        totals=totals,
        solvency=(vault_assets, liabilities, dust),
        failures=failures,
        series=series,
        flows={name: flows.get(name, 0) for name in scenario.account_names()},
        elapsed=time.monotonic() - started,
        states=states,
    )
