"""Timelocked risk parameters (docs/design.md §10; finding 1 of issue #15).

The review's attack: one `updateMarket` call (IM 100 %, MM 99.9 %, keeper reward 99.8 %) made a
healthy account liquidatable at an unchanged price; the keeper took 19,960, bob ended at 0 and
9,960 was socialized onto alice. Parameters now change only through schedule → `PARAMS_DELAY` →
execute, so every holder sees the change coming and can leave first. Each test runs in lockstep
with the reference model, which has the same timelock.
"""

from __future__ import annotations

import ape
import pytest

from backstop.model import ModelRevert
from backstop.units import WAD
from tests.support.system import MarketSpec, ratio

PRICE = 2000 * WAD
TOKEN = 10**6
DELAY = 2 * 86_400
WINDOW = 14 * 86_400
#: The review's parameters: IM 1, MM 0.999, keeper reward 0.998 (no insurance fee, so that the
#: new sum bound keeper + fee ≤ MM still admits them: only the delay stands between them and bob).
HOSTILE = MarketSpec(
    im_ratio=WAD, mm_ratio=999 * WAD // 1000, keeper_reward_ratio=998 * WAD // 1000, insurance_fee_ratio=0
)


def rejected(result, name: str) -> None:
    assert isinstance(result, ModelRevert), f"expected {name}, the call succeeded"
    assert result.name == name


@pytest.fixture
def eth(system):
    return system.add_market(PRICE)


@pytest.fixture
def positions(system, eth, alice, bob):
    """bob long 10 ETH at 2,000 with 11,000 margin: E − MMR = 11,000 − 1,000 = 10,000 above maintenance."""
    system.deposit(alice, 20_000 * TOKEN)
    system.deposit(bob, 11_000 * TOKEN)
    system.trade(bob, alice, eth, 10 * WAD, PRICE)
    return eth


def state(system, *accounts):
    return {
        "params": tuple(system.engine.marketParams(0)),
        **{a.address: (system.vault.marginOf(a), system.engine.positionOf(a, 0)) for a in accounts},
        "fund": system.token.balanceOf(system.fund),
    }


def test_parameter_change_before_the_delay_reverts_and_nothing_moves(system, positions, alice, bob, keeper):
    before = state(system, alice, bob, keeper)
    tx = system.schedule_update(positions, HOSTILE)
    [event] = [log for log in tx.events if log.event_name == "MarketUpdateScheduled"]
    eta = event.eta
    assert eta == system.chain.blocks.head.timestamp + DELAY
    assert system.engine.scheduledMarketUpdate(positions)[1] == eta
    # Executing now, or one second before the eta, reverts UpdateNotReady; the old rules still hold.
    rejected(system.execute_update(positions), "UpdateNotReady")
    system.advance(DELAY - 3)
    rejected(system.execute_update(positions), "UpdateNotReady")
    with ape.reverts(system.engine.UpdateNotReady):
        system.engine.executeMarketUpdate(positions, sender=system.deployer)
    assert state(system, alice, bob, keeper) == before
    # bob is still healthy: nobody can liquidate him at the unchanged price.
    system.set_price(positions, PRICE)
    rejected(system.liquidate(bob, keeper), "NotLiquidatable")
    system.check(alice, bob, keeper)


def test_parameter_change_executed_after_the_delay_finds_the_user_gone(
    system, positions, alice, bob, keeper, carol
):
    system.deposit(carol, 20_000 * TOKEN)
    system.schedule_update(positions, HOSTILE)
    # In the delay bob sees MarketUpdateScheduled, closes his position and takes his money out.
    system.trade(carol, bob, positions, 10 * WAD, PRICE)
    system.withdraw(bob, 11_000 * TOKEN)
    assert system.vault.marginOf(bob) == 0 and system.token.balanceOf(bob) >= 11_000 * TOKEN
    system.advance(DELAY)
    system.set_price(positions, PRICE)
    tx = system.execute_update(positions)
    assert [log.event_name for log in tx.events if log.event_name.startswith("MarketUpdate")] == [
        "MarketUpdateExecuted"
    ]
    assert system.engine.marketParams(positions).mmRatio == HOSTILE.mm_ratio
    assert system.engine.scheduledMarketUpdate(positions)[1] == 0
    # Nothing left to take: bob holds no position.
    rejected(system.liquidate(bob, keeper), "NotLiquidatable")
    rejected(system.execute_update(positions), "NoUpdateScheduled")  # consumed: cannot replay
    system.check(alice, bob, carol, keeper)


