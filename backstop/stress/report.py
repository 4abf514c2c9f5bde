"""Stress reports: the JSON document of docs/scenario-format.md, the PNG chart and the summary table.

The JSON holds every money amount, size and price as the decimal string of its exact WAD integer
(``"1500000000000000000000"`` is 1500); ``index``, ``step``, ``chain_id`` and ``gas_used`` are
plain numbers. Compatible extensions: top-level ``ok`` and ``failures``; per step ``description``,
``error`` (the custom error of a revert) and ``expect_revert``; per account ``fund_shares``.
``insurance.total_supply`` and ``fund_shares`` are raw share units of the fund's ERC-20 (it has
``collateral_decimals + 6`` decimals), not WAD. ``equity`` / ``free_collateral`` are ``null`` when a
price they need is stale.

Floats appear only in the chart and the table, for display.
"""

from __future__ import annotations

import json
import math
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from backstop.stress.results import AccountView, RunResult
from backstop.units import WAD

#: Fields a model report cannot share with a chain report.
CHAIN_ONLY_FIELDS = ("chain_id", "gas_used")


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


def to_json(result: RunResult) -> dict[str, Any]:
    """The report document (a JSON-ready dict) of a run."""
    vault_assets, liabilities, dust = result.solvency
    return {
        "scenario": result.scenario.name,
        "chain_id": result.chain_id,
        "ok": result.ok,
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
            }
            for s in result.steps
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
    """A copy of a report without ``chain_id`` and the steps' ``gas_used`` (for model comparisons)."""
    out = {k: v for k, v in report.items() if k != "chain_id"}
    out["steps"] = [{k: v for k, v in step.items() if k != "gas_used"} for step in report["steps"]]
    return out


def write_json(result: RunResult, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(to_json(result), indent=2) + "\n")
    return path


# --- chart --------------------------------------------------------------------------------------------------


def write_chart(result: RunResult, path: str | Path) -> Path:
    """A PNG of, against the step index: each market's oracle price, each account's equity, the
    insurance fund's assets and the cumulative socialized loss. Liquidation steps are marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    series = result.series
    markets = list(series.prices)
    panels = len(markets) + 2
    fig, axes = plt.subplots(
        panels,
        1,
        sharex=True,
        figsize=(12, 2.3 * len(markets) + 7),
        height_ratios=[1] * len(markets) + [2, 1.4],
    )
    x = series.x
    liquidation_steps = sorted({liq.step for liq in result.liquidations})

    for ax, market in zip(axes, markets, strict=False):
        ax.plot(x, series.prices[market], marker="o", markersize=3, color="tab:blue", drawstyle="steps-post")
        ax.set_ylabel(f"{market} price")
        ax.grid(alpha=0.3)

    ax = axes[len(markets)]
    for name, values in series.equity.items():
        if any(not math.isnan(v) and v != 0 for v in values):
            ax.plot(x, values, marker="o", markersize=3, label=name)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("equity (tokens)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)

    ax = axes[-1]
    ax.plot(x, series.fund_assets, marker="o", markersize=3, color="tab:green", label="insurance fund assets")
    ax.plot(
        x, series.socialized, marker="o", markersize=3, color="tab:red", label="cumulative socialized loss"
    )
    ax.set_ylabel("tokens")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)

    for ax in axes:
        for step in liquidation_steps:
            ax.axvline(step, color="tab:red", linestyle=":", linewidth=1)
    labels = ["start" if i < 0 else f"{i} {label}" for i, label in zip(x, series.labels, strict=True)]
    axes[-1].set_xticks(x)
    axes[-1].set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    axes[-1].set_xlabel("step (dotted red: liquidations)")
    title = f"{result.scenario.name}: {'passed' if result.ok else 'FAILED'}"
    if result.scenario.description:
        title += f"\n{result.scenario.description.splitlines()[0]}"
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
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
        worth = view.equity if view.equity is not None else view.margin
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
