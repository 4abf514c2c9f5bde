"""Stress reports: the JSON document of docs/scenario-format.md, the PNG chart and the summary table.

The JSON holds every money amount, size and price as the decimal string of its exact WAD integer
(``"1500000000000000000000"`` is 1500); ``index``, ``step``, ``chain_id``, ``gas_used`` and the
steps' ``time`` are plain numbers. Compatible extensions: top-level ``ok`` and ``failures``; per step ``description``,
``error`` (the custom error of a revert) and ``expect_revert``; per account ``fund_shares``.
``insurance.total_supply`` and ``fund_shares`` are raw share units of the fund's ERC-20 (it has
``collateral_decimals + 6`` decimals), not WAD. ``equity`` / ``free_collateral`` are ``null`` when a
price they need is stale.

Per-step time series (an extension): every ``steps`` entry carries the state after it -- ``time``
(seconds since the start on the backend's clock), ``prices``, ``equity`` (null where unreadable),
``fund_assets``, ``socialized_total`` (cumulative) and ``staked_value`` (each staker's fund shares
at the fund's value) -- and top-level ``start`` the same state after setup.

Floats appear only in the chart and the table, for display.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from backstop.stress.chart import write_chart
from backstop.stress.results import AccountView, RunResult, StepState
from backstop.units import WAD

#: Fields a model report cannot share with a chain report (``time``: the chain's clock gains a
#: second or so per block, the model's moves only with ``advance``).
CHAIN_ONLY_FIELDS = ("chain_id", "gas_used", "time")

__all__ = [
    "CHAIN_ONLY_FIELDS",
    "summary_table",
    "to_json",
    "without_chain_fields",
    "write_chart",
    "write_json",
]


def _s(value: int | None) -> str | None:
    return None if value is None else str(int(value))


def _account(view: AccountView) -> dict[str, Any]:
    return {
        "margin": _s(view.margin),
        "equity": _s(view.equity),
        "free_collateral": _s(view.free_collateral),
        "pending_loss": _s(view.pending_loss),
        "positions": {
            market: {"size": _s(size), "open_notional": _s(notional)}
            for market, (size, notional) in view.positions.items()
            if size
        },
        "fund_shares": _s(view.fund_shares),
    }


def state_json(state: StepState) -> dict[str, Any]:
    """The per-step time-series fields of one state (WAD strings, ``time`` in seconds)."""
    return {
        "time": state.time,
        "prices": {market: _s(price) for market, price in state.prices.items()},
        "equity": {name: _s(equity) for name, equity in state.equity.items()},
        "fund_assets": _s(state.fund_assets),
        "socialized_total": _s(state.socialized_total),
        "staked_value": {name: _s(value) for name, value in state.staked_value.items()},
    }


def to_json(result: RunResult) -> dict[str, Any]:
    """The report document (a JSON-ready dict) of a run."""
    vault_assets, liabilities, dust = result.solvency
    after = result.states[1:] if result.states else [None] * len(result.steps)
    return {
        "scenario": result.scenario.name,
        "chain_id": result.chain_id,
        "ok": result.ok,
        "start": state_json(result.states[0]) if result.states else None,
        "steps": [
            {
                "index": s.index,
                "action": s.action,
                "ok": s.ok,
                "reverted": s.reverted,
                "gas_used": s.gas_used,
                "error": s.error,
                "expect_revert": s.expect_revert,
                "description": s.description,
                **(state_json(state) if state is not None else {}),
            }
            for s, state in zip(result.steps, after, strict=True)
        ],
        "accounts": {name: _account(view) for name, view in result.accounts.items()},
        "insurance": {
            "total_assets": _s(result.insurance_assets),
            "total_supply": _s(result.insurance_supply),
        },
        "liquidations": [
            {
                "step": liq.step,
                "account": liq.account,
                "liquidator": liq.liquidator,
                "notional": _s(liq.notional),
                "keeper_reward": _s(liq.keeper_reward),
                "insurance_fee": _s(liq.insurance_fee),
                "deficit": _s(liq.deficit),
                "covered": _s(liq.covered),
                "socialized": _s(liq.socialized),
                **({"market": liq.market, "size": _s(liq.size)} if liq.market is not None else {}),
            }
            for liq in result.liquidations
        ],
        "totals": {key: _s(value) for key, value in result.totals.items()},
        "solvency": {"vault_assets": _s(vault_assets), "liabilities": _s(liabilities), "dust": _s(dust)},
        "failures": list(result.failures),
    }


def without_chain_fields(report: dict[str, Any]) -> dict[str, Any]:
    """A copy of a report without ``chain_id`` and the steps' ``gas_used`` and ``time`` (for model
    comparisons)."""
    out = {k: v for k, v in report.items() if k not in CHAIN_ONLY_FIELDS}
    out["steps"] = [{k: v for k, v in step.items() if k not in CHAIN_ONLY_FIELDS} for step in report["steps"]]
    return out


def write_json(result: RunResult, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(to_json(result), indent=2) + "\n")
    return path


# --- summary table ------------------------------------------------------------------------------------------


def fmt_amount(value: int | None, scale: int = WAD, places: int = 2) -> str:
    """``value / scale`` rounded for display, with thousands separators (``-`` for None)."""
    if value is None:
        return "n/a"
    d = (Decimal(value) / Decimal(scale)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return f"{d:,}"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    ]
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return lines


def summary_table(result: RunResult) -> str:
    """A short human summary of a run (amounts in tokens, rounded to cents)."""
    scenario = result.scenario
    share_unit = 10**scenario.share_decimals
    passed = sum(1 for s in result.steps if s.ok)
    reverted = sum(1 for s in result.steps if s.reverted)
    gas = sum(s.gas_used or 0 for s in result.steps)
    chain = f"chain {result.chain_id}" if result.chain_id is not None else "reference model"
    lines = [
        f"{scenario.name}: {'PASSED' if result.ok else 'FAILED'} - {len(result.steps)} steps, {passed} ok, "
        f"{reverted} reverted, {len(result.liquidations)} liquidations, {chain}, gas {gas:,}, "
        f"{result.elapsed:.1f} s",
        "",
    ]
    rows = []
    scale = scenario.scale
    for name, view in result.accounts.items():
        share_value = (
            view.fund_shares * result.insurance_assets // result.insurance_supply
            if result.insurance_supply
            else 0
        )
        # a stale price: the last readable valuation, not the bare margin
        worth = view.equity if view.equity is not None else result.last_readable_equity(name)
        if worth is None:
            worth = view.margin
        net = result.flows.get(name, 0) * scale + worth + share_value
        positions = ", ".join(
            f"{market} {fmt_amount(size, places=4)} @ {fmt_amount(abs(notional) * WAD // abs(size))}"
            for market, (size, notional) in view.positions.items()
        )
        rows.append(
            [
                name,
                fmt_amount(view.margin),
                fmt_amount(view.equity),
                fmt_amount(view.free_collateral),
                fmt_amount(view.pending_loss),
                fmt_amount(view.fund_shares, share_unit),
                fmt_amount(net),
                positions or "-",
            ]
        )
    lines += _table(
        ["account", "margin", "equity", "free", "pending loss", "fund shares", "net P&L", "positions"], rows
    )
    if result.liquidations:
        lines.append("")
        rows = [
            [
                str(liq.step),
                liq.account if liq.market is None else f"{liq.account} ({liq.market} {fmt_amount(liq.size)})",
                liq.liquidator,
                fmt_amount(liq.notional),
                fmt_amount(liq.keeper_reward),
                fmt_amount(liq.insurance_fee),
                fmt_amount(liq.deficit),
                fmt_amount(liq.covered),
                fmt_amount(liq.socialized),
            ]
            for liq in result.liquidations
        ]
        lines += _table(
            ["step", "account", "by", "notional", "reward", "ins. fee", "deficit", "covered", "socialized"],
            rows,
        )
    t = result.totals
    vault_assets, liabilities, dust = result.solvency
    lines += [
        "",
        f"totals: bad debt {fmt_amount(t['bad_debt'])}, covered by the fund {fmt_amount(t['insurance_covered'])}, "
        f"socialized {fmt_amount(t['socialized'])}, keeper rewards {fmt_amount(t['keeper_rewards'])}, "
        f"insurance fees {fmt_amount(t['insurance_fees'])}, trading fees {fmt_amount(t['trading_fees'])}",
        f"insurance fund: assets {fmt_amount(result.insurance_assets)}, "
        f"shares {fmt_amount(result.insurance_supply, share_unit)}",
        f"solvency: vault {fmt_amount(vault_assets)} = liabilities {fmt_amount(liabilities)} + dust {dust} wei",
    ]
    if result.failures:
        lines += ["", "failures:"] + [f"  - {f}" for f in result.failures]
    return "\n".join(lines)
