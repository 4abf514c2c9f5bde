"""Attack scenarios with the bound each one is held to (see docs/security.md).

Fund-staker exits ahead of a loss, the donation attack on fund shares and withdrawing unrealized
profit have their own tests (tests/unit/liquidation, tests/unit/fund, tests/unit/engine) and
stress scenarios (scenarios/staker_exit_before_loss.yaml).
"""

from __future__ import annotations

from backstop.model import ModelRevert
from backstop.units import WAD

PRICE = 2000 * WAD
TOKEN = 10**6


def test_colluding_accounts_at_the_band_edge_only_move_their_own_money(system, alice, bob, carol):
    """Bob buys 1 ETH from his accomplice alice at 2,100, the edge of the 5 % band around 2,000.
    The 100 of 'profit' alice books is paid out of bob's own margin: the IM check forces bob to
    post the band loss plus IM up front, so the pair cannot leave the system a deficit without a
    real price move, and alice's side is never withdrawable before it is realized against a third
    party. Bound: extraction <= band x notional <= bob's deposit - IMR."""
    eth = system.add_market(PRICE)
    system.deposit(alice, 1_000 * TOKEN)
    system.deposit(carol, 10_000 * TOKEN)
    # Bob posts less than band loss + IM (100 + 200): refused.
    system.deposit(bob, 299 * TOKEN)
    collusive = system.match(
        system.order(alice, eth, False, WAD, 2100 * WAD), system.order(bob, eth, True, WAD, 2100 * WAD), WAD
    )
    assert isinstance(collusive, ModelRevert) and collusive.name == "InsufficientMargin"
    system.deposit(bob, 1 * TOKEN)  # exactly band loss + IM
    system.trade(bob, alice, eth, WAD, 2100 * WAD)
    assert system.engine.equityOf(bob) == system.engine.initialMarginOf(bob) == 200 * WAD
    # Alice's 100 of unrealized profit is not withdrawable.
    assert system.engine.freeCollateralOf(alice) == (1_000 - 200) * WAD
    # Realizing it needs a real counterparty at a real price: carol sells to alice at 2,000.
    system.trade(alice, carol, eth, WAD, PRICE)
    assert system.vault.marginOf(alice) == 1_100 * WAD
    system.withdraw(alice, 1_100 * TOKEN)
    # The 100 came out of bob's deposit; bob is still above IM, nothing is owed by the system.
    assert system.engine.equityOf(bob) == 200 * WAD
    assert not system.model.liquidatable(bob.address)
    system.check(alice, bob, carol)


def test_a_liquidation_griefed_by_a_top_up_costs_the_keeper_nothing(system, alice, bob, keeper):
    """The account front-runs the keeper with a deposit: liquidation is refused with
    NotLiquidatable and nothing moves. The keeper dry-runs before sending, so a griefed
    liquidation costs it no gas (tests/integration/test_keeper.py)."""
    eth = system.add_market(PRICE)
    system.deposit(keeper, 100_000 * TOKEN)
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 250 * TOKEN)
    system.trade(bob, alice, eth, WAD, PRICE)
    system.set_price(eth, 1800 * WAD)
    assert system.model.liquidatable(bob.address)
    system.deposit(bob, 100 * TOKEN)  # the top-up lands first
    result = system.liquidate(bob, keeper)
    assert isinstance(result, ModelRevert) and result.name == "NotLiquidatable"
    system.check(alice, bob, keeper)


def test_keeper_reward_covers_gas_at_realistic_sizes_and_not_for_dust(system, alice, bob, carol, keeper):
    """The reward is 1 % of the liquidated notional. Measured here: the gas of a one-market
    liquidation (~224k). At 30 gwei and ETH at 2,000 that costs ~13.4 tokens: the 18-token reward
    on a 1-ETH position pays for it, a 0.0001-ETH position's 0.0018 does not. The floor
    (docs/security.md) is notional >= gas x gas price / rewardRatio: ~1,350 at 30 gwei on L1,
    ~0.5 at 0.01 gwei on an L2."""
    eth = system.add_market(PRICE)
    system.deposit(keeper, 100_000 * TOKEN)
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 250 * TOKEN)
    system.deposit(carol, 21_000)  # 0.021 token: just above the IM of 0.0001 ETH
    system.trade(bob, alice, eth, WAD, PRICE)  # realistic: 1 ETH
    system.trade(carol, alice, eth, WAD // 10_000, PRICE)  # dust: 0.0001 ETH
    system.set_price(eth, 1800 * WAD)
    big = system.liquidate(bob, keeper)
    gas = big["receipt"].gas_used
    gas_cost_tokens = gas * 30 * 10**9 * 2000 * WAD // 10**18  # 30 gwei, ETH at 2,000, in WAD
    assert big["keeper_reward"] == 18 * WAD > gas_cost_tokens
    floor_notional = gas_cost_tokens * 100  # reward ratio 1 %
    assert 1_000 * WAD < floor_notional < 1_800 * WAD
    assert system.model.liquidatable(carol.address)
    dust = system.liquidate(carol, keeper)
    assert dust["keeper_reward"] < gas_cost_tokens  # nobody rational liquidates this on L1
    system.check(alice, bob, carol, keeper)
