"""Market listing, parameter bounds and pausing."""

from __future__ import annotations

import ape
import pytest

from backstop.units import WAD
from tests.support.system import MarketSpec, ratio

PRICE = 2000 * WAD


def params(system, **overrides):
    spec = MarketSpec(**{k: v for k, v in overrides.items() if k in MarketSpec.__dataclass_fields__})
    feed = system.project.MockAggregator.deploy(8, 2000 * 10**8, "ETH / USD", sender=system.deployer)
    p = list(spec.contract_params(feed))
    if "feed" in overrides:
        p[0] = overrides["feed"]
    return tuple(p)


def test_add_market_stores_parameters_and_registers_the_feed(system):
    spec = MarketSpec(maker_fee_ratio=ratio("0.02"), taker_fee_ratio=ratio("0.05"), oi_cap=500 * WAD)
    feed = system.project.MockAggregator.deploy(8, 2000 * 10**8, "ETH / USD", sender=system.deployer)
    tx = system.engine.addMarket(spec.contract_params(feed), sender=system.deployer)
    assert system.engine.marketCount() == 1
    stored = system.engine.marketParams(0)
    assert tuple(stored) == spec.contract_params(feed)
    assert system.oracle.priceOf(0) == PRICE
    [event] = [log for log in tx.events if log.event_name == "MarketAdded"]
    assert event.marketId == 0


@pytest.mark.parametrize(
    ("field", "value", "param", "reported"),
    [
        ("mm_ratio", 0, "mmRatio", 0),
        ("im_ratio", ratio(5), "imRatio", ratio(5)),  # equal to mm
        ("im_ratio", ratio(4), "imRatio", ratio(4)),  # below mm
        ("im_ratio", WAD + 1, "imRatio", WAD + 1),  # above 100 %
        ("keeper_reward_ratio", ratio(5) + 1, "keeperRewardRatio", ratio(5) + 1),
        # keeper 1 % + fee above 4 % exceeds mm = 5 %: the fee is named (it is checked second)
        ("insurance_fee_ratio", ratio(4) + 1, "insuranceFeeRatio", ratio(4) + 1),
        ("maker_fee_ratio", ratio(5), "makerFeeRatio", ratio(5)),
        ("taker_fee_ratio", ratio(5), "takerFeeRatio", ratio(5)),
        ("price_band_ratio", 0, "priceBandRatio", 0),
        ("price_band_ratio", WAD, "priceBandRatio", WAD),
        ("heartbeat", 0, "heartbeat", 0),
        ("oi_cap", 0, "openInterestCap", 0),
        ("oi_cap", 2**127, "openInterestCap", 2**127),
        ("keeper_reward_cap", 0, "keeperRewardCap", 0),
        ("keeper_reward_cap", 2**128, "keeperRewardCap", 2**128),
    ],
)
def test_add_market_rejects_parameters_outside_bounds(system, field, value, param, reported):
    with ape.reverts(system.engine.InvalidMarketParam, param=param, value=reported):
        system.engine.addMarket(params(system, **{field: value}), sender=system.deployer)
    assert system.engine.marketCount() == 0


def test_add_market_rejects_zero_feed(system):
    with ape.reverts(system.engine.InvalidMarketParam, param="feed", value=0):
        system.engine.addMarket(params(system, feed="0x" + "00" * 20), sender=system.deployer)


def test_im_ratio_of_exactly_one_is_allowed(system):
    system.engine.addMarket(params(system, im_ratio=WAD), sender=system.deployer)
    assert system.engine.marketParams(0).imRatio == WAD


def test_add_market_is_admin_only(system, stranger):
    p = params(system)
    with ape.reverts(system.engine.AccessControlUnauthorizedAccount, account=stranger.address):
        system.engine.addMarket(p, sender=stranger)


def test_reward_and_fee_may_together_use_the_whole_maintenance_margin(system):
    # The new bound is inclusive: keeper 3 % + fee 2 % = mm 5 % lists.
    system.engine.addMarket(
        params(system, keeper_reward_ratio=ratio(3), insurance_fee_ratio=ratio(2)), sender=system.deployer
    )
    stored = system.engine.marketParams(0)
    assert (stored.keeperRewardRatio, stored.insuranceFeeRatio, stored.mmRatio) == (
        ratio(3),
        ratio(2),
        ratio(5),
    )


def test_guardian_pauses_a_market_and_everything(system, stranger):
    market = system.add_market(PRICE)
    with ape.reverts(system.engine.AccessControlUnauthorizedAccount, account=stranger.address):
        system.engine.setMarketPaused(market, True, sender=stranger)
    with ape.reverts(system.engine.AccessControlUnauthorizedAccount, account=stranger.address):
        system.engine.setGlobalPaused(True, sender=stranger)
    tx = system.engine.setMarketPaused(market, True, sender=system.deployer)
    assert system.engine.isPaused(market)
    assert [log.event_name for log in tx.events] == ["MarketPaused"]
    system.engine.setMarketPaused(market, False, sender=system.deployer)
    assert not system.engine.isPaused(market)
    system.engine.setGlobalPaused(True, sender=system.deployer)
    assert system.engine.isPaused(market)
    assert system.engine.globalPaused()


def test_unknown_market_views_revert(system):
    with ape.reverts(system.engine.UnknownMarket, marketId=3):
        system.engine.marketParams(3)
