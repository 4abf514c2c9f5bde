"""Liquidation, the insurance-fund waterfall and O(1) socialized loss, against the model.

Default market: IM 10 %, MM 5 %, keeper reward 1 %, insurance fee 1 %, band 5 %, no trading fees.
Every step goes through the lockstep harness, and `check` compares every observable (margins,
positions, pending losses, loss indices, fund assets and shares, the solvency identity) with the
reference model. The hand-computed numbers in the comments are asserted as well.
"""

from __future__ import annotations

import pytest

from backstop.model import ModelRevert
from backstop.units import WAD
from tests.support.system import FundSpec, MarketSpec, System

PRICE = 2000 * WAD
TOKEN = 10**6  # one whole 6-decimal token in token units
SHORT = 1


def rejected(result, name: str) -> None:
    assert isinstance(result, ModelRevert), f"expected {name}, the call succeeded"
    assert result.name == name


def test_liquidation_that_leaves_the_account_solvent(system, eth, alice, bob, keeper):
    system.deposit(bob, 250 * TOKEN)
    system.deposit(alice, 10_000 * TOKEN)
    system.trade(bob, alice, eth, WAD, PRICE)  # bob long 1 at 2,000
    system.set_price(eth, 1800 * WAD)  # E = 50 < MMR = 90
    assert system.model.liquidatable(bob.address)

    result = system.liquidate(bob, keeper)

    # m0 = 50, K = 18, fee = min(18, 50 − 18) = 18, bob keeps 14.
    assert result["keeper_reward"] == 18 * WAD
    assert result["insurance_fee"] == 18 * WAD
    assert result["deficit"] == result["covered"] == result["socialized"] == 0
    assert system.vault.marginOf(bob) == 14 * WAD
    assert system.engine.positionOf(keeper, eth) == (WAD, 1800 * WAD)
    assert system.fund.totalAssets() == system.vault.fundCredit() == 18 * TOKEN  # booked, not moved
    system.check(alice, bob, keeper)
    # The account keeps its 14 and can take it out.
    system.withdraw(bob, 14 * TOKEN)
    system.check(alice, bob, keeper)


def test_insurance_fee_only_comes_from_remaining_equity(system, eth, alice, bob, keeper):
    system.deposit(bob, 210 * TOKEN)
    system.deposit(alice, 10_000 * TOKEN)
    system.trade(bob, alice, eth, WAD, PRICE)
    system.set_price(eth, 1800 * WAD)  # E = 10: K = 18 exceeds it, no fee, deficit 8
    result = system.liquidate(bob, keeper)
    assert result["insurance_fee"] == 0
    assert result["deficit"] == 8 * WAD
    assert system.vault.marginOf(bob) == 0
    system.check(alice, bob, keeper)


def test_bankrupt_account_fully_covered_by_the_fund(system, eth, alice, bob, carol, keeper):
    system.stake(carol, 1_000 * TOKEN)
    system.deposit(bob, 210 * TOKEN)
    system.deposit(alice, 10_000 * TOKEN)
    system.trade(bob, alice, eth, WAD, PRICE)
    system.set_price(eth, 1700 * WAD)  # E = 210 − 300 = −90

    result = system.liquidate(bob, keeper)

    # m0 = −90, K = 17: D = 107, covered in full by the fund; nothing socialized.
    assert result["deficit"] == 107 * WAD
    assert result["covered"] == 107 * WAD
    assert result["socialized"] == 0
    assert system.vault.marginOf(bob) == 0
    assert system.fund.totalAssets() == 893 * TOKEN
    assert system.engine.lossIndexOf(eth) == (0, 0)
    events = [log.event_name for log in result["receipt"].events]
    assert "BadDebtCovered" in events and "LossSocialized" not in events
    system.check(alice, bob, carol, keeper)


@pytest.fixture
def erin(accounts):
    return accounts[6]


