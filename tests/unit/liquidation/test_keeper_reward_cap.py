"""The keeper reward cap (docs/design.md §4 step 1; finding 4 of issue #15).

The review's attack: two sock-puppet accounts, hedged (one long, one short), both the
attacker's; an oracle jump larger than their margin bankrupts one side, and its liquidation pays
the loss beyond margin plus 1 % of notional as keeper reward, with no limit, out of the insurance
fund and then the winners. `K = min(Σ N_m·keeperRewardRatio_m, Σ keeperRewardCap_m)` bounds the
reward part; the gap part is what the fund is for. Every step runs in lockstep with the model.
"""

from __future__ import annotations

import pytest

from backstop.units import WAD
from tests.support.system import MarketSpec

PRICE = 2000 * WAD
TOKEN = 10**6


def sock_puppets(system, cap: int | None, alice, bob, keeper, dave):
    """alice (long 100) and bob (short 100) are one attacker's hedged pair at 2,000 with 21,000
    margin each; dave stakes 10,000 in the fund; then ETH jumps to 1,780 (−11 %)."""
    spec = MarketSpec() if cap is None else MarketSpec(keeper_reward_cap=cap)
    eth = system.add_market(PRICE, spec)
    system.stake(dave, 10_000 * TOKEN)
    for who in (alice, bob):
        system.deposit(who, 21_000 * TOKEN)
    system.deposit(keeper, 100_000 * TOKEN)
    system.trade(alice, bob, eth, 100 * WAD, PRICE)
    system.set_price(eth, 1780 * WAD)  # alice: E = 21,000 − 22,000 = −1,000 < MMR 8,900
    return eth


@pytest.mark.parametrize(
    ("cap", "reward", "deficit"),
    [
        # uncapped: K = 1 % of 178,000 = 1,780; D = 1,000 + 1,780
        (None, 1_780 * WAD, 2_780 * WAD),
        # capped at 50: K = 50; D = 1,000 + 50. The attacker's take drops by 1,730.
        (50 * WAD, 50 * WAD, 1_050 * WAD),
    ],
    ids=["no-cap", "cap-50"],
)
def test_capped_reward_bounds_what_a_hedged_pair_extracts(
    system, alice, bob, keeper, dave, cap, reward, deficit
):
    eth = sock_puppets(system, cap, alice, bob, keeper, dave)
    keeper_before = system.vault.marginOf(keeper)
    fund_before = system.token.balanceOf(system.fund)
    result = system.liquidate(alice, keeper)
    assert result["notional"] == 178_000 * WAD
    assert result["keeper_reward"] == reward
    assert result["insurance_fee"] == 0
    assert result["deficit"] == result["covered"] == deficit  # the fund (10,000) covers all of it
    assert result["socialized"] == 0
    assert system.vault.marginOf(keeper) == keeper_before + reward
    assert fund_before - system.token.balanceOf(system.fund) == deficit // 10**12
    assert system.engine.positionOf(keeper, eth) == (100 * WAD, 178_000 * WAD)
    system.check(alice, bob, keeper, dave)


def test_the_cap_is_the_sum_over_the_liquidated_markets(system, alice, bob, carol, keeper):
    eth = system.add_market(PRICE, MarketSpec(keeper_reward_cap=3 * WAD))
    btc = system.add_market(30_000 * WAD, MarketSpec(keeper_reward_cap=4 * WAD))
    for who, amount in ((alice, 100_000), (carol, 100_000), (bob, 1_300), (keeper, 100_000)):
        system.deposit(who, amount * TOKEN)
    system.trade(bob, alice, eth, 5 * WAD, PRICE)  # bob long 5 ETH: notional 10,000
    system.trade(bob, carol, btc, WAD // 10, 30_000 * WAD)  # bob long 0.1 BTC: notional 3,000
    system.set_price(eth, 1800 * WAD)  # bob: E = 1,300 − 1,000 = 300 < MMR 450 + 150
    # Σ N·ratio = 90 + 30 = 120 > Σ cap = 3 + 4 = 7: K = 7; the fee min(120, 300 − 7) = 120.
    result = system.liquidate(bob, keeper)
    assert result["keeper_reward"] == 7 * WAD
    assert result["insurance_fee"] == 120 * WAD
    assert system.vault.marginOf(bob) == (300 - 7 - 120) * WAD
    system.check(alice, bob, carol, keeper)


def test_an_uncapped_reward_below_the_cap_is_unchanged(system, alice, bob, keeper):
    eth = system.add_market(PRICE, MarketSpec(keeper_reward_cap=1_000 * WAD))
    system.deposit(bob, 250 * TOKEN)
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(keeper, 100_000 * TOKEN)
    system.trade(bob, alice, eth, WAD, PRICE)
    system.set_price(eth, 1800 * WAD)
    assert system.liquidate(bob, keeper)["keeper_reward"] == 18 * WAD  # 1 % of 1,800 < 1,000
    system.check(alice, bob, keeper)
