"""The exact engine (backstop.risk.exact): a path played on the reference model with the real
keeper policy, reduced to its outcome; the statistics (backstop.risk.stats)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from backstop.config import market_from_mapping
from backstop.risk.exact import run_path, scenario_of
from backstop.risk.stats import expected_shortfall, summary
from backstop.risk.types import Fund, Keeper, Lab, Pair
from backstop.units import WAD

TOKEN = 10**6
ETH = market_from_mapping(
    "ETH",
    {
        "feed": "mock",
        "price": Decimal(2000),
        "initial_margin": Decimal("0.1"),
        "maintenance_margin": Decimal("0.05"),
        "keeper_reward": Decimal("0.01"),
        "insurance_fee": Decimal("0.01"),
    },
)
P0 = 2000 * WAD


def lab(latency: int = 0, fund: int = 500, steps: int = 4) -> Lab:
    pairs = tuple(Pair(0, 5 * WAD, 1100 * TOKEN, 1100 * TOKEN) for _ in range(5))
    return Lab("t", 6, (ETH,), pairs, Fund(fund * TOKEN), Keeper(100_000 * TOKEN, latency), steps, 300)


def path(*prices: int) -> tuple[tuple[int, ...], ...]:
    return tuple((p * WAD,) for p in (2000, *prices))


def test_a_drop_under_maintenance_is_liquidated_without_bad_debt():
    r = run_path(lab(), path(2000, 1800, 1800, 1800))
    assert r.trades_failed == 0 and r.liquidations == 5 and r.partial_steps == 0
    assert (r.bad_debt, r.covered, r.socialized) == (0, 0, 0)
    # E = 1,100 − 5 × 200 = 100 < MMR 450: reward 1 % of 9,000 = 90; fee min(90, E − reward) = 10.
    assert r.final_margins["keeper"] == (100_000 + 5 * 90) * WAD
    assert r.fund_assets == (500 * TOKEN, 500 * TOKEN, 550 * TOKEN, 550 * TOKEN, 550 * TOKEN)
    assert r.open_interest == 5 * 10_000 * WAD
    assert not r.fund_exhausted and r.max_haircut_ratio == 0


def test_a_gap_past_bankruptcy_uses_the_fund_then_socializes_to_the_shorts():
    r = run_path(lab(), path(2000, 1500, 1500, 1500))
    # E = 1,100 − 2,500 = −1,400; the reward (75) is always paid: deficit 1,475 per account.
    assert r.liquidations == 5
    assert r.bad_debt == 5 * 1_475 * WAD
    assert r.covered == 500 * WAD and r.socialized == r.bad_debt - r.covered
    assert r.fund_exhausted and r.fund_assets[-1] == 0
    assert r.haircut_per_oi == pytest.approx((5 * 1_475 - 500) / 50_000)
    # Each short's share of 6,875, against its equity before the haircut: 1,100 + 25 × 500 / 5.
    assert r.max_haircut_ratio == pytest.approx(1_375 / (1_100 + 2_500), rel=1e-9)


def test_latency_delays_the_keeper_to_a_worse_price():
    fast = run_path(lab(latency=0), path(1800, 1500, 1500, 1500))
    slow = run_path(lab(latency=1), path(1800, 1500, 1500, 1500))
    assert fast.bad_debt == 0  # taken at 1,800, step 1
    assert slow.bad_debt == 5 * 1_475 * WAD  # first pass at step 2, at 1,500
    keepers = [
        s for s in scenario_of(lab(latency=1), path(1800, 1500, 1500, 1500)).steps if s.action == "keeper"
    ]
    assert len(keepers) == 2  # steps 2 and 4


def test_a_path_must_fit_the_lab():
    with pytest.raises(ValueError, match="5 expected"):
        scenario_of(lab(), path(2000))
    with pytest.raises(ValueError, match="not at the markets' prices"):
        scenario_of(lab(), ((1 * WAD,),) * 5)


def test_expected_shortfall_and_percentiles():
    x = np.arange(1, 101, dtype=float)  # 1..100
    assert expected_shortfall(x, 0.95) == pytest.approx(np.mean(x[95:]))  # the worst 5: 96..100
    assert expected_shortfall(x, 0.99) == 100.0
    assert expected_shortfall([7.0] * 10, 0.99) == 7.0
    s = summary(x)
    assert s["p50"] == pytest.approx(50.5) and s["p99"] == pytest.approx(99.01)
    assert s["es95"] >= s["p95"] and s["es99"] >= s["p99"] and s["max"] == 100.0
    with pytest.raises(ValueError):
        expected_shortfall([], 0.9)


def test_the_shock_curve_is_zero_until_the_maintenance_margin_then_grows():
    from backstop.risk.shock import shock_curve, shocked

    assert shocked(2000 * WAD, -25) == 1500 * WAD and shocked(3 * 10**10, -50) == 10**10
    points = {p.move_pct: p for p in shock_curve(lab(), (-25, -10, 0, 10, 25))}
    # ±10 %: E = 1,100 − 1,000 = 100 under MMR (450 at 1,800, 550 at 2,200): liquidated. The reward
    # (1 %) is 90 at 1,800, no bad debt; 110 at 2,200, 10 more than the equity: bad debt 10 each.
    assert [points[m].liquidations for m in (-10, 0, 10, 25)] == [5, 0, 5, 5]
    assert points[0].bad_debt == points[-10].bad_debt == 0
    assert points[10].bad_debt == points[10].covered == 5 * 10 * WAD
    assert points[-25].bad_debt == 5 * 1_475 * WAD  # the same gap as above, in one move
    # +25 %: the shorts, E = −1,400, and a reward of 1 % of 12,500.
    assert points[25].bad_debt == 5 * 1_525 * WAD
    assert points[-25].covered == 500 * WAD


def test_socialization_under_a_per_event_cap_is_not_an_exhausted_fund():
    from dataclasses import replace

    capped = replace(lab(fund=50_000), fund=Fund(50_000 * TOKEN, per_event_cap=100 * TOKEN))
    r = run_path(capped, path(2000, 1500, 1500, 1500))
    assert r.covered == 5 * 100 * WAD and r.socialized == r.bad_debt - r.covered > 0
    assert not r.fund_exhausted and r.fund_assets[-1] == (50_000 - 500) * TOKEN