def test_partly_covered_rest_socialized_to_winners_pro_rata(
    system, eth, alice, bob, carol, dave, erin, keeper
):
    system.stake(alice, 50 * TOKEN)
    for who in (carol, dave, erin):
        system.deposit(who, 5_000 * TOKEN)
    system.deposit(bob, 2_100 * TOKEN)
    system.trade(bob, carol, eth, 5 * WAD, PRICE)
    system.trade(bob, dave, eth, 3 * WAD, PRICE)
    system.trade(bob, erin, eth, 2 * WAD, PRICE)  # bob long 10 against shorts 5 / 3 / 2
    system.set_price(eth, 1700 * WAD)  # bob: E = 2,100 − 3,000 = −900

    result = system.liquidate(bob, keeper)

    # K = 170, D = 1,070, the fund pays its 50, R = 1,020 over short OI 10: ΔL = 102.
    assert result["deficit"] == 1_070 * WAD
    assert result["covered"] == 50 * WAD
    assert result["socialized"] == 1_020 * WAD
    assert system.engine.lossIndexOf(eth) == (0, 102 * WAD)
    assert [system.engine.pendingLossOf(w) for w in (carol, dave, erin)] == [510 * WAD, 306 * WAD, 204 * WAD]
    assert system.fund.totalAssets() == 0
    [social] = [log for log in result["receipt"].events if log.event_name == "LossSocialized"]
    assert (social.marketId, social.side, social.amount, social.indexDelta) == (
        eth,
        SHORT,
        1_020 * WAD,
        102 * WAD,
    )
    system.check(alice, bob, carol, dave, erin, keeper)

    # Pending losses are settled by any touch: `settle` by anyone, a withdrawal, a trade.
    system.settle(carol, keeper)
    assert system.vault.marginOf(carol) == (5_000 - 510) * WAD
    system.withdraw(dave, 1 * TOKEN)
    assert system.vault.marginOf(dave) == (5_000 - 306 - 1) * WAD
    system.trade(erin, keeper, eth, WAD, 1700 * WAD)  # erin buys back half her short
    assert system.engine.pendingLossOf(erin) == 0
    assert system.model.margin(erin.address) == (5_000 - 204 + 300) * WAD  # +300 realized on 1 ETH
    system.check(alice, bob, carol, dave, erin, keeper)


def test_fund_empty_everything_is_socialized(system, eth, alice, bob, keeper):
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 210 * TOKEN)
    system.trade(bob, alice, eth, WAD, PRICE)
    system.set_price(eth, 1700 * WAD)
    result = system.liquidate(bob, keeper)
    assert result["covered"] == 0
    assert result["socialized"] == 107 * WAD
    assert system.engine.pendingLossOf(alice) == 107 * WAD
    system.check(alice, bob, keeper)


def test_fund_floor_and_per_event_cap_limit_cover(project, chain, deployer, alice, bob, carol, keeper):
    system = System(
        project, chain, deployer, fund_spec=FundSpec(floor_tokens=30 * TOKEN, per_event_cap_tokens=50 * TOKEN)
    )
    eth = system.add_market(PRICE)
    system.deposit(keeper, 100_000 * TOKEN)
    system.stake(carol, 100 * TOKEN)
    assert system.fund.coverable() == 50 * TOKEN  # min(100 − 30, 50)
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 210 * TOKEN)
    system.trade(bob, alice, eth, WAD, PRICE)
    system.set_price(eth, 1700 * WAD)
    result = system.liquidate(bob, keeper)
    assert result["covered"] == 50 * WAD
    assert result["socialized"] == 57 * WAD
    assert system.fund.coverable() == 20 * TOKEN  # 50 left, 30 of it is the floor
    system.check(alice, bob, carol, keeper)