def test_cancelled_parameter_change_never_applies(system, positions, alice, bob, stranger):
    system.schedule_update(positions, HOSTILE)
    with ape.reverts(system.engine.NotAdminOrGuardian, caller=stranger.address):
        system.engine.cancelMarketUpdate(positions, sender=stranger)
    tx = system.engine.cancelMarketUpdate(
        positions, sender=system.deployer
    )  # the deployer is the guardian too
    system.model.cancel_market_update(positions)
    [event] = [log for log in tx.events if log.event_name == "MarketUpdateCancelled"]
    assert event.by == system.deployer.address
    system.advance(DELAY)
    system.set_price(positions, PRICE)
    rejected(system.execute_update(positions), "NoUpdateScheduled")
    assert system.engine.marketParams(positions).mmRatio == MarketSpec().mm_ratio
    system.check(alice, bob)


def test_a_change_not_executed_in_its_window_expires_and_can_be_replaced(system, positions, alice, bob):
    tighter = MarketSpec(im_ratio=ratio(20), mm_ratio=ratio(10))
    system.schedule_update(positions, tighter)
    rejected(system.schedule_update(positions, HOSTILE), "UpdateAlreadyScheduled")  # one at a time
    system.advance(DELAY + WINDOW + 1)
    rejected(system.execute_update(positions), "UpdateExpired")
    # An expired change no longer blocks a new one, which waits the full delay again.
    system.schedule_update(positions, tighter)
    rejected(system.execute_update(positions), "UpdateNotReady")
    system.advance(DELAY)
    system.set_price(positions, PRICE)
    system.execute_update(positions)
    assert system.engine.marketParams(positions).imRatio == ratio(20)
    system.check(alice, bob)


def test_scheduling_checks_bounds_and_roles_up_front(system, eth, stranger):
    # Out of bounds: refused when scheduled, not two days later.
    rejected(
        system.schedule_update(eth, MarketSpec(keeper_reward_ratio=ratio(4), insurance_fee_ratio=ratio(2))),
        "InvalidMarketParam",
    )
    rejected(system.schedule_update(eth, MarketSpec(keeper_reward_cap=0)), "InvalidMarketParam")
    params = MarketSpec().contract_params(system.feeds[eth])
    with ape.reverts(system.engine.AccessControlUnauthorizedAccount, account=stranger.address):
        system.engine.scheduleMarketUpdate(eth, params, sender=stranger)
    with ape.reverts(system.engine.UnknownMarket, marketId=7):
        system.engine.scheduleMarketUpdate(7, params, sender=system.deployer)
    system.schedule_update(eth, MarketSpec(im_ratio=ratio(20)))
    system.advance(DELAY)
    with ape.reverts(system.engine.AccessControlUnauthorizedAccount, account=stranger.address):
        system.engine.executeMarketUpdate(eth, sender=stranger)


def test_an_update_can_move_the_feed_only_through_the_delay(system, eth, alice, make_feed):
    evil = make_feed(8, 1 * 10**8, "EVIL")  # the admin's own feed at 1 USD
    spec = MarketSpec()
    params = list(spec.contract_params(system.feeds[eth]))
    params[0] = evil.address
    system.engine.scheduleMarketUpdate(eth, tuple(params), sender=system.deployer)
    system.model.schedule_market_update(eth, spec.model_params())
    assert system.oracle.feedOf(eth).feed == system.feeds[eth].address
    assert system.oracle.priceOf(eth) == PRICE
    system.advance(DELAY)
    evil.setAnswer(1 * 10**8, sender=system.deployer)
    system.engine.executeMarketUpdate(eth, sender=system.deployer)
    assert system.oracle.feedOf(eth).feed == evil.address
    assert system.oracle.priceOf(eth) == WAD


