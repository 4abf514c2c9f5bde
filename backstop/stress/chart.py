"""The stress chart (PNG): prices, equities, the insurance fund, its stakers and the socialized
loss against chain time since the start (the model's time on the model backend). Every distinct
time is a tick labelled with the time since the start (unless too close to the previous one);
the gaps between them are drawn log-compressed (``log1p`` of the gap in tens of seconds), since a
crash lasts minutes and a fund's cooldown a week.

Panels, top to bottom: each market's oracle price; each account's equity on a symlog axis (linear
within ±``EQUITY_LINTHRESH`` tokens, logarithmic beyond, so a 2,000-token account is not
flattened under a 100,000-token one); the fund's assets, each staker's fund share value and the
cumulative socialized loss. Dotted red lines mark liquidations, labelled with the accounts
liquidated (and the steps, several at one instant in one label); grey crosses on the price panels
mark reverted steps, with their count when several happen at one instant (red: a step that failed
its expectation). A scenario in which no time passes is drawn against the step index instead.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from backstop.stress.results import RunResult

#: Tokens within which the equity axis is linear.
EQUITY_LINTHRESH = 100.0
HOUR, DAY = 3600, 86400
#: Seconds: the gap between two times is drawn ``log1p(gap / GAP_UNIT)`` wide.
GAP_UNIT = 10


def duration(seconds: int) -> str:
    """``0``, ``45 s``, ``1 h 1 min``, ``7 d 1 h``: a tick label (two largest units)."""
    if seconds <= 0:
        return "0"
    parts = []
    for unit, name in ((DAY, "d"), (HOUR, "h"), (60, "min"), (1, "s")):
        if seconds >= unit:
            parts.append(f"{seconds // unit} {name}")
            seconds %= unit
    return " ".join(parts[:2])


def time_positions(times: list[int]) -> dict[int, float]:
    """Chain time -> x position: each gap between two distinct times is drawn
    ``log1p(gap / GAP_UNIT)`` wide, so a one-minute crash and a seven-day cooldown both stay
    readable while the second or so a chain adds per block barely shows. Monotone: a later time
    is always further right."""
    positions, x, previous = {}, 0.0, None
    for t in sorted(set(times)):
        if previous is not None:
            x += math.log1p((t - previous) / GAP_UNIT)
        positions[t] = x
        previous = t
    return positions


def _ticks(positions: dict[int, float], fraction: float = 1 / 30) -> tuple[list[float], list[str]]:
    """One tick per distinct time, labelled with it, leaving out a tick closer than ``fraction``
    of the axis to the one before (the chain's per-block seconds would overprint)."""
    span = max(positions.values(), default=0.0)
    ticks: list[float] = []
    labels: list[str] = []
    for t, at in positions.items():
        if not ticks or at - ticks[-1] >= span * fraction:
            ticks.append(at)
            labels.append(duration(t))
    return ticks, labels


def chart_figure(result: RunResult) -> Any:
    """The chart as a matplotlib ``Figure`` (Agg backend; the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = result.series
    markets = list(series.prices)
    fig, axes = plt.subplots(
        len(markets) + 2,
        1,
        sharex=True,
        figsize=(12, 2.3 * len(markets) + 7),
        height_ratios=[1] * len(markets) + [2.2, 1.4],
    )
    clock = "model" if result.backend == "model" else "chain"
    if max(series.time, default=0) > 0:
        positions = time_positions(series.time)
        x = [positions[t] for t in series.time]
        ticks, tick_labels = _ticks(positions)
        xlabel = f"{clock} time since the start (each gap drawn log-compressed)"
    else:
        x = [float(i) for i in series.x]
        ticks, tick_labels = x, ["start" if i < 0 else str(i) for i in series.x]
        xlabel = "step index (no time passes in this scenario)"
    at_step = {index: x[n] for n, index in enumerate(series.x)}  # step index -> x after it

    reverted = [s for s in result.steps if s.reverted or not s.ok]
    for ax, market in zip(axes, markets, strict=False):
        prices = series.prices[market]
        ax.plot(x, prices, marker="o", markersize=3, color="tab:blue", drawstyle="steps-post")
        after = {index: prices[n] for n, index in enumerate(series.x)}
        for ok, color, label in ((True, "grey", "reverted step"), (False, "red", "failed step")):
            marks = [s for s in reverted if s.ok is ok]
            if marks:
                ax.plot(
                    [at_step[s.index] for s in marks],
                    [after[s.index] for s in marks],
                    "x",
                    color=color,
                    markersize=8,
                    markeredgewidth=2,
                    label=label,
                )
            counts: dict[tuple[float, float], int] = {}
            for s in marks:
                key = (at_step[s.index], after[s.index])
                counts[key] = counts.get(key, 0) + 1
            for (at, y), n in counts.items():
                if n > 1:  # several at one instant: how many
                    ax.annotate(
                        f"×{n}", (at, y), xytext=(6, 4), textcoords="offset points", fontsize=8, color=color
                    )
        ax.set_ylabel(f"{market} price")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)

    ax = axes[len(markets)]
    for name, values in series.equity.items():
        if any(not math.isnan(v) and v != 0 for v in values):
            ax.plot(x, values, marker="o", markersize=3, label=name)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_yscale("symlog", linthresh=EQUITY_LINTHRESH)
    ax.set_ylabel(f"equity (tokens, symlog, linear within ±{EQUITY_LINTHRESH:g})")
    ax.grid(alpha=0.3)
    by_step: dict[int, list[str]] = {}
    for liq in result.liquidations:
        names = by_step.setdefault(liq.step, [])
        if liq.account not in names:
            names.append(liq.account)
    by_x: dict[float, list[str]] = {}  # liquidations at one instant share one label
    for step, names in sorted(by_step.items()):
        by_x.setdefault(at_step[step], []).append(f"{', '.join(names)} (steps[{step}])")
    middle = (min(x) + max(x)) / 2
    for row, (at, lines) in enumerate(by_x.items()):  # staggered: neighbours do not overlap
        ax.annotate(
            "liquidated " + "\n".join(lines),
            xy=(at, 1),
            xycoords=("data", "axes fraction"),
            xytext=(4 if at <= middle else -4, -4 - 28 * (row % 3)),
            textcoords="offset points",
            fontsize=8,
            color="tab:red",
            ha="left" if at <= middle else "right",
            va="top",
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "tab:red", "alpha": 0.8},
        )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)

    ax = axes[-1]
    ax.plot(x, series.fund_assets, marker="o", markersize=3, color="tab:green", label="insurance fund assets")
    for name, values in series.staked_value.items():
        ax.plot(x, values, linestyle="--", marker=".", label=f"{name}'s fund shares")
    ax.plot(
        x, series.socialized, marker="o", markersize=3, color="tab:red", label="cumulative socialized loss"
    )
    ax.set_ylabel("tokens")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)

    for ax in axes:
        for step in by_step:
            ax.axvline(at_step[step], color="tab:red", linestyle=":", linewidth=1)
    axes[-1].set_xticks(ticks)
    axes[-1].set_xticklabels(tick_labels, rotation=30, ha="right", fontsize=8)
    axes[-1].set_xlabel(xlabel + "; dotted red: liquidations")
    title = f"{result.scenario.name}: {'passed' if result.ok else 'FAILED'}"
    if result.scenario.description:
        title += f"\n{result.scenario.description.splitlines()[0]}"
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def write_chart(result: RunResult, path: str | Path) -> Path:
    """Writes the chart of ``result`` to ``path`` (PNG) and returns the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fig = chart_figure(result)
    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path
