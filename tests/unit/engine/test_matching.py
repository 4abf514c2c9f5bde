"""Signed-order matching: every rejection path by name, partial fills, cancellation, fees.

Each case runs through the lockstep harness: the reference model must predict the same custom
error as the chain, and afterwards every observable still equals the model's (nothing moved).
"""

from __future__ import annotations

import pytest

from backstop.model import ModelRevert
from backstop.orders import make_high_s
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
    assert result.name == name


def test_match_fills_both_orders_at_the_makers_price(system, eth, alice, bob):
    maker = system.order(alice, eth, False, 2 * WAD, 1990 * WAD)  # alice sells at 1,990
    taker = system.order(bob, eth, True, 2 * WAD, 2010 * WAD)  # bob would pay up to 2,010
    tx = system.match(maker, taker, 2 * WAD)
    assert system.engine.positionOf(bob, eth) == (2 * WAD, 3980 * WAD)
    assert system.engine.positionOf(alice, eth) == (-2 * WAD, -3980 * WAD)
    [trade] = [log for log in tx.events if log.event_name == "Trade"]
    assert (trade.maker, trade.taker, trade.price, trade.size) == (
        alice.address,
        bob.address,
        1990 * WAD,
        2 * WAD,
    )
    system.check(alice, bob)


def test_partial_fills_are_tracked_per_order_hash(system, eth, alice, bob, carol):
    system.deposit(carol, 10_000 * 10**6)
    maker = system.order(alice, eth, False, 3 * WAD, PRICE)
    system.match(maker, system.order(bob, eth, True, WAD, PRICE), WAD)
    system.match(maker, system.order(carol, eth, True, 2 * WAD, PRICE), 2 * WAD)
    digest = system.engine.hashOrder(tuple(_t(maker)))
    assert system.engine.filledOf(digest) == 3 * WAD
    rejected(system.match(maker, system.order(bob, eth, True, WAD, PRICE), 1), "OrderOverfilled")
    system.check(alice, bob, carol)


def _t(signed):
    from backstop.orders import to_tuple

    return to_tuple(signed.order)


def test_replayed_match_is_rejected(system, eth, alice, bob):
    maker = system.order(alice, eth, False, WAD, PRICE)
    taker = system.order(bob, eth, True, WAD, PRICE)
    system.match(maker, taker, WAD)
    rejected(system.match(maker, taker, WAD), "OrderOverfilled")
    system.check(alice, bob)


def test_fill_larger_than_the_order_is_rejected(system, eth, alice, bob):
    maker = system.order(alice, eth, False, WAD, PRICE)
    taker = system.order(bob, eth, True, 2 * WAD, PRICE)
    rejected(system.match(maker, taker, 2 * WAD), "OrderOverfilled")
    system.check(alice, bob)


def test_zero_fill_is_rejected(system, eth, alice, bob):
    rejected(
        system.match(
            system.order(alice, eth, False, WAD, PRICE), system.order(bob, eth, True, WAD, PRICE), 0
        ),
        "ZeroFill",
    )


def test_garbage_signature_is_rejected(system, eth, alice, bob):
    maker = system.order(alice, eth, False, WAD, PRICE)
    maker.signature = b"\x01" * 65
    rejected(system.match(maker, system.order(bob, eth, True, WAD, PRICE), WAD), "InvalidSignature")
    system.check(alice, bob)


def test_short_signature_is_rejected(system, eth, alice, bob):
    taker = system.order(bob, eth, True, WAD, PRICE)
    taker.signature = taker.signature[:64]
    rejected(system.match(system.order(alice, eth, False, WAD, PRICE), taker, WAD), "InvalidSignature")


def test_order_signed_by_someone_else_is_rejected(system, eth, alice, bob, carol):
    forged = system.order(alice, eth, False, WAD, PRICE, signer=carol)
    rejected(system.match(forged, system.order(bob, eth, True, WAD, PRICE), WAD), "InvalidSignature")
    system.check(alice, bob)


def test_high_s_signature_is_rejected(system, eth, alice, bob):
    maker = system.order(alice, eth, False, WAD, PRICE)
    maker.signature = make_high_s(maker.signature)
    rejected(system.match(maker, system.order(bob, eth, True, WAD, PRICE), WAD), "InvalidSignature")


def test_signature_for_another_engine_is_rejected(system, eth, alice, bob):
    """Replay across contracts: the EIP-712 domain binds the engine address."""
    from backstop.orders import sign_order

    maker = system.order(alice, eth, False, WAD, PRICE)
    maker.signature = sign_order(maker.order, alice.private_key, system.chain_id, system.vault.address)
    rejected(system.match(maker, system.order(bob, eth, True, WAD, PRICE), WAD), "InvalidSignature")