def test_sequencer_feed_changes_only_through_the_delay(system, eth, make_feed, stranger):
    sequencer = make_feed(0, 0, "L2 Sequencer Uptime")
    with ape.reverts(system.engine.AccessControlUnauthorizedAccount, account=stranger.address):
        system.engine.scheduleSequencerUpdate(sequencer, 3600, sender=stranger)
    with ape.reverts(system.engine.InvalidGracePeriod, gracePeriod=2**96):
        system.engine.scheduleSequencerUpdate(sequencer, 2**96, sender=system.deployer)
    tx = system.engine.scheduleSequencerUpdate(sequencer, 3600, sender=system.deployer)
    [event] = [log for log in tx.events if log.event_name == "SequencerUpdateScheduled"]
    assert system.engine.scheduledSequencerUpdate() == (sequencer.address, 3600, event.eta)
    target = system.engine.SEQUENCER_TARGET()
    with ape.reverts(system.engine.UpdateNotReady, target=target):
        system.engine.executeSequencerUpdate(sender=system.deployer)
    assert system.oracle.sequencerFeed()[0] == "0x" + "00" * 20
    system.advance(DELAY)
    system.engine.executeSequencerUpdate(sender=system.deployer)
    assert tuple(system.oracle.sequencerFeed()) == (sequencer.address, 3600)
    with ape.reverts(system.engine.NoUpdateScheduled, target=target):
        system.engine.cancelSequencerUpdate(sender=system.deployer)


def test_guardian_lowers_an_open_interest_cap_at_once_but_never_raises_it(
    system, positions, alice, bob, carol, stranger
):
    with ape.reverts(system.engine.AccessControlUnauthorizedAccount, account=stranger.address):
        system.engine.lowerOpenInterestCap(positions, 5 * WAD, sender=stranger)
    cap = system.engine.marketParams(positions).openInterestCap
    for bad in (0, cap, cap + 1):
        with ape.reverts(system.engine.InvalidMarketParam, param="openInterestCap", value=bad):
            system.engine.lowerOpenInterestCap(positions, bad, sender=system.deployer)
    tx = system.engine.lowerOpenInterestCap(positions, 5 * WAD, sender=system.deployer)
    system.model.lower_open_interest_cap(positions, 5 * WAD)
    [event] = [log for log in tx.events if log.event_name == "OpenInterestCapLowered"]
    assert (event.previousCap, event.cap) == (cap, 5 * WAD)
    # Open interest 10 is above the new cap: raising fills revert, reducing ones still trade.
    system.deposit(carol, 5_000 * TOKEN)
    rejected(
        system.match(
            system.order(alice, positions, False, WAD, PRICE),
            system.order(carol, positions, True, WAD, PRICE),
            WAD,
        ),
        "OpenInterestCapExceeded",
    )
    system.trade(alice, bob, positions, WAD, PRICE)  # bob sells 1 back to alice: OI 10 → 9
    assert system.engine.openInterestOf(positions) == 9 * WAD
    system.check(alice, bob, carol)


def test_params_delay_is_bounded_at_deployment(project, deployer, deploy_revert_data):
    from backstop.chain.abi import encode_call

    zero = "0x" + "00" * 20
    token = project.MockERC20.deploy("USD", "USD", 6, sender=deployer)
    vault = project.CollateralVault.deploy(token, sender=deployer)
    for delay in (3_599, 30 * 86_400 + 1):
        data = deploy_revert_data(
            project.MarginEngine,
            vault.address,
            zero,
            zero,
            deployer.address,
            deployer.address,
            delay,
            sender=deployer,
        )
        assert data == encode_call("InvalidParamsDelay(uint256,uint256,uint256)", delay, 3_600, 30 * 86_400)
    engine = project.MarginEngine.deploy(vault, zero, zero, deployer, deployer, 3_600, sender=deployer)
    assert engine.PARAMS_DELAY() == 3_600
