"""Partial liquidation, `liquidatePosition(account, marketId, size)` (docs/design.md §4a).

Default market: IM 10 %, MM 5 %, keeper reward 1 %, insurance fee 1 %, band 5 %, no trading fees,
a 6-decimal collateral. Every call runs in lockstep with the model (`System`): the chain must
accept exactly what the model accepts, revert with the same custom error otherwise, and agree on
every observable afterwards. The hand-computed numbers in the comments are asserted as well.
"""

from __future__ import annotations

import pytest

from backstop.units import WAD
from tests.support.system import MarketSpec
from tests.unit.liquidation.helpers import buffer, chain_error, observables, rejected

PRICE = 2000 * WAD
TOKEN = 10**6


@pytest.fixture
def under_water(system, eth, alice, bob):
    """bob long 5 at 2,000 with 1,000 of margin, alice the short; ETH at 1,880:
    E = 1,000 − 600 = 400 < MMR = 5 · 1,880 · 5 % = 470 (E − MMR = −70), solvent."""
    system.deposit(bob, 1_000 * TOKEN)
    system.deposit(alice, 20_000 * TOKEN)
    system.trade(bob, alice, eth, 5 * WAD, PRICE)
    system.set_price(eth, 1880 * WAD)
    assert system.engine.equityOf(bob) == 400 * WAD
    return eth


def test_partial_step_takes_part_of_the_position_at_the_oracle_price(system, under_water, alice, bob, keeper):
    eth = under_water
    keeper_before = system.vault.marginOf(keeper)

    result = system.liquidate_position(bob, eth, 2 * WAD, keeper)

    # N = 2 · 1,880 = 3,760: K = 37.6, fee = min(37.6, E₁) = 37.6 (E₁ = 400 − 37.6 = 362.4).
    assert (result["market"], result["size"], result["price"]) == (eth, 2 * WAD, 1880 * WAD)
    assert result["keeper_reward"] == 37_600_000_000_000_000_000
    assert result["insurance_fee"] == 37_600_000_000_000_000_000
    # bob realizes 2 · 1,880 − 4,000 = −240 and pays both: margin 1,000 − 240 − 75.2 = 684.8,
    # keeps long 3 with basis 6,000; E = 684.8 − 360 = 324.8 ≥ MMR = 282: healthy again.
    assert system.vault.marginOf(bob) == 684_800_000_000_000_000_000
    assert system.engine.positionOf(bob, eth) == (3 * WAD, 6_000 * WAD)
    assert system.engine.equityOf(bob) == 324_800_000_000_000_000_000
    assert buffer(system, bob) == 42_800_000_000_000_000_000  # from −70: the buffer rose
    # The keeper holds the 2 ETH at fair value and is paid the reward; the fund the fee.
    assert system.engine.positionOf(keeper, eth) == (2 * WAD, 3_760 * WAD)
    assert system.vault.marginOf(keeper) == keeper_before + 37_600_000_000_000_000_000
    assert system.fund.totalAssets() == system.vault.fundCredit() == 37_600_000
    assert system.engine.openInterestOf(eth) == 5 * WAD
    system.check(alice, bob, keeper)

    # Healthy now: a second step is refused.
    rejected(
        system.liquidate_position(bob, eth, WAD, keeper),
        "NotLiquidatable",
        bob.address,
        324_800_000_000_000_000_000,
        282 * WAD,
    )


def test_insurance_fee_is_capped_by_the_equity_left_after_the_reward(system, eth, alice, bob, keeper):
    system.deposit(bob, 1_000 * TOKEN)
    system.deposit(alice, 20_000 * TOKEN)
    system.trade(bob, alice, eth, 5 * WAD, PRICE)
    system.set_price(eth, 1810 * WAD)  # E = 1,000 − 950 = 50 < MMR = 452.5

    # 2 ETH: N = 3,620, K = 36.2, E₁ = 13.8 < the raw fee 36.2: the fee is 13.8 and bob's E is 0.
    result = system.liquidate_position(bob, eth, 2 * WAD, keeper)
    assert result["keeper_reward"] == 36_200_000_000_000_000_000
    assert result["insurance_fee"] == 13_800_000_000_000_000_000
    assert system.engine.equityOf(bob) == 0
    system.check(alice, bob, keeper)


