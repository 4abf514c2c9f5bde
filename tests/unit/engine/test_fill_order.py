"""``fillOrder``: a taker fills a maker's signed order itself, with no order of its own.

Every rejection path by name, through the lockstep harness (the model predicts the chain's
custom error, and nothing moves), then the fill's numbers, and the attacks a sender might try.
"""

from __future__ import annotations

import pytest

from backstop.model import ModelRevert
from backstop.orders import make_high_s, to_tuple
from backstop.units import WAD
from tests.support.system import MarketSpec, ratio

PRICE = 2000 * WAD


@pytest.fixture
def eth(system, alice, bob):
    """Market 0 at 2,000 with alice and bob holding 10,000 tokens of margin each."""
    market = system.add_market(PRICE)
    system.deposit(alice, 10_000 * 10**6)
    system.deposit(bob, 10_000 * 10**6)
    return market


def rejected(result, name: str) -> None:
    assert isinstance(result, ModelRevert), f"expected {name}, the call succeeded"
    assert result.name == name, result


def test_the_sender_takes_the_other_side_at_the_makers_price(system, alice, bob):
    fees = MarketSpec(maker_fee_ratio=ratio("0.02"), taker_fee_ratio=ratio("0.05"))
    eth = system.add_market(PRICE, fees)
    system.deposit(alice, 10_000 * 10**6)
    system.deposit(bob, 10_000 * 10**6)
    maker = system.order(alice, eth, False, 3 * WAD, 1990 * WAD)  # alice sells 3 at 1,990
    fund_before = system.fund.totalAssets()
    tx = system.fill(maker, bob, 2 * WAD)
    assert system.engine.positionOf(bob, eth) == (2 * WAD, 3980 * WAD)
    assert system.engine.positionOf(alice, eth) == (-2 * WAD, -3980 * WAD)
    digest = system.engine.hashOrder(to_tuple(maker.order))
    assert system.engine.filledOf(digest) == 2 * WAD
    [trade] = [log for log in tx.events if log.event_name == "Trade"]
    # 3,980 of notional: the maker (alice) pays 0.02 % = 0.796, the sender (bob) 0.05 % = 1.99,
    # each in whole token units (6 decimals), rounded up: 796,000 and 1,990,000 units.
    assert (trade.makerFeeTokens, trade.takerFeeTokens) == (796_000, 1_990_000)
    assert (trade.maker, trade.taker, trade.takerOrderHash) == (alice.address, bob.address, b"\0" * 32)
    assert (trade.makerOrderHash, trade.makerIsBuy, trade.size, trade.price) == (
        digest,
        False,
        2 * WAD,
        1990 * WAD,
    )
    assert system.fund.totalAssets() - fund_before == 796_000 + 1_990_000  # the fund's credit
    assert system.vault.marginOf(bob) == 10_000 * WAD - 1_990_000 * 10**12
    assert system.vault.marginOf(alice) == 10_000 * WAD - 796_000 * 10**12
    system.check(alice, bob)


def test_a_buy_order_makes_the_sender_sell(system, eth, alice, bob):
    system.fill(system.order(alice, eth, True, WAD, 2010 * WAD), bob, WAD)
    assert system.engine.positionOf(alice, eth) == (WAD, 2010 * WAD)
    assert system.engine.positionOf(bob, eth) == (-WAD, -2010 * WAD)
    system.check(alice, bob)


def test_fill_and_match_share_the_orders_fill_record(system, eth, alice, bob, carol):
    system.deposit(carol, 10_000 * 10**6)
    maker = system.order(alice, eth, False, 3 * WAD, PRICE)
    system.match(maker, system.order(carol, eth, True, WAD, PRICE), WAD)
    system.fill(maker, bob, 2 * WAD)
    rejected(system.fill(maker, bob, 1), "OrderOverfilled")
    rejected(system.match(maker, system.order(carol, eth, True, WAD, PRICE), 1), "OrderOverfilled")
    system.check(alice, bob, carol)


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("zero", "ZeroFill"),
        ("unknown_market", "UnknownMarket"),
        ("self", "SelfTrade"),
        ("huge_fill", "ValueOutOfRange"),
        ("expired", "OrderExpired"),
        ("garbage_signature", "InvalidSignature"),
        ("high_s", "InvalidSignature"),
        ("signed_by_another", "InvalidSignature"),
        ("overfill", "OrderOverfilled"),
        ("outside_band", "PriceOutsideBand"),
        ("too_big_for_margin", "InsufficientMargin"),
    ],
)
def test_every_rejection_names_its_error_and_moves_nothing(
    system, eth, alice, bob, carol, chain, case, error
):
    market, size, price, fill, kwargs = eth, WAD, PRICE, WAD, {}
    if case == "zero":
        fill = 0
    elif case == "unknown_market":
        market = 5
    elif case == "huge_fill":
        size = fill = 2**127
    elif case == "expired":
        kwargs = {"expiry": chain.blocks.head.timestamp - 1}
    elif case == "signed_by_another":
        kwargs = {"signer": carol}
    elif case == "overfill":
        fill = 2 * WAD
    elif case == "outside_band":
        price = 2200 * WAD  # 10 % above the oracle; the default band is narrower
    elif case == "too_big_for_margin":
        size = fill = 100 * WAD  # 200,000 of notional on 10,000 of margin
    maker = system.order(alice, market, False, size, price, **kwargs)
    if case == "garbage_signature":
        maker.signature = b"\x01" * 65
    elif case == "high_s":
        maker.signature = make_high_s(maker.signature)
    taker = alice if case == "self" else bob
    rejected(system.fill(maker, taker, fill), error)
    system.check(alice, bob)


