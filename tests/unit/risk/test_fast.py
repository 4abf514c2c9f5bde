"""The fast engine (backstop.risk.fast) against the exact one (backstop.risk.exact): on 200 random
small configurations (≤ 20 accounts, ≤ 50 steps, two markets) that between them include bankrupt
cascades, an exhausted fund, reward caps and partial liquidations by a keeper short of capital,
every path's bad debt, fund cover, socialized total, fund over time and each account's final
margin agree (within 1e-9 relative or 1 wei: the engines are in fact equal). A failing
configuration is printed whole, with its seed."""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pytest

from backstop.config import market_from_mapping
from backstop.risk.exact import PathResult, run_path
from backstop.risk.fast import run_fast, screen, set_up
from backstop.risk.paths import TICK, TICKS_PER_UNIT
from backstop.risk.population import SIZE_TICK, opening_margin
from backstop.risk.types import Fund, Keeper, Lab, Pair
from backstop.units import WAD, mul_wad_ceil, mul_wad_floor, mul_wad_up

CONFIGS = 200
PATHS = 2  # per configuration


@dataclass(frozen=True)
class Case:
    seed: int
    lab: Lab
    ticks: np.ndarray  # (PATHS, steps + 1, 2)


def _market(rng: random.Random, name: str):
    im = rng.choice(["0.05", "0.1", "0.2"])
    mm = Decimal(im) * Decimal(rng.choice(["0.3", "0.5", "0.8"]))
    reward = mm * Decimal(rng.choice(["0", "0.2", "0.5"]))
    fee = (mm - reward) * Decimal(rng.choice(["0", "0.5", "1"]))
    raw = {
        "feed": "mock",
        "price": Decimal(rng.choice([7, 150, 2000, 61_234])),
        "initial_margin": Decimal(im),
        "maintenance_margin": mm,
        "keeper_reward": reward,
        "insurance_fee": fee,
        "maker_fee": Decimal("0.0002"),
        "taker_fee": Decimal("0.0005"),
    }
    if rng.random() < 0.25:
        raw["keeper_reward_cap"] = Decimal(rng.choice([5, 50]))
    return market_from_mapping(name, raw)


