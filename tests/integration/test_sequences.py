"""Scripted multi-account sequences: the contracts equal the reference model after every step.

A seeded generator mixes trades of odd sizes at prices inside and outside the band, price moves,
deposits and withdrawals (valid and not) over four accounts and two markets. Every action goes
through the lockstep harness, so rejected actions must be rejected by both with the same error,
and after each step every account's margin, positions, equity, requirements, pending loss and free
collateral, the open interest, the token balances and the solvency identity are compared.

One seed of each runs here, on anvil through Ape; the same comparisons over many more random
sequences are the fuzz machine's (tests/fuzz, on pyrevm with the same bytecode, docs/fuzzing.md).
"""

from __future__ import annotations

import random

import pytest

from backstop.model import ModelRevert
from backstop.units import WAD
from tests.support.system import MarketSpec, ratio

STEPS = 20


def prices_on_feed_grid(rng: random.Random, around: int) -> int:
    """A price within ±8 % of ``around`` with 8 feed decimals (what a Chainlink feed can report)."""
    move = rng.randint(-800, 800)
    return around * (10_000 + move) // 10_000 // 10**10 * 10**10


@pytest.mark.parametrize("seed", [1])
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


@pytest.mark.parametrize("seed", [3])
def test_crash_sequences_with_liquidations_and_the_fund_match_the_model(system, accounts, seed):
    """Leveraged traders, a staked fund, crashes and spikes; a keeper liquidates whatever the model
    says is liquidatable, winners settle, stakers request exits. The identity holds after every
    step (the harness checks it) and everything equals the model."""
    rng = random.Random(seed)
    traders = [accounts[i] for i in (1, 2, 3, 4)]
    keeper, staker = accounts[5], accounts[6]
    eth = system.add_market(2000 * WAD)
    btc = system.add_market(30_000 * WAD, MarketSpec(im_ratio=ratio(20), mm_ratio=ratio(10)))
    prices = {eth: 2000 * WAD, btc: 30_000 * WAD}
    system.deposit(keeper, 1_000_000 * 10**6)
    system.stake(staker, rng.randint(0, 300) * 10**6)
    for who in traders:
        system.deposit(who, rng.randint(200, 1_000) * 10**6)  # thin margins: positions run near IM

    liquidations = 0
    for _ in range(STEPS):
        kind = rng.choices(["trade", "move", "settle", "stake"], weights=[6, 3, 1, 1])[0]
        if kind == "trade":
            maker, taker = rng.sample(traders, 2)
            market = rng.choice([eth, btc])
            price = prices[market]
            im = ratio(10) if market == eth else ratio(20)
            # Size the trade to 50-110 % of what the poorer party can carry at IM: leveraged
            # positions that crashes can bankrupt, and now and then one the IM check refuses.
            free = min(
                system.model.free_collateral(maker.address), system.model.free_collateral(taker.address)
            )
            size = max(free, WAD) * WAD // price * WAD // im * rng.randint(50, 110) // 100
            buy = rng.random() < 0.5
            system.match(
                system.order(maker, market, buy, size, price),
                system.order(taker, market, not buy, size, price),
                size,
            )
        elif kind == "move":
            market = rng.choice([eth, btc])
            move = rng.choice([-2500, -1200, -400, 400, 1200, 2500])  # basis points: crashes and spikes
            prices[market] = prices[market] * (10_000 + move) // 10_000 // 10**10 * 10**10
            system.set_price(market, prices[market])
            # A keeper pass follows every price move, as the real keeper follows every block.
            for who in traders:
                if system.model.liquidatable(who.address):
                    result = system.liquidate(who, keeper)
                    assert not isinstance(result, ModelRevert), result
                    assert system.vault.marginOf(who) >= 0
                    liquidations += 1
        elif kind == "settle":
            system.settle(rng.choice(traders), keeper)
        else:
            shares = system.fund.balanceOf(staker)
            if shares:
                system.request_unstake(staker, rng.randint(1, shares))
        system.check(keeper, staker, *traders)

    assert liquidations >= 1, "the sequence should exercise at least one liquidation"