def test_signature_for_another_chain_is_rejected(system, eth, alice, bob):
    from backstop.orders import sign_order

    maker = system.order(alice, eth, False, WAD, PRICE)
    maker.signature = sign_order(maker.order, alice.private_key, system.chain_id + 1, system.engine.address)
    rejected(system.match(maker, system.order(bob, eth, True, WAD, PRICE), WAD), "InvalidSignature")


def test_expired_order_is_rejected(system, eth, alice, bob, chain):
    expired = system.order(alice, eth, False, WAD, PRICE, expiry=chain.blocks.head.timestamp - 1)
    rejected(system.match(expired, system.order(bob, eth, True, WAD, PRICE), WAD), "OrderExpired")
    system.check(alice, bob)


def test_cancelled_order_is_rejected(system, eth, alice, bob):
    maker = system.order(alice, eth, False, 2 * WAD, PRICE)
    system.match(maker, system.order(bob, eth, True, WAD, PRICE), WAD)
    system.cancel(alice, maker)
    rejected(system.match(maker, system.order(bob, eth, True, WAD, PRICE), WAD), "OrderIsCancelled")
    system.check(alice, bob)


def test_cancelling_someone_elses_hash_has_no_effect(system, eth, alice, bob):
    maker = system.order(alice, eth, False, WAD, PRICE)
    system.cancel(bob, maker)  # bob cancels alice's hash: keyed by bob, so alice's order stands
    system.match(maker, system.order(bob, eth, True, WAD, PRICE), WAD)
    system.check(alice, bob)


def test_orders_below_the_minimum_nonce_are_rejected(system, eth, alice, bob):
    old = system.order(alice, eth, False, WAD, PRICE, nonce=3)
    system.raise_min_nonce(alice, 4)
    rejected(system.match(old, system.order(bob, eth, True, WAD, PRICE), WAD), "NonceTooLow")
    system.match(
        system.order(alice, eth, False, WAD, PRICE, nonce=4), system.order(bob, eth, True, WAD, PRICE), WAD
    )
    rejected(system.raise_min_nonce(alice, 4), "NonceNotIncreasing")
    system.check(alice, bob)


def test_same_side_orders_are_rejected(system, eth, alice, bob):
    rejected(
        system.match(
            system.order(alice, eth, True, WAD, PRICE), system.order(bob, eth, True, WAD, PRICE), WAD
        ),
        "SameSide",
    )


def test_self_trade_is_rejected(system, eth, alice):
    rejected(
        system.match(
            system.order(alice, eth, False, WAD, PRICE), system.order(alice, eth, True, WAD, PRICE), WAD
        ),
        "SelfTrade",
    )


def test_orders_on_different_markets_are_rejected(system, eth, alice, bob):
    btc = system.add_market(30_000 * WAD)
    result = system.match(
        system.order(alice, eth, False, WAD, PRICE), system.order(bob, btc, True, WAD, 30_000 * WAD), WAD
    )
    rejected(result, "MarketMismatch")


def test_unknown_market_is_rejected(system, eth, alice, bob):
    rejected(
        system.match(system.order(alice, 5, False, WAD, PRICE), system.order(bob, 5, True, WAD, PRICE), WAD),
        "UnknownMarket",
    )


def test_incompatible_prices_are_rejected(system, eth, alice, bob):
    maker = system.order(alice, eth, False, WAD, 2010 * WAD)  # asks 2,010
    taker = system.order(bob, eth, True, WAD, 2000 * WAD)  # bids 2,000
    rejected(system.match(maker, taker, WAD), "PriceIncompatible")
    maker = system.order(alice, eth, True, WAD, 1990 * WAD)  # bids 1,990 as maker
    taker = system.order(bob, eth, False, WAD, 2000 * WAD)  # asks 2,000
    rejected(system.match(maker, taker, WAD), "PriceIncompatible")
    system.check(alice, bob)


def test_price_at_the_band_edge_is_accepted_and_beyond_it_rejected(system, eth, alice, bob):
    # 5 % band around 2,000: [1,900, 2,100], inclusive.
    system.match(
        system.order(alice, eth, False, WAD, 2100 * WAD), system.order(bob, eth, True, WAD, 2100 * WAD), WAD
    )
    over = system.order(alice, eth, False, WAD, 2100 * WAD + 1)
    rejected(system.match(over, system.order(bob, eth, True, WAD, 2101 * WAD), WAD), "PriceOutsideBand")
    under = system.order(alice, eth, True, WAD, 1900 * WAD - 1)
    rejected(system.match(under, system.order(bob, eth, False, WAD, 1899 * WAD), WAD), "PriceOutsideBand")
    system.check(alice, bob)