def _pair(rng: random.Random, markets, m: int, scale: int) -> Pair:
    market = markets[m]
    notional = rng.uniform(500, 60_000)
    size = max(int(notional / (market.mock_price / WAD) * 10**6), 1) * SIZE_TICK
    floor = opening_margin(market, size, market.mock_price, scale)

    def margin() -> int:
        leverage = rng.uniform(1.2, WAD / market.im_ratio)
        return max(-(-int(notional / leverage * scale) // 1), floor)

    return Pair(m, size, margin(), margin())


def _ticks(rng: np.random.Generator, lab: Lab) -> np.ndarray:
    """Random walks with gaps of up to ±45 % (a cascade's trigger) on the 1e-8 grid."""
    start = np.array([m.mock_price // TICK for m in lab.markets], dtype=np.float64)
    steps = lab.steps
    moves = rng.normal(0, rng.choice([0.005, 0.02, 0.05]), size=(PATHS, steps, 2))
    gaps = rng.random((PATHS, steps, 2)) < 0.04
    moves += gaps * rng.uniform(-0.45, 0.3, size=(PATHS, steps, 2))
    out = np.empty((PATHS, steps + 1, 2))
    out[:, 0] = start
    out[:, 1:] = start * np.exp(np.cumsum(moves, axis=1))
    return np.maximum(np.rint(out), 1).astype(np.int64)


def case(seed: int) -> Case:
    rng = random.Random(seed)
    decimals = rng.choice([6, 18])
    scale = 10**decimals
    markets = (_market(rng, "ETH"), _market(rng, "BTC"))
    pairs = tuple(_pair(rng, markets, rng.randrange(2), scale) for _ in range(rng.randint(1, 10)))
    oi = sum(p.size * markets[p.market].mock_price // WAD for p in pairs) // WAD
    fund = Fund(
        assets=int(oi * rng.choice([0, 0.001, 0.02, 0.5]) * scale),
        floor=int(oi * rng.choice([0, 0, 0.005]) * scale),
        per_event_cap=int(oi * rng.choice([0, 0, 0.002, 0.05]) * scale),
    )
    # A keeper with a fraction of the OI takes big accounts in partial steps, or not at all.
    keeper = Keeper(max(int(oi * rng.choice([0.002, 0.02, 0.1, 10]) * scale), 1), rng.randint(0, 3))
    lab = Lab(f"fuzz-{seed}", decimals, markets, pairs, fund, keeper, rng.randint(5, 50), 300)
    return Case(seed, lab, _ticks(np.random.default_rng(seed), lab))


def _close(a: int, b: int) -> bool:
    return abs(a - b) <= max(1, 1e-9 * max(abs(a), abs(b)))


def _differences(exact: PathResult, fast: PathResult) -> list[str]:
    out = [
        f"{key}: exact {getattr(exact, key)} fast {getattr(fast, key)}"
        for key in ("bad_debt", "covered", "socialized")
        if not _close(getattr(exact, key), getattr(fast, key))
    ]
    if exact.final_margins.keys() != fast.final_margins.keys():
        out.append("the accounts differ")
    out += [
        f"final margin of {name}: exact {m} fast {fast.final_margins[name]}"
        for name, m in exact.final_margins.items()
        if not _close(m, fast.final_margins.get(name, 0))
    ]
    if len(exact.fund_assets) != len(fast.fund_assets) or not all(
        _close(a, b) for a, b in zip(exact.fund_assets, fast.fund_assets, strict=True)
    ):
        out.append(f"fund over time: exact {exact.fund_assets} fast {fast.fund_assets}")
    for key in ("liquidations", "partial_steps", "fund_exhausted", "trades_failed", "open_interest"):
        if getattr(exact, key) != getattr(fast, key):
            out.append(f"{key}: exact {getattr(exact, key)} fast {getattr(fast, key)}")
    if exact.max_haircut_ratio != pytest.approx(fast.max_haircut_ratio, rel=1e-9, abs=1e-12):
        out.append(f"max_haircut_ratio: exact {exact.max_haircut_ratio} fast {fast.max_haircut_ratio}")
    return out


def test_the_fast_engine_agrees_with_the_exact_one_on_random_small_configurations():
    seen = {"socialized": 0, "exhausted": 0, "partial": 0, "cascade": 0, "capped_cover": 0, "calm": 0}
    failures = []
    for seed in range(CONFIGS):
        c = case(seed)
        assert c.lab.accounts <= 20 and c.lab.steps <= 50 and len(c.lab.markets) == 2
        fast = run_fast(c.lab, c.ticks)
        for p in range(PATHS):
            path = tuple(tuple(int(t) * TICK for t in row) for row in c.ticks[p].tolist())
            exact = run_path(c.lab, path)
            problems = _differences(exact, fast[p])
            if problems:
                failures.append(
                    f"seed {seed} path {p}: {problems}\n  lab: {c.lab}\n  ticks: {c.ticks[p].tolist()}"
                )
            seen["socialized"] += exact.socialized > 0
            seen["exhausted"] += exact.fund_exhausted
            seen["partial"] += exact.partial_steps > 0
            seen["cascade"] += exact.bad_debt > 0 and exact.liquidations - exact.partial_steps >= 3
            seen["capped_cover"] += c.lab.fund.per_event_cap > 0 and exact.covered > 0
            seen["calm"] += exact.liquidations == 0
    assert not failures, "\n".join(failures[:5])
    # The sample covers what the test is for (counts over the 400 paths).
    assert min(seen.values()) >= 10, seen


def test_the_screen_flags_every_liquidatable_account_and_passes_clearly_healthy_ones():
    """Accounts built a few wei either side of ``E = MMR`` with the engine's own roundings (random
    sizes, prices, cost bases, ratios and pending losses): every one with ``E < MMR`` is flagged;
    accounts a millionth of their magnitudes above it are not."""
    rng = random.Random(7)
    rows = []
    for _ in range(5_000):
        size = rng.randint(1, 10**6) * SIZE_TICK * rng.choice([1, -1, 1000])
        price = rng.randint(1, 10**13) * TICK
        open_notional = mul_wad_ceil(size, rng.randint(1, 10**13) * TICK)
        mm = rng.randint(10**15, 3 * 10**17)
        d_index = rng.choice([0, rng.randint(0, 10**22)])
        notional = mul_wad_up(abs(size), price)
        mmr = mul_wad_up(notional, mm)
        pending = mul_wad_up(abs(size), d_index)
        upnl = mul_wad_floor(size, price) - open_notional
        base = mmr - upnl + pending
        healthy = (abs(base) + notional + abs(open_notional)) // 10**6 + 10**13
        for gap in (-3, -1, 0, 2, healthy):
            margin = base + gap  # exact E − MMR = gap
            rows.append((margin, size, open_notional, d_index, price, mm, gap))
    m, s, o, d, p, r, g = (np.array([float(row[i]) for row in rows]) for i in range(7))
    flags = screen(m, s / WAD, o, d, np.zeros_like(d), p, r / WAD)
    gaps = np.array([row[6] for row in rows], dtype=object)
    assert flags[gaps < 0].all()
    assert not flags[np.arange(len(rows)) % 5 == 4].any()


def test_a_crash_that_bankrupts_every_long_is_tallied_exactly():
    """Five ETH longs at 5x, price −30 % in one step: each loses 1,000 + its share of the fee, the
    fund of 500 covers the first deficits and the rest is socialized to the shorts."""
    terms = {
        "feed": "mock",
        "initial_margin": Decimal("0.1"),
        "maintenance_margin": Decimal("0.05"),
        "keeper_reward": Decimal("0.01"),
        "insurance_fee": Decimal("0.01"),
    }
    eth = market_from_mapping("ETH", {**terms, "price": Decimal(2000)})
    btc = market_from_mapping("BTC", {**terms, "price": Decimal(60000)})
    pairs = tuple(Pair(0, 5 * WAD, 2_010 * 10**6, 2_010 * 10**6) for _ in range(5))
    lab = Lab("crash", 6, (eth, btc), pairs, Fund(500 * 10**6), Keeper(10**12, 0), 3, 300)
    ticks = np.array([[[2000, 60000], [1400, 60000], [1400, 60000], [1400, 60000]]]) * TICKS_PER_UNIT
    [fast] = run_fast(lab, ticks)
    exact = run_path(lab, tuple(tuple(int(t) * TICK for t in row) for row in ticks[0].tolist()))
    assert fast == exact
    # E = 2,010 − fees (5 + 2: 0.05 % taker / 0.02 % maker of 10,000, whole tokens up) − 3,000; K = 70.
    assert fast.liquidations == 5 and fast.partial_steps == 0
    assert fast.covered == 500 * WAD and fast.bad_debt > 500 * WAD
    assert fast.socialized == fast.bad_debt - fast.covered
    assert fast.fund_assets[1] == 0
    assert fast.fund_exhausted


def test_paths_that_never_come_near_maintenance_never_touch_the_model():
    c = case(3)
    su = set_up(c.lab)
    flat = np.broadcast_to(c.ticks[:, :1, :], c.ticks.shape).copy()
    results = run_fast(c.lab, flat)
    for r in results:
        assert r.liquidations == 0 and r.bad_debt == 0
        assert r.final_margins == su.margins
        assert r.fund_assets == (su.fund,) * (c.lab.steps + 1)


def test_bad_inputs_are_refused():
    c = case(1)
    with pytest.raises(ValueError, match="expected"):
        run_fast(c.lab, c.ticks[:, :-1, :])
    shifted = c.ticks.copy()
    shifted[:, 0, 0] += 1
    with pytest.raises(ValueError, match="start at the markets' prices"):
        run_fast(c.lab, shifted)