def test_partial_step_on_a_bankrupt_account_is_refused_and_liquidate_runs_the_waterfall(
    system, eth, alice, bob, keeper
):
    system.deposit(bob, 1_000 * TOKEN)
    system.deposit(alice, 20_000 * TOKEN)
    system.trade(bob, alice, eth, 5 * WAD, PRICE)
    system.set_price(eth, 1810 * WAD)  # E = 50
    before = observables(system, alice, bob, keeper)

    # The whole position: K = 90.5 > E = 50, E₁ = −40.5.
    rejected(
        system.liquidate_position(bob, eth, 5 * WAD, keeper),
        "PartialLiquidationBankrupt",
        bob.address,
        -40_500_000_000_000_000_000,
    )
    chain_error(
        system,
        (system.engine.liquidatePosition, (bob, eth, 5 * WAD)),
        keeper,
        "PartialLiquidationBankrupt",
        ["address", "int256"],
        [bob.address, -40_500_000_000_000_000_000],
    )
    assert observables(system, alice, bob, keeper) == before

    # liquidate takes it whole: K = 90.5, deficit 40.5, the empty fund covers nothing, the short pays.
    result = system.liquidate(bob, keeper)
    assert result["deficit"] == result["socialized"] == 40_500_000_000_000_000_000
    system.check(alice, bob, keeper)


def test_one_wei_step_loses_at_most_the_stated_dust(system, under_water, alice, bob, keeper):
    eth = under_water
    before = buffer(system, bob)
    result = system.liquidate_position(bob, eth, 1, keeper)
    # N = ⌈1 · 1,880⌉ = 1,880 wei: K = 18 wei; the fee, 18 wei, rounds down to 0 token units.
    assert (result["keeper_reward"], result["insurance_fee"]) == (18, 0)
    assert buffer(system, bob) >= before - 2  # docs/design.md §4a: at most 2 wei
    system.check(alice, bob, keeper)


def test_whole_position_through_a_partial_step_leaves_the_account_flat_and_solvent(
    system, under_water, alice, bob, keeper
):
    eth = under_water
    result = system.liquidate_position(bob, eth, 5 * WAD, keeper)
    # N = 9,400: K = 94, fee 94; bob realizes −600 and keeps 1,000 − 600 − 188 = 212.
    assert (result["keeper_reward"], result["insurance_fee"]) == (94 * WAD, 94 * WAD)
    assert system.vault.marginOf(bob) == 212 * WAD
    assert list(system.engine.marketsOf(bob)) == []
    assert system.engine.positionOf(keeper, eth) == (5 * WAD, 9_400 * WAD)
    system.check(alice, bob, keeper)


def test_liquidator_holding_the_opposite_side_nets_the_takeover(
    system, under_water, alice, bob, carol, keeper
):
    """carol, short 3 at 1,880 with 600 of margin (IMR 564), takes 3 of bob's long: her position
    nets to zero and needs no initial margin at all; she realizes nothing (both at 1,880)."""
    eth = under_water
    system.deposit(carol, 600 * TOKEN)
    system.trade(keeper, carol, eth, 3 * WAD, 1880 * WAD)
    result = system.liquidate_position(bob, eth, 3 * WAD, carol)
    # N = 5,640: K = 56.4 to carol.
    assert result["keeper_reward"] == 56_400_000_000_000_000_000
    assert system.engine.positionOf(carol, eth) == (0, 0)
    assert system.vault.marginOf(carol) == 656_400_000_000_000_000_000
    assert system.engine.openInterestOf(eth) == 5 * WAD  # bob 2 + keeper 3 long, alice 5 short
    system.check(alice, bob, carol, keeper)


# --- bad input: each refused with its error, nothing moved ------------------------------------------


@pytest.mark.parametrize(
    ("size", "error"),
    [(0, "InvalidLiquidationSize"), (5 * WAD + 1, "InvalidLiquidationSize")],
    ids=["size-zero", "size-above-position"],
)
def test_bad_size_is_refused(system, under_water, alice, bob, keeper, size, error):
    eth = under_water
    before = observables(system, alice, bob, keeper)
    rejected(system.liquidate_position(bob, eth, size, keeper), error, bob.address, eth, size, 5 * WAD)
    chain_error(
        system,
        (system.engine.liquidatePosition, (bob, eth, size)),
        keeper,
        error,
        ["address", "uint256", "uint256", "uint256"],
        [bob.address, eth, size, 5 * WAD],
    )
    assert observables(system, alice, bob, keeper) == before


def test_unknown_market_is_refused(system, under_water, alice, bob, keeper):
    before = observables(system, alice, bob, keeper)
    rejected(system.liquidate_position(bob, 7, WAD, keeper), "UnknownMarket", 7)
    assert observables(system, alice, bob, keeper) == before


def test_market_the_account_does_not_hold_is_refused(system, under_water, alice, bob, keeper):
    btc = system.add_market(30_000 * WAD)
    before = observables(system, alice, bob, keeper)
    rejected(system.liquidate_position(bob, btc, WAD, keeper), "NoPositionInMarket", bob.address, btc)
    assert observables(system, alice, bob, keeper) == before