def test_two_market_account_lost_in_one_and_won_in_the_other(system, eth, alice, bob, carol, keeper):
    btc = system.add_market(30_000 * WAD)
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(carol, 10_000 * TOKEN)
    system.deposit(bob, 1_400 * TOKEN)
    system.trade(bob, alice, eth, 5 * WAD, PRICE)  # bob long 5 ETH, alice short
    system.trade(carol, bob, btc, WAD // 10, 30_000 * WAD)  # bob short 0.1 BTC, carol long
    system.set_price(eth, 1700 * WAD)  # bob −1,500 on ETH
    system.set_price(btc, 28_000 * WAD)  # bob +200 on BTC
    # E = 1,400 − 1,500 + 200 = 100 < MMR = 425 + 140.
    result = system.liquidate(bob, keeper)
    # K = 85 + 28 = 113, D = 13, no fund: R = 13, all of it on ETH's short side (alice).
    assert result["socialized"] == 13 * WAD
    assert system.engine.lossIndexOf(eth) == (0, 13 * WAD // 5)
    assert system.engine.lossIndexOf(btc) == (0, 0)
    assert system.engine.pendingLossOf(alice) == 13 * WAD
    assert system.engine.pendingLossOf(carol) == 0  # won against bob's winning leg: not charged
    system.check(alice, bob, carol, keeper)


def test_deficit_from_rewards_alone_is_split_by_notional(system, eth, alice, bob, carol, keeper):
    """An account that lost nowhere but cannot pay the reward: R goes by notional to each
    market's opposite side."""
    btc = system.add_market(30_000 * WAD)
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(carol, 10_000 * TOKEN)
    system.deposit(bob, 100 * TOKEN)
    # Raise requirements after the fact (admin, through the timelock) so the account becomes liquidatable at a profit.
    system.trade(bob, alice, eth, WAD // 4, PRICE)  # long 0.25 ETH: notional 500
    system.trade(carol, bob, btc, WAD // 100, 30_000 * WAD)  # short 0.01 BTC: notional 300
    strict = MarketSpec(
        im_ratio=60 * WAD // 100, mm_ratio=50 * WAD // 100, keeper_reward_ratio=40 * WAD // 100
    )
    for m in (eth, btc):
        system.update_market(m, strict)
    # E = 100 < MMR = 400; K = 320 > 100: D = 220, split 500 : 300 -> 137.5 / 82.5.
    result = system.liquidate(bob, keeper)
    assert result["socialized"] == 220 * WAD
    assert system.engine.pendingLossOf(alice) == 137_500_000_000_000_000_000
    assert system.engine.pendingLossOf(carol) == 82_500_000_000_000_000_000
    system.check(alice, bob, carol, keeper)


def test_liquidator_that_would_end_below_im_reverts(system, eth, alice, bob, carol):
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 250 * TOKEN)
    system.deposit(carol, 100 * TOKEN)  # IM of 1 ETH at 1,800 is 180
    system.trade(bob, alice, eth, WAD, PRICE)
    system.set_price(eth, 1800 * WAD)
    rejected(system.liquidate(bob, carol), "InsufficientMargin")
    system.check(alice, bob, carol)


def test_healthy_flat_and_self_liquidations_revert(system, eth, alice, bob, keeper):
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 250 * TOKEN)
    system.trade(bob, alice, eth, WAD, PRICE)
    rejected(system.liquidate(bob, keeper), "NotLiquidatable")  # healthy
    rejected(system.liquidate(keeper, alice), "NotLiquidatable")  # flat
    system.set_price(eth, 1800 * WAD)
    assert system.model.liquidatable(bob.address)
    rejected(system.liquidate(bob, bob), "SelfLiquidation")
    system.check(alice, bob, keeper)


def test_liquidation_works_while_trading_is_paused(system, eth, alice, bob, keeper):
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 250 * TOKEN)
    system.trade(bob, alice, eth, WAD, PRICE)
    system.set_global_paused(True)
    system.set_paused(eth, True)
    system.set_price(eth, 1800 * WAD)
    system.liquidate(bob, keeper)
    system.check(alice, bob, keeper)


def test_liquidation_needs_a_fresh_oracle(system, eth, alice, bob, keeper, chain):
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 250 * TOKEN)
    system.trade(bob, alice, eth, WAD, PRICE)
    system.set_price(eth, 1800 * WAD)
    system.advance(86_400 + 10)
    system.model.set_stale(eth, True)
    rejected(system.liquidate(bob, keeper), "StalePrice")


