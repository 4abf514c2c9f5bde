"""How a stress run shows itself: a step in one line, a progress line per step, exact decimals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backstop.scenario import (
    ALL,
    MAX,
    Advance,
    CancelUnstake,
    Deposit,
    KeeperPass,
    Liquidate,
    LiquidateMany,
    Price,
    RequestUnstake,
    Scenario,
    Settle,
    Stake,
    Step,
    Trade,
    Unstake,
    Withdraw,
)
from backstop.scenario.steps import FILL
from backstop.stress.results import StepRecord
from backstop.units import format_units


def format_wad(value: int) -> str:
    """A WAD integer as an exact decimal string (``1500000000000000000000`` → ``1500``)."""
    return format_units(value)


def _describe_trade(step: Trade, tokens: int, shares_unit: int) -> str:
    notes = ["buyer makes"] if step.maker == "buyer" else []
    if step.via == FILL:
        notes.append(f"{step.taker_account} fills")
    how = f" ({', '.join(notes)})" if notes else ""
    return f"trade {step.buyer}<-{step.seller} {step.market} {format_units(step.size)} @ {format_units(step.price)}{how}"


def _describe_amount(step: Deposit | Stake | Withdraw, tokens: int, shares_unit: int) -> str:
    amount = step.amount if step.amount == MAX else format_units(step.amount, tokens)  # type: ignore[arg-type]
    return f"{step.action} {step.account} {amount}"


def _describe_shares(step: RequestUnstake | Unstake, tokens: int, shares_unit: int) -> str:
    shares = step.shares if step.shares == ALL else format_units(step.shares, shares_unit)  # type: ignore[arg-type]
    return f"{step.action} {step.account} {shares} shares"


#: Step kind → its one-line rendering, given the token and share units.
_DESCRIBERS: dict[type[Step], Callable[[Any, int, int], str]] = {
    Trade: _describe_trade,
    Price: lambda step, _t, _s: "price " + " ".join(f"{m}={format_units(p)}" for m, p in step.prices.items()),
    Advance: lambda step, _t, _s: f"advance {step.seconds}s",
    Liquidate: lambda step, _t, _s: (
        f"liquidate {step.account} {step.market} {format_units(step.size)} by {step.by}"
        if step.partial
        else f"liquidate {step.account} by {step.by}"
    ),
    LiquidateMany: lambda step, _t, _s: f"liquidate_many [{', '.join(step.targets)}] by {step.by}",
    KeeperPass: lambda step, _t, _s: f"keeper by {step.by}",
    Settle: lambda step, _t, _s: f"settle {step.account}" + (f" by {step.by}" if step.by else ""),
    Deposit: _describe_amount,
    Stake: _describe_amount,
    Withdraw: _describe_amount,
    RequestUnstake: _describe_shares,
    Unstake: _describe_shares,
    CancelUnstake: lambda step, _t, _s: f"cancel_unstake {step.account}",
}


def describe(step: Step, scenario: Scenario) -> str:
    """A one-line rendering of a step, e.g. ``trade bob<-alice ETH 4 @ 2000``."""
    describer = _DESCRIBERS.get(type(step))
    text = (
        describer(step, 10**scenario.collateral_decimals, 10**scenario.share_decimals)
        if describer
        else step.action
    )
    if step.expects_revert:
        text += " (expect revert" + (
            f" {step.expect_revert})" if isinstance(step.expect_revert, str) else ")"
        )
    return text


def progress_line(record: StepRecord, total: int, problems: list[str]) -> str:
    """``steps[3] trade bob<-alice ETH 4 @ 2000 ok gas=187654``: the step numbered as in the
    scenario errors and the report's ``index`` (from 0); ``total`` is kept for callers."""
    if problems:
        status = "FAILED: " + "; ".join(p.split(": ", 1)[-1] for p in problems)
    elif record.reverted:
        status = f"reverted {record.error} as expected, ok"
    else:
        status = "ok"
    gas = f" gas={record.gas_used}" if record.gas_used else ""
    note = f" [{record.note}]" if record.note and not record.reverted else ""
    return f"steps[{record.index}] {record.description}{note} {status}{gas}"
