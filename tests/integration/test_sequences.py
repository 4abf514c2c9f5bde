"""Scripted multi-account sequences: the contracts equal the reference model after every step.

A seeded generator mixes trades of odd sizes at prices inside and outside the band, price moves,
deposits and withdrawals (valid and not) over four accounts and two markets. Every action goes
through the lockstep harness, so rejected actions must be rejected by both with the same error,
and after each step every account's margin, positions, equity, requirements, pending loss and free
collateral, the open interest, the token balances and the solvency identity are compared.
"""

from __future__ import annotations

import random

import pytest

from backstop.model import ModelRevert
from backstop.units import WAD
from tests.system import MarketSpec, ratio

STEPS = 40


def prices_on_feed_grid(rng: random.Random, around: int) -> int:
    """A price within ±8 % of ``around`` with 8 feed decimals (what a Chainlink feed can report)."""
    move = rng.randint(-800, 800)
    return around * (10_000 + move) // 10_000 // 10**10 * 10**10


@pytest.mark.parametrize("seed", [1, 2])
def test_random_sequence_matches_the_model_after_every_step(system, alice, bob, carol, dave, seed):
    rng = random.Random(seed)
    accounts = [alice, bob, carol, dave]
    eth = system.add_market(
        2000 * WAD, MarketSpec(maker_fee_ratio=ratio("0.01"), taker_fee_ratio=ratio("0.03"))
    )
    btc = system.add_market(30_000 * WAD, MarketSpec(im_ratio=ratio(20), mm_ratio=ratio(10)))
    markets = {eth: 2000 * WAD, btc: 30_000 * WAD}
    for who in accounts:
        system.deposit(who, rng.randint(500, 5_000) * 10**6 + rng.randint(0, 999_999))

    outcomes = {"ok": 0, "rejected": 0}
    for _ in range(STEPS):
        kind = rng.choices(["trade", "price", "deposit", "withdraw"], weights=[6, 2, 1, 2])[0]
        if kind == "trade":
            maker, taker = rng.sample(accounts, 2)
            market = rng.choice(list(markets))
            oracle = markets[market]
            size = rng.randint(1, 3 * WAD) // (1 if market == eth else 10)
            # Mostly inside the 5 % band, sometimes just outside it.
            price = oracle * (10_000 + rng.randint(-560, 560)) // 10_000
            maker_buys = rng.random() < 0.5
            result = system.match(
                system.order(maker, market, maker_buys, size, price),
                system.order(taker, market, not maker_buys, size, price),
                size,
            )
        elif kind == "price":
            market = rng.choice(list(markets))
            markets[market] = prices_on_feed_grid(rng, markets[market])
            system.set_price(market, markets[market])
            result = None
        elif kind == "deposit":
            result = system.deposit(rng.choice(accounts), rng.randint(1, 2_000) * 10**6)
        else:
            who = rng.choice(accounts)
            free = max(system.model.free_collateral(who.address), 0) // 10**12
            # Sometimes everything that is free, sometimes one unit more than that.
            result = system.withdraw(who, max(free + rng.choice([0, 1]), 1))
        outcomes["rejected" if isinstance(result, ModelRevert) else "ok"] += 1
        system.check(*accounts)

    # The sequence must exercise both paths, or it proves little.
    assert outcomes["ok"] >= STEPS // 3
    assert outcomes["rejected"] >= 1
    for market in markets:
        assert sum(system.engine.positionOf(a, market)[0] for a in accounts) == 0