def test_stale_oracle_blocks_trading(system, eth, alice, bob, chain):
    updated = system.feeds[eth].updatedAt()
    chain.mine(timestamp=updated + 86_400 + 10)
    system.model.set_stale(eth, True)
    rejected(
        system.match(
            system.order(alice, eth, False, WAD, PRICE), system.order(bob, eth, True, WAD, PRICE), WAD
        ),
        "StalePrice",
    )


def test_paused_market_and_global_pause_block_trading(system, eth, alice, bob):
    system.set_paused(eth, True)
    rejected(
        system.match(
            system.order(alice, eth, False, WAD, PRICE), system.order(bob, eth, True, WAD, PRICE), WAD
        ),
        "TradingPaused",
    )
    system.set_paused(eth, False)
    system.set_global_paused(True)
    rejected(
        system.match(
            system.order(alice, eth, False, WAD, PRICE), system.order(bob, eth, True, WAD, PRICE), WAD
        ),
        "TradingPaused",
    )
    system.set_global_paused(False)
    system.match(system.order(alice, eth, False, WAD, PRICE), system.order(bob, eth, True, WAD, PRICE), WAD)
    system.check(alice, bob)


def test_initial_margin_not_met_is_rejected(system, alice, bob, carol):
    market = system.add_market(PRICE)
    system.deposit(alice, 10_000 * 10**6)
    system.deposit(carol, 199_999_999)  # IM of 1 ETH at 2,000 and 10 % is 200 tokens
    result = system.match(
        system.order(alice, market, False, WAD, PRICE), system.order(carol, market, True, WAD, PRICE), WAD
    )
    rejected(result, "InsufficientMargin")
    system.deposit(carol, 1)  # exactly the requirement: inclusive bound
    system.match(
        system.order(alice, market, False, WAD, PRICE), system.order(carol, market, True, WAD, PRICE), WAD
    )
    assert system.engine.equityOf(carol) == system.engine.initialMarginOf(carol) == 200 * WAD
    system.check(alice, carol)