def test_healthy_account_is_refused(system, eth, alice, bob, keeper):
    system.deposit(bob, 1_000 * TOKEN)
    system.deposit(alice, 20_000 * TOKEN)
    system.trade(bob, alice, eth, 5 * WAD, PRICE)  # E = 1,000 ≥ MMR = 500
    before = observables(system, alice, bob, keeper)
    rejected(
        system.liquidate_position(bob, eth, WAD, keeper),
        "NotLiquidatable",
        bob.address,
        1_000 * WAD,
        500 * WAD,
    )
    assert observables(system, alice, bob, keeper) == before


def test_flat_account_is_refused(system, eth, bob, keeper):
    system.deposit(bob, 100 * TOKEN)
    rejected(system.liquidate_position(bob, eth, WAD, keeper), "NotLiquidatable", bob.address, 100 * WAD, 0)


def test_the_account_itself_is_refused(system, under_water, alice, bob, keeper):
    eth = under_water
    before = observables(system, alice, bob, keeper)
    rejected(system.liquidate_position(bob, eth, WAD, bob), "SelfLiquidation", bob.address)
    assert observables(system, alice, bob, keeper) == before


def test_liquidator_short_of_initial_margin_is_refused(system, under_water, alice, bob, carol, keeper):
    """carol has 100: taking 2 ETH (IMR 376) leaves her at E = 100 + 37.6 < 376."""
    eth = under_water
    system.deposit(carol, 100 * TOKEN)
    before = observables(system, alice, bob, carol)
    rejected(
        system.liquidate_position(bob, eth, 2 * WAD, carol),
        "InsufficientMargin",
        carol.address,
        137_600_000_000_000_000_000,
        376 * WAD,
    )
    assert observables(system, alice, bob, carol) == before
    # The step it can afford: 0.5 ETH (IMR 94 ≤ 100 + 9.4).
    system.liquidate_position(bob, eth, WAD // 2, carol)
    system.check(alice, bob, carol, keeper)


# --- attacks --------------------------------------------------------------------------------------


def test_steps_cannot_take_more_than_the_account_has(system, eth, alice, bob, keeper, dave):
    """Splitting a liquidation into many steps sidesteps `keeperRewardCap`, which bounds one call;
    but every step must leave the account solvent, so the rewards come out of the account's own
    equity, never out of the fund or the winners (docs/security.md). A liquidator chips away 1 ETH
    at a time for as long as the engine lets it."""
    system.stake(dave, 1_000 * TOKEN)
    system.deposit(bob, 2_000 * TOKEN)
    system.deposit(alice, 50_000 * TOKEN)
    system.trade(bob, alice, eth, 10 * WAD, PRICE)
    system.set_price(eth, 1830 * WAD)  # E = 2,000 − 1,700 = 300 < MMR 915
    fund_before = system.fund.totalAssets()
    steps = 0
    while isinstance(result := system.liquidate_position(bob, eth, WAD, keeper), dict):
        steps += 1
        assert system.engine.equityOf(bob) >= 0
    # Each step: K = 18.3, fee 18.3: E falls 36.6 a step, 300 → 7.2 after 8; the 9th would leave
    # 7.2 − 18.3 < 0 and is refused: what is left goes through liquidate and its capped reward.
    assert steps == 8
    rejected(result, "PartialLiquidationBankrupt", bob.address, -11_100_000_000_000_000_000)
    assert system.engine.equityOf(bob) == 7_200_000_000_000_000_000
    assert system.engine.lossIndexOf(eth) == (0, 0)  # nobody was charged a loss
    assert system.fund.totalAssets() == fund_before + 8 * 18_300_000  # the fund only earned fees
    system.check(alice, bob, keeper, dave)


def test_partial_step_with_a_cap_smaller_than_the_reward(system, alice, bob, keeper):
    """The reward of one step is capped like a whole liquidation's: min(N · 1 %, cap)."""
    eth = system.add_market(PRICE, MarketSpec(keeper_reward_cap=10 * WAD))
    system.deposit(keeper, 100_000 * TOKEN)
    system.deposit(bob, 1_000 * TOKEN)
    system.deposit(alice, 20_000 * TOKEN)
    system.trade(bob, alice, eth, 5 * WAD, PRICE)
    system.set_price(eth, 1880 * WAD)
    result = system.liquidate_position(bob, eth, 2 * WAD, keeper)
    assert result["keeper_reward"] == 10 * WAD  # not 37.6
    assert result["insurance_fee"] == 37_600_000_000_000_000_000
    system.check(alice, bob, keeper)