def test_liquidator_on_the_opposite_side_pays_its_share_before_netting(system, eth, alice, bob, keeper):
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 600 * TOKEN)
    system.trade(bob, alice, eth, 2 * WAD, PRICE)  # bob long 2, alice short 2
    system.trade(bob, keeper, eth, WAD, PRICE)  # bob long 3, keeper short 1
    system.set_price(eth, 1700 * WAD)  # bob: E = 600 − 900 = −300
    keeper_margin = system.vault.marginOf(keeper)
    result = system.liquidate(bob, keeper)
    # K = 51, D = 351 socialized over short OI 3: ΔL = 117. The keeper, short 1, is touched
    # after the index moved: it pays 117 before netting its short against bob's long 3.
    assert result["socialized"] == 351 * WAD
    assert system.engine.lossIndexOf(eth) == (0, 117 * WAD)
    assert system.engine.positionOf(keeper, eth)[0] == 2 * WAD
    assert system.engine.pendingLossOf(keeper) == 0
    assert system.engine.pendingLossOf(alice) == 234 * WAD
    # Keeper: −117 loss, +300 realized closing its short at 1,700, +51 reward.
    assert system.vault.marginOf(keeper) == keeper_margin + (300 + 51 - 117) * WAD
    system.check(alice, bob, keeper)


def test_fund_stakers_in_cooldown_absorb_the_loss_and_cannot_exit_ahead(
    system, eth, alice, bob, carol, keeper
):
    system.stake(carol, 1_000 * TOKEN)
    shares = system.fund.balanceOf(carol)
    system.request_unstake(carol, shares)
    value_at_request = system.fund.redeemRequestOf(carol).assets
    assert value_at_request == 1_000 * TOKEN
    rejected(system.unstake(carol, shares), "CooldownNotElapsed")  # cannot leave before the loss
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 210 * TOKEN)
    system.trade(bob, alice, eth, WAD, PRICE)
    system.set_price(eth, 1700 * WAD)
    system.liquidate(bob, keeper)  # the fund pays 107 while carol waits
    system.advance(7 * 86_400)
    system.set_price(eth, 1700 * WAD)  # keep the oracle fresh for the checks
    system.unstake(carol, shares)
    assert system.token.balanceOf(carol) == 893 * TOKEN  # value at exit: lower than at request
    system.check(alice, bob, carol, keeper)


def test_fund_staker_gain_during_cooldown_stays_in_the_fund(system, alice, bob, carol, dave):
    market = system.add_market(PRICE, MarketSpec(maker_fee_ratio=10**15, taker_fee_ratio=10**15))
    system.stake(carol, 1_000 * TOKEN)
    system.stake(dave, 1_000 * TOKEN)
    shares = system.fund.balanceOf(carol)
    system.request_unstake(carol, shares)
    system.deposit(alice, 100_000 * TOKEN)
    system.deposit(bob, 100_000 * TOKEN)
    system.trade(alice, bob, market, 100 * WAD, PRICE)  # 400 tokens of fees into the fund
    system.advance(7 * 86_400 + 1)
    system.set_price(market, PRICE)
    system.unstake(carol, shares)
    # Carol gets what her shares were worth at request; the fees she would have shared stay.
    assert system.token.balanceOf(carol) == 1_000 * TOKEN
    assert system.fund.totalAssets() == 1_400 * TOKEN
    system.check(alice, bob, carol, dave)


def _socializing_liquidation_gas(system, bob, keeper, winners) -> int:
    market = system.add_market(PRICE)
    system.deposit(keeper, 100_000 * TOKEN)
    system.deposit(bob, 2_100 * TOKEN)
    each = 10 * WAD // len(winners)
    buy = system.order(bob, market, True, 10 * WAD, PRICE)
    for w in winners:
        system.deposit(w, 1_000 * TOKEN)
        system.match(buy, system.order(w, market, False, each, PRICE), each)
    system.set_price(market, 1700 * WAD)
    result = system.liquidate(bob, keeper)
    assert result["socialized"] == 1_070 * WAD
    system.check(bob, keeper, *winners[:3])
    return result["receipt"].gas_used


def test_socializing_liquidation_costs_the_same_with_2_and_20_winners(project, chain, deployer, accounts):
    bob, keeper = accounts[2], accounts[5]
    many = [accounts[i] for i in range(10, 30)]
    gas_two = _socializing_liquidation_gas(System(project, chain, deployer), bob, keeper, many[:2])
    gas_twenty = _socializing_liquidation_gas(System(project, chain, deployer), bob, keeper, many)
    # No loop over the winners: the only difference is storage that was zero or not.
    assert gas_twenty == gas_two, (gas_two, gas_twenty)