def test_paused_trading_is_rejected(system, eth, alice, bob):
    maker = system.order(alice, eth, False, WAD, PRICE)
    system.set_paused(eth, True)
    rejected(system.fill(maker, bob, WAD), "TradingPaused")
    system.set_paused(eth, False)
    system.set_global_paused(True)
    rejected(system.fill(maker, bob, WAD), "TradingPaused")
    system.set_global_paused(False)
    system.fill(maker, bob, WAD)
    system.check(alice, bob)


def test_cancelled_and_old_nonce_orders_are_rejected(system, eth, alice, bob):
    cancelled = system.order(alice, eth, False, WAD, PRICE)
    system.cancel(alice, cancelled)
    rejected(system.fill(cancelled, bob, WAD), "OrderIsCancelled")
    old = system.order(alice, eth, False, WAD, PRICE, nonce=3)
    system.raise_min_nonce(alice, 4)
    rejected(system.fill(old, bob, WAD), "NonceTooLow")
    system.check(alice, bob)


def test_a_stale_oracle_is_rejected(system, eth, alice, bob):
    maker = system.order(alice, eth, False, WAD, PRICE)
    system.advance(86_400 + 10)  # past the feed's heartbeat
    system.model.set_stale(eth, True)
    rejected(system.fill(maker, bob, WAD), "StalePrice")
    system.check(alice, bob)


def test_open_interest_cap_applies(system, alice, bob):
    market = system.add_market(PRICE, MarketSpec(oi_cap=WAD))
    system.deposit(alice, 10_000 * 10**6)
    system.deposit(bob, 10_000 * 10**6)
    rejected(
        system.fill(system.order(alice, market, False, 2 * WAD, PRICE), bob, 2 * WAD),
        "OpenInterestCapExceeded",
    )
    system.fill(system.order(alice, market, False, WAD, PRICE), bob, WAD)
    system.check(alice, bob)


def test_a_reducing_fill_needs_only_maintenance_margin(system, eth, alice, bob, carol):
    # bob opens near his initial requirement, the price falls, and he can still reduce by
    # filling a resting bid himself: the reduce-only rule applies to the sender too.
    system.deposit(carol, 100_000 * 10**6)
    system.fill(system.order(alice, eth, False, 45 * WAD, PRICE), bob, 45 * WAD)  # 90,000 notional
    system.set_price(eth, 1900 * WAD)
    assert system.engine.equityOf(bob) < system.engine.initialMarginOf(bob)
    system.fill(system.order(carol, eth, True, 10 * WAD, 1900 * WAD), bob, 10 * WAD)
    assert system.engine.positionOf(bob, eth)[0] == 35 * WAD
    system.check(alice, bob, carol)


# --- attacks ---------------------------------------------------------------------------------


def test_a_sender_cannot_trade_for_someone_else(system, eth, alice, bob, carol):
    """The taker is always the sender: carol filling alice's order opens carol's position, never
    bob's, whatever order bob signed."""
    system.deposit(carol, 10_000 * 10**6)
    system.order(bob, eth, True, WAD, PRICE)  # bob's bid, never submitted
    system.fill(system.order(alice, eth, False, WAD, PRICE), carol, WAD)
    assert system.engine.positionOf(bob, eth) == (0, 0)
    assert system.engine.positionOf(carol, eth) == (WAD, PRICE)
    system.check(alice, bob, carol)


def test_a_sender_cannot_improve_on_the_makers_price_or_replay_a_fill(system, eth, alice, bob):
    maker = system.order(alice, eth, False, WAD, 1990 * WAD)
    system.fill(maker, bob, WAD)
    assert system.engine.positionOf(bob, eth) == (WAD, 1990 * WAD)
    rejected(system.fill(maker, bob, WAD), "OrderOverfilled")
    system.check(alice, bob)


def test_a_flat_sender_without_margin_cannot_open(system, eth, alice, dave):
    rejected(system.fill(system.order(alice, eth, False, WAD, PRICE), dave, WAD), "InsufficientMargin")
    system.check(alice, dave)
