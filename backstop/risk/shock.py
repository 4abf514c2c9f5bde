"""The shock curve (docs/risk-lab.md §"Shock curve"): today's population, one instant oracle
move of every market by the same percentage, one keeper pass, on the exact engine — bad debt,
fund cover and socialized loss against the move, as on Drift's risk dashboard."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from backstop.risk.exact import run_path
from backstop.risk.types import Keeper, Lab

#: The moves of the curve, in percent.
DEFAULT_MOVES = tuple(range(-50, 51, 5))
#: Mock feeds have 8 decimals: a shocked price is floored to that grid (WAD).
PRICE_GRID = 10**10


@dataclass(frozen=True)
class ShockPoint:
    move_pct: int
    bad_debt: int  # WAD
    covered: int
    socialized: int
    liquidations: int


def shocked(price: int, move_pct: int) -> int:
    """``price × (1 + move_pct/100)`` floored to the feeds' grid, at least one grid step."""
    return max(price * (100 + move_pct) // 100 // PRICE_GRID * PRICE_GRID, PRICE_GRID)


def shock_curve(lab: Lab, moves: tuple[int, ...] = DEFAULT_MOVES) -> list[ShockPoint]:
    """One point per move (see the module docstring). The keeper passes right after the move."""
    one_step = replace(lab, steps=1, keeper=Keeper(lab.keeper.capital, 0))
    start = tuple(m.mock_price for m in lab.markets)
    points = []
    for move in moves:
        if move <= -100:
            raise ValueError(f"a move of {move} % leaves no price")
        r = run_path(one_step, (start, tuple(shocked(p, move) for p in start)))
        points.append(ShockPoint(move, r.bad_debt, r.covered, r.socialized, r.liquidations))
    return points


def shock_chart(path: Path, name: str, points: list[ShockPoint]) -> Path:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from backstop.units import WAD

    x = [p.move_pct for p in points]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(x, [p.bad_debt / WAD for p in points], marker="o", label="bad debt", color="#c44e52")
    ax.plot(x, [p.covered / WAD for p in points], marker="s", label="covered by the fund", color="#4c72b0")
    ax.plot(x, [p.socialized / WAD for p in points], marker="^", label="socialized", color="#8172b3")
    ax.set_xlabel("instant oracle move of every market (%)")
    ax.set_ylabel("quote units")
    ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.set_title(f"{name}: shock curve, today's population, one keeper pass")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