class TestReduceOnlyException:
    """Market with IM 4 %, MM 2 %, band 5 %: alice long 1 at 2,000 on 100 tokens, then the price
    falls to 1,960: E = 60, IMR = 78.4, MMR = 39.2, buffer E − MMR = 20.8."""

    @pytest.fixture
    def setup(self, system, alice, bob):
        market = system.add_market(
            PRICE,
            MarketSpec(
                im_ratio=ratio(4),
                mm_ratio=ratio(2),
                keeper_reward_ratio=ratio(1),
                insurance_fee_ratio=ratio(1),
            ),
        )
        system.deposit(alice, 100 * 10**6)
        system.deposit(bob, 10_000 * 10**6)
        system.trade(alice, bob, market, WAD, PRICE)
        system.set_price(market, 1960 * WAD)
        assert system.engine.equityOf(alice) == 60 * WAD
        return market

    def test_reducing_under_im_is_allowed_when_the_buffer_grows(self, system, setup, alice, bob):
        # Sell 0.1 at 1,960: E stays 60, IMR 70.56 > E, MMR 35.28, buffer 24.72 ≥ 20.8.
        system.match(
            system.order(bob, setup, True, WAD // 10, 1960 * WAD),
            system.order(alice, setup, False, WAD // 10, 1960 * WAD),
            WAD // 10,
        )
        assert system.engine.equityOf(alice) < system.engine.initialMarginOf(alice)
        system.check(alice, bob)

    def test_reducing_is_rejected_when_the_buffer_shrinks(self, system, setup, alice, bob):
        # Sell 0.1 at 1,900 (inside the band): E = 54, MMR = 35.28, buffer 18.72 < 20.8.
        result = system.match(
            system.order(bob, setup, True, WAD // 10, 1900 * WAD),
            system.order(alice, setup, False, WAD // 10, 1900 * WAD),
            WAD // 10,
        )
        rejected(result, "InsufficientMargin")
        system.check(alice, bob)

    def test_flipping_under_im_is_not_a_reduction(self, system, setup, alice, bob):
        result = system.match(
            system.order(bob, setup, True, 2 * WAD, 1960 * WAD),
            system.order(alice, setup, False, 2 * WAD, 1960 * WAD),
            2 * WAD,
        )
        rejected(result, "InsufficientMargin")
        system.check(alice, bob)

    def test_closing_under_im_is_allowed(self, system, setup, alice, bob):
        system.match(
            system.order(bob, setup, True, WAD, 1960 * WAD),
            system.order(alice, setup, False, WAD, 1960 * WAD),
            WAD,
        )
        assert system.engine.positionOf(alice, setup) == (0, 0)
        assert system.vault.marginOf(alice) == 60 * WAD
        system.check(alice, bob)


def test_open_interest_cap_blocks_increases_but_not_reductions(system, alice, bob, carol):
    market = system.add_market(PRICE, MarketSpec(oi_cap=WAD))
    for who in (alice, bob, carol):
        system.deposit(who, 10_000 * 10**6)
    system.trade(alice, bob, market, WAD, PRICE)  # alice long 1, bob short 1: OI = 1, at the cap
    # Carol selling to alice would lengthen alice and open a short: OI 1.5 > cap.
    rejected(
        system.match(
            system.order(carol, market, False, WAD // 2, PRICE),
            system.order(alice, market, True, WAD // 2, PRICE),
            WAD // 2,
        ),
        "OpenInterestCapExceeded",
    )
    # Carol selling to bob only shortens bob's short while carol goes short: OI unchanged, allowed.
    system.trade(bob, carol, market, WAD // 4, PRICE)
    # Alice sells half her long to carol, who flips to long 0.25: OI = 0.5 + 0.25.
    system.trade(carol, alice, market, WAD // 2, PRICE)
    assert system.engine.openInterestOf(market) == WAD // 2 + WAD // 4
    system.check(alice, bob, carol)


def test_a_ninth_market_is_rejected(system, alice, bob):
    markets = [system.add_market(PRICE) for _ in range(9)]
    system.deposit(alice, 100_000 * 10**6)
    system.deposit(bob, 100_000 * 10**6)
    for m in markets[:8]:
        system.trade(alice, bob, m, WAD, PRICE)
    assert len(system.engine.marketsOf(alice)) == 8
    rejected(
        system.match(
            system.order(alice, markets[8], False, WAD, PRICE),
            system.order(bob, markets[8], True, WAD, PRICE),
            WAD,
        ),
        "TooManyMarkets",
    )
    # Closing one frees a slot.
    system.trade(bob, alice, markets[2], WAD, PRICE)
    system.trade(alice, bob, markets[8], WAD, PRICE, maker="buyer")
    assert list(system.engine.marketsOf(alice)) == [0, 1, 3, 4, 5, 6, 7, 8]
    system.check(alice, bob)


def test_fees_are_charged_in_whole_token_units_to_the_fund(system, alice, bob):
    market = system.add_market(
        PRICE, MarketSpec(maker_fee_ratio=ratio("0.02"), taker_fee_ratio=ratio("0.05"))
    )
    system.deposit(alice, 10_000 * 10**6)
    system.deposit(bob, 10_000 * 10**6)
    # Notional 0.333333333333333333 ETH × 2,000 = 666.666666666666666 (rounded up to the wei);
    # maker 0.02 % = 0.13333… → 133,334 units; taker 0.05 % = 0.33333… → 333,334 units.
    size = 333_333_333_333_333_333
    tx = system.match(
        system.order(alice, market, False, size, PRICE), system.order(bob, market, True, size, PRICE), size
    )
    [trade] = [log for log in tx.events if log.event_name == "Trade"]
    assert (trade.makerFeeTokens, trade.takerFeeTokens) == (133_334, 333_334)
    # Booked to the fund's credit in the vault (no transfer); the fund's assets count it at once.
    assert system.vault.fundCredit() == system.fund.totalAssets() == 133_334 + 333_334
    assert system.token.balanceOf(system.fund) == 0
    system.check(alice, bob)


def test_a_ninth_market_is_rejected_before_the_margin_check(system, alice, bob):
    """Both conditions hold: the market-slot check fires while the fill is applied, first."""
    markets = [system.add_market(PRICE) for _ in range(9)]
    system.deposit(alice, 1_700 * 10**6)  # 8 × 200 of IM, not enough for a ninth position
    system.deposit(bob, 100_000 * 10**6)
    for m in markets[:8]:
        system.trade(alice, bob, m, WAD, PRICE)
    result = system.match(
        system.order(alice, markets[8], False, WAD, PRICE),
        system.order(bob, markets[8], True, WAD, PRICE),
        WAD,
    )
    rejected(result, "TooManyMarkets")
