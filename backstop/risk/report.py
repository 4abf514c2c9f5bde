"""The risk lab's report (docs/risk-lab.md §"Report"): ``DIR/<name>.json`` and its charts.

Money that is a fact of the run (the fund, the open interest) is a WAD string, like the stress
report; statistics over paths are floats in quote units (or plain ratios and counts).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from backstop.risk.exact import PathResult
from backstop.risk.stats import ES_LEVELS, PERCENTILES, summary
from backstop.risk.types import Lab
from backstop.units import WAD

FORMAT = "backstop-risk-report/1"

#: The distributions reported: name → the value of one path (quote units, a ratio or a count).
METRICS = {
    "bad_debt": lambda r: r.bad_debt / WAD,
    "fund_cover": lambda r: r.covered / WAD,
    "socialized": lambda r: r.socialized / WAD,
    "haircut_per_oi": lambda r: r.haircut_per_oi,
    "max_account_haircut": lambda r: r.max_haircut_ratio,
    "liquidations": lambda r: float(r.liquidations),
}


def report(
    lab: Lab,
    results: Sequence[PathResult],
    *,
    seed: int,
    engine: str,
    config_path: str,
    seconds: float,
    where: str,
) -> dict[str, Any]:
    """The JSON report of a run's ``results`` (see docs/risk-lab.md for every field)."""
    n = len(results)
    scale = 10**lab.collateral_decimals
    fund = np.array([r.fund_assets for r in results], dtype=float) / scale
    bands = {f"p{p:g}": np.percentile(fund, p, axis=0).round(6).tolist() for p in (1, 5, 25, 50, 75, 95, 99)}
    return {
        "format": FORMAT,
        "name": lab.name,
        "config": config_path,
        "engine": engine,
        "paths": n,
        "seed": seed,
        "steps": lab.steps,
        "step_seconds": lab.step_seconds,
        "accounts": lab.accounts,
        "markets": [m.name for m in lab.markets],
        "fund": {
            "assets": str(lab.fund.assets * (WAD // scale)),
            "floor": str(lab.fund.floor * (WAD // scale)),
            "per_event_cap": str(lab.fund.per_event_cap * (WAD // scale)),
        },
        "keeper": {"capital": str(lab.keeper.capital * (WAD // scale)), "latency_steps": lab.keeper.latency},
        "open_interest": str(results[0].open_interest) if results else "0",
        "percentiles": [f"p{p:g}" for p in PERCENTILES],
        "es_levels": list(ES_LEVELS),
        "metrics": {name: summary([f(r) for r in results]) for name, f in METRICS.items()},
        "probabilities": {
            "bad_debt": sum(r.bad_debt > 0 for r in results) / n,
            "socialization": sum(r.socialized > 0 for r in results) / n,
            "fund_exhausted": sum(r.fund_exhausted for r in results) / n,
        },
        "fund_assets": bands,
        "trades_failed": sum(r.trades_failed for r in results),
        "elapsed_s": round(seconds, 3),
        "paths_per_s": round(n / seconds, 3) if seconds > 0 else None,
        "where": where,
    }


def write(
    out_dir: Path, name: str, body: dict[str, Any], results: Sequence[PathResult], lab: Lab
) -> list[Path]:
    """Writes ``<name>.json``, ``<name>-bad-debt.png`` and ``<name>-fund.png`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{name}.json"
    json_path.write_text(json.dumps(body, indent=1) + "\n")
    return [
        json_path,
        bad_debt_chart(out_dir / f"{name}-bad-debt.png", body, results),
        fund_chart(out_dir / f"{name}-fund.png", body, lab),
    ]


def bad_debt_chart(path: Path, body: dict[str, Any], results: Sequence[PathResult]) -> Path:
    """Histogram and CDF of bad debt per path, with the VaR (p95, p99) and ES lines."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.array([r.bad_debt / WAD for r in results])
    m = body["metrics"]["bad_debt"]
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(12, 4.5))
    hist.hist(x, bins=min(60, max(10, len(x) // 20)), color="#4c72b0", alpha=0.85)
    hist.set_xlabel("bad debt per path (quote units)")
    for ax in (hist, cdf):
        ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    hist.set_ylabel("paths")
    xs = np.sort(x)
    cdf.step(xs, np.arange(1, len(xs) + 1) / len(xs), where="post", color="#4c72b0")
    cdf.set_xlabel("bad debt per path (quote units)")
    cdf.set_ylabel("share of paths ≤ x")
    for ax in (hist, cdf):
        for key, style, color in (
            ("p95", "--", "#dd8452"),
            ("p99", "--", "#c44e52"),
            ("es99", ":", "#8172b3"),
        ):
            ax.axvline(m[key], linestyle=style, color=color, label=f"{key.upper()} {m[key]:,.0f}")
        ax.grid(alpha=0.3)
    hist.legend()
    fig.suptitle(
        f"{body['name']}: bad debt over {body['paths']:,} paths "
        f"(P(bad debt) {body['probabilities']['bad_debt']:.1%}, P(socialization) {body['probabilities']['socialization']:.1%})"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fund_chart(path: Path, body: dict[str, Any], lab: Lab) -> Path:
    """A fan chart of the fund's assets over time (p1–p99, p5–p95, p25–p75 bands and the median)."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bands = body["fund_assets"]
    hours = np.arange(len(bands["p50"])) * lab.step_seconds / 3600
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for lo, hi, alpha in (("p1", "p99", 0.15), ("p5", "p95", 0.25), ("p25", "p75", 0.4)):
        ax.fill_between(hours, bands[lo], bands[hi], color="#4c72b0", alpha=alpha, label=f"{lo}–{hi}")
    ax.plot(hours, bands["p50"], color="#1f3b73", label="median")
    ax.set_xlabel("hours")
    ax.set_ylabel("insurance fund assets (tokens)")
    ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.set_title(f"{body['name']}: insurance fund over {body['paths']:,} paths")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
