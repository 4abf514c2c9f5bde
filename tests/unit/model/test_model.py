# Pure Python, no chain. Run without the Ape plugin (its entry point is named `ape_test`):
#   .venv/bin/python -m pytest tests/unit/model -p no:ape_test -q
"""The exact-integer reference model (backstop.model): hand-computed examples and properties.

Every number below is worked out by hand from docs/margin-math.md. Unless a test says otherwise:
a 6-decimal token (SCALE = 1e12), market 0 at price 100 with IM 10 %, MM 5 %, band 10 %, no fees.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backstop.model import (
    LONG,
    MAX_VALUE,
    SHORT,
    MarketParams,
    Model,
    ModelRevert,
    mul_wad_down,
)
from backstop.orders import FAR_EXPIRY, Order
from backstop.units import to_units, to_wad

ALICE = "0x00000000000000000000000000000000000A11CE"
BOB = "0x0000000000000000000000000000000000000B0B"
CAROL = "0x000000000000000000000000000000000000CA01"
DAVE = "0x000000000000000000000000000000000000DA7E"
_nonces = itertools.count()


def W(value: int | str) -> int:
    return to_wad(value)


def tokens(value: int | str) -> int:
    return to_units(value, 6)


def params(**overrides: int) -> MarketParams:
    base = {
        "im_ratio": W("0.1"),
        "mm_ratio": W("0.05"),
        "keeper_reward_ratio": W("0.01"),
        "insurance_fee_ratio": W("0.01"),
        "price_band_ratio": W("0.1"),
        "maker_fee_ratio": 0,
        "taker_fee_ratio": 0,
        "oi_cap": W(1_000_000),
    }
    base.update(overrides)
    return MarketParams(**base)


def make_model(decimals: int = 6, price: int | None = None, **deposits: int) -> Model:
    """One market (id 0) at ``price`` (default 100); ``deposits`` in whole tokens by name."""
    model = Model(decimals)
    model.add_market(params(), W(100) if price is None else price)
    for name, amount in deposits.items():
        model.deposit(globals()[name.upper()], amount * 10**decimals)
    return model


def orders(maker: str, taker: str, market: int, maker_buys: bool, q: int, price: int) -> tuple[Order, Order]:
    nonce = next(_nonces)
    return (
        Order(maker, market, maker_buys, q, price, nonce, FAR_EXPIRY),
        Order(taker, market, not maker_buys, q, price, nonce, FAR_EXPIRY),
    )


def trade(
    model: Model, buyer: str, seller: str, q: int, price: int, market: int = 0, maker: str = "buyer"
) -> None:
    """``buyer`` buys ``q`` from ``seller`` at ``price`` (the maker's limit); signatures valid."""
    if maker == "buyer":
        mk, tk = orders(buyer, seller, market, True, q, price)
    else:
        mk, tk = orders(seller, buyer, market, False, q, price)
    model.match(mk, True, tk, True, q)


def state(model: Model) -> dict[str, Any]:
    return copy.deepcopy(model.__dict__)


def reverts(model: Model, name: str, fn: Callable[..., Any], *args: Any) -> ModelRevert:
    """Calls ``fn`` expecting ``ModelRevert(name)`` and checks that the model did not change at all."""
    before = state(model)
    with pytest.raises(ModelRevert) as info:
        fn(*args)
    assert info.value.name == name, str(info.value)
    assert model.__dict__ == before, "a reverting call changed the model"
    return info.value


def assert_zero_sum(model: Model) -> None:
    for m in range(len(model.markets)):
        sizes = [model.position(a, m)[0] for a in model.accounts]
        assert sum(sizes) == 0
        assert (
            model.open_interest(m) == sum(s for s in sizes if s > 0) == model.markets[m].open_interest[SHORT]
        )


# --- positions ------------------------------------------------------------------------------------


def test_increase_adds_size_and_cost_basis():
    model = make_model(alice=1_000, bob=10_000)
    trade(model, ALICE, BOB, W(1), W(100))
    assert model.position(ALICE, 0) == (W(1), W(100))
    assert model.position(BOB, 0) == (W(-1), W(-100))

    model.set_price(0, W(105))
    trade(model, ALICE, BOB, W("0.5"), W(105))
    assert model.position(ALICE, 0) == (W("1.5"), W("152.5"))
    assert model.position(BOB, 0) == (W("-1.5"), W("-152.5"))
    assert model.margin(ALICE) == W(1_000) and model.margin(BOB) == W(10_000)  # nothing realized
    assert model.open_interest(0) == W("1.5")
    assert model.markets_of(ALICE) == [0]

    # At 105: u = 157.5 - 152.5 = 5; N = 157.5; IMR = 15.75; MMR = 7.875; F = min(1000, 1005) - 15.75.
    assert model.equity(ALICE) == W(1_005)
    assert model.initial_margin(ALICE) == W("15.75")
    assert model.maintenance_margin(ALICE) == W("7.875")
    assert model.free_collateral(ALICE) == W("984.25")
    assert model.equity(BOB) == W(9_995)
    assert model.solvency()["dust"] == 0


def test_partial_reduce_realizes_pro_rata_with_ceil_basis():
    model = make_model(alice=100, bob=100)
    one = model.add_market(params(), W(1))
    trade(model, ALICE, BOB, W(1), W(1) + 1, market=one)  # costs 1e18 + 1 (exact)
    trade(model, ALICE, BOB, W(2), W(1), market=one)
    assert model.position(ALICE, one) == (W(3), W(3) + 1)
    assert model.position(BOB, one) == (W(-3), W(-3) - 1)

    model.set_price(one, W("1.1"))
    trade(model, BOB, ALICE, W(1), W("1.1"), market=one)
    # Alice (long): c = -1.1e18; k = ceil((3e18 + 1) / 3) = 1e18 + 1; r = 1.1e18 - (1e18 + 1).
    assert model.position(ALICE, one) == (W(2), W(2))
    assert model.margin(ALICE) == W(100) + W("0.1") - 1
    # Bob (short): c = 1.1e18; k = ceil(-(3e18 + 1) / 3) = -1e18 (toward +inf); r = -1.1e18 + 1e18.
    assert model.position(BOB, one) == (W(-2), W(-2) - 1)
    assert model.margin(BOB) == W(100) - W("0.1")
    # The ceil moves value between margin and basis of one account: no dust.
    assert model.solvency()["dust"] == 0
    assert_zero_sum(model)


def test_close_realizes_everything_and_drops_the_market():
    model = make_model(alice=1_000, bob=10_000)
    trade(model, ALICE, BOB, W(2), W(100))
    model.set_price(0, W(90))
    trade(model, BOB, ALICE, W(2), W(90))  # Bob makes the buy, Alice sells to close
    assert model.position(ALICE, 0) == (0, 0) and model.position(BOB, 0) == (0, 0)
    assert model.margin(ALICE) == W(980) and model.margin(BOB) == W(10_020)
    assert model.markets_of(ALICE) == [] and model.markets_of(BOB) == []
    assert model.open_interest(0) == 0
    # A flat account needs no price: equity = free collateral = margin even with a stale oracle.
    model.set_stale(0, True)
    assert model.equity(ALICE) == model.free_collateral(ALICE) == W(980)
    assert model.initial_margin(ALICE) == model.maintenance_margin(ALICE) == 0


def test_flip_closes_then_opens_the_rest_from_zero():
    model = make_model(alice=1_000, bob=10_000, carol=10_000)
    trade(model, ALICE, BOB, W(1), W(100))
    model.set_price(0, W(110))
    trade(model, CAROL, ALICE, W(3), W(110))  # Alice sells 3 while long 1
    # Close 1: c1 = -110, r = 110 - 100 = 10; open -2 from zero: N = ceil(-2 * 110) = -220.
    assert model.position(ALICE, 0) == (W(-2), W(-220))
    assert model.margin(ALICE) == W(1_010)
    assert model.position(CAROL, 0) == (W(3), W(330))
    assert model.position(BOB, 0) == (W(-1), W(-100))
    assert model.open_interest(0) == W(3)
    assert model.markets_of(ALICE) == [0]
    assert_zero_sum(model)


def test_rounding_of_fill_costs_is_against_each_party_and_leaves_wei_dust():
    model = make_model(alice=1_000, bob=1_000, carol=1_000, price=W("1.5"))
    trade(model, ALICE, BOB, 1, W("1.5"))  # 1 wei at 1.5: buyer pays ceil(1.5) = 2, seller gets 1
    assert model.position(ALICE, 0) == (1, 2)
    assert model.position(BOB, 0) == (-1, -1)
    assert model.solvency()["dust"] == 1

    trade(model, CAROL, ALICE, 2, W("1.5"))  # Alice flips: close -1 (c1 = -1), open -1 (c2 = -1)
    assert model.position(ALICE, 0) == (-1, -1)
    assert model.margin(ALICE) == W(1_000) - 1  # r = -c1 - N = 1 - 2
    assert model.position(CAROL, 0) == (2, 3)  # ceil(3) = 3
    assert model.solvency()["dust"] == 2
    assert_zero_sum(model)


# --- fees -----------------------------------------------------------------------------------------


def test_fees_are_whole_token_units_rounded_up():
    model = Model(6)
    model.add_market(params(maker_fee_ratio=W("0.000001"), taker_fee_ratio=W("0.000002")), W("1.5"))
    model.deposit(ALICE, tokens(1_000))
    model.deposit(BOB, tokens(1_000))
    trade(model, ALICE, BOB, W(1), W("1.5"))  # Alice makes
    # Notional 1.5; maker fee 1.5e12 WAD = 0.0000015 token -> 2 units; taker fee 3e12 -> 3 units.
    assert model.margin(ALICE) == W(1_000) - 2 * 10**12
    assert model.margin(BOB) == W(1_000) - 3 * 10**12
    # Booked to the fund's credit in the vault, not transferred: the fund's assets count it.
    assert (model.fund_credit, model.fund_tokens, model.fund_assets()) == (5, 0, 5)
    assert model.vault_tokens == tokens(2_000)
    assert model.solvency()["dust"] == 0
    assert model.sweep_to_fund() == 5  # anyone: the credit moves, nothing else
    assert (model.fund_credit, model.fund_tokens, model.fund_assets()) == (0, 5, 5)
    assert model.vault_tokens == tokens(2_000) - 5
    assert model.solvency()["dust"] == 0
    with pytest.raises(ModelRevert, match="NothingToSweep"):
        model.sweep_to_fund()


def test_withdrawals_and_fees_never_take_the_funds_credit():
    """The vault's own part is its balance less the fund's credit: a withdrawal or a fee beyond it
    reverts InsufficientVaultTokens, so the vault always holds the credit."""
    model = Model(6)
    model.add_market(params(maker_fee_ratio=W("0.001"), taker_fee_ratio=W("0.001")), W(100))
    model.deposit(ALICE, tokens(1_000))
    model.deposit(BOB, tokens(1_000))
    trade(model, ALICE, BOB, W(10), W(100))  # notional 1,000: fees of 1 token each
    assert model.fund_credit == tokens(2)
    model.vault_tokens -= tokens(1_500)  # as if a winner had been paid out of the losers' margin
    with pytest.raises(ModelRevert) as err:
        model.withdraw(ALICE, tokens(499))  # free (899) but beyond the vault's own 498
    assert (err.value.name, err.value.args) == ("InsufficientVaultTokens", (tokens(498), tokens(499)))
    model.withdraw(ALICE, tokens(498))
    assert model.vault_tokens == model.fund_credit == tokens(2)
    with pytest.raises(ModelRevert) as err:  # the next fees would have nothing to come out of
        trade(model, ALICE, BOB, W(1), W(100))
    assert (err.value.name, err.value.args) == ("InsufficientVaultTokens", (0, 2 * 10**5))


def test_fee_on_a_one_wei_fill_is_one_token_unit():
    model = Model(6)
    model.add_market(params(maker_fee_ratio=W("0.000001"), taker_fee_ratio=W("0.000001")), W("1.5"))
    model.deposit(ALICE, tokens(1))
    model.deposit(BOB, tokens(1))
    trade(model, ALICE, BOB, 1, W("1.5"))  # notional mulWadUp(1, 1.5e18) = 2 wei, fee 1 wei -> 1 unit
    assert model.margin(ALICE) == model.margin(BOB) == W(1) - 10**12
    assert model.fund_assets() == 2


def test_fees_with_an_eighteen_decimal_token_are_exact():
    model = Model(18)
    model.add_market(params(maker_fee_ratio=W("0.000001"), taker_fee_ratio=W("0.000002")), W("1.5"))
    model.deposit(ALICE, W(1_000))
    model.deposit(BOB, W(1_000))
    trade(model, ALICE, BOB, W(1), W("1.5"))
    assert model.fund_assets() == 15 * 10**11 + 3 * 10**12
    assert model.margin(ALICE) == W(1_000) - 15 * 10**11


# --- the reduce-only exception --------------------------------------------------------------------


@pytest.fixture
def underwater() -> Model:
    """Alice: 100 margin, long 10 @ 100, price now 95: E = 50, IMR = 95, MMR = 47.5, buffer 2.5."""
    model = make_model(alice=100, bob=10_000)
    trade(model, ALICE, BOB, W(10), W(100), maker="seller")  # E = IMR = 100: inclusive, accepted
    model.set_price(0, W(95))
    assert model.equity(ALICE) == W(50)
    assert model.initial_margin(ALICE) == W(95)
    assert model.maintenance_margin(ALICE) == W("47.5")
    return model


def test_reducing_fill_below_im_accepted_when_buffer_grows(underwater):
    trade(underwater, BOB, ALICE, W(1), W(95))
    # r = 95 - 100 = -5; (9, 900); E = 95 + 855 - 900 = 50 < IMR 85.5 but >= MMR 42.75, buffer 7.25.
    assert underwater.position(ALICE, 0) == (W(9), W(900))
    assert underwater.margin(ALICE) == W(95)
    assert underwater.equity(ALICE) == W(50)
    assert underwater.maintenance_margin(ALICE) == W("42.75")


def test_reducing_fill_accepted_when_buffer_exactly_unchanged(underwater):
    # Selling 1 at x: E = x - 45, MMR = 42.75, buffer = x - 87.75 >= 2.5  <=>  x >= 90.25.
    reverts(underwater, "InsufficientMargin", trade, underwater, BOB, ALICE, W(1), W("90.25") - 1)
    trade(underwater, BOB, ALICE, W(1), W("90.25"))
    assert underwater.equity(ALICE) - underwater.maintenance_margin(ALICE) == W("2.5")


def test_reducing_fill_rejected_when_buffer_would_drop(underwater):
    err = reverts(underwater, "InsufficientMargin", trade, underwater, BOB, ALICE, W(1), W(90))
    # r = -10; E = 90 + 855 - 900 = 45 >= MMR 42.75, but buffer 2.25 < 2.5.
    assert err.args == (ALICE, W(45), W("85.5"))


def test_reducing_fill_rejected_below_maintenance_even_if_buffer_improves(underwater):
    underwater.set_price(0, W(94))  # E = 40 < MMR = 47: buffer -7
    err = reverts(underwater, "InsufficientMargin", trade, underwater, BOB, ALICE, W(1), W(94))
    # After: E = 94 + 846 - 900 = 40, MMR = 42.3: buffer -2.3 is better, but E < MMR.
    assert err.args == (ALICE, W(40), W("84.6"))


def test_increasing_fill_below_im_rejected(underwater):
    reverts(underwater, "InsufficientMargin", trade, underwater, ALICE, BOB, W("0.1"), W(95))


# --- withdrawals ----------------------------------------------------------------------------------


@pytest.fixture
def long10() -> Model:
    """Alice: 200 margin, long 10 @ 100 (IMR 100 at 100)."""
    model = make_model(alice=200, bob=10_000)
    trade(model, ALICE, BOB, W(10), W(100))
    return model


def test_unrealized_profit_is_never_withdrawable(long10):
    long10.set_price(0, W(110))
    # u = +100, E = 300, IMR = 110: F = min(200, 300) - 110 = 90, not 190.
    assert long10.equity(ALICE) == W(300)
    assert long10.free_collateral(ALICE) == W(90)
    err = reverts(long10, "InsufficientFreeCollateral", long10.withdraw, ALICE, tokens("90.000001"))
    assert err.args == (ALICE, W("90.000001"), W(90))
    vault = long10.vault_tokens
    long10.withdraw(ALICE, tokens(90))  # inclusive bound
    assert long10.margin(ALICE) == W(110)
    assert long10.vault_tokens == vault - tokens(90)
    assert long10.free_collateral(ALICE) == 0


def test_unrealized_loss_reduces_what_is_withdrawable(long10):
    long10.set_price(0, W(95))
    # u = -50, E = 150, IMR = 95: F = min(200, 150) - 95 = 55.
    assert long10.free_collateral(ALICE) == W(55)
    reverts(long10, "InsufficientFreeCollateral", long10.withdraw, ALICE, tokens(55) + 1)
    long10.withdraw(ALICE, tokens(55))
    assert long10.margin(ALICE) == W(145)


def test_withdraw_settles_pending_loss_first_and_a_revert_undoes_it(long10):
    long10.bump_loss_index(0, LONG, W("0.1"))
    assert long10.pending_loss(ALICE) == W(1)  # 10 x 0.1
    assert long10.pending_loss(BOB) == 0  # the short side is not charged
    # E = 200 - 1 + 0 = 199, IMR = 100: F = min(199, 199) - 100 = 99.
    assert long10.free_collateral(ALICE) == W(99)
    reverts(long10, "InsufficientFreeCollateral", long10.withdraw, ALICE, tokens(100))
    assert long10.pending_loss(ALICE) == W(1) and long10.margin(ALICE) == W(200)
    long10.withdraw(ALICE, tokens(99))
    assert long10.pending_loss(ALICE) == 0
    assert long10.margin(ALICE) == W(200) - W(1) - W(99)


def test_solvency_is_o1_and_a_bump_moves_only_the_index(long10):
    # liabilities = Σ margin − Σ openNotional − unsettled_loss, no loop over positions.
    before = long10.solvency()
    assert before == {"vault_assets": W(10_200), "liabilities": W(10_200), "dust": 0}
    long10.bump_loss_index(0, LONG, W("0.1"))  # test hook: no unsettled_loss behind it
    assert long10.unsettled_loss == 0 and long10.solvency() == before
    long10.settle(ALICE)  # the settlement moves margin and unsettled_loss together
    assert long10.margin(ALICE) == W(199) and long10.unsettled_loss == -W(1)
    assert long10.solvency() == before


def test_pending_loss_rounds_up_per_position():
    model = make_model(alice=100, bob=100)
    trade(model, ALICE, BOB, 3, W(100))  # 3 wei long
    model.bump_loss_index(0, LONG, W("0.5"))  # 3 wei x 0.5 = 1.5 wei -> 2
    assert model.pending_loss(ALICE) == 2
    model.settle(ALICE)
    assert model.pending_loss(ALICE) == 0
    assert model.margin(ALICE) == W(100) - 2


def test_withdraw_needs_a_fresh_price_only_with_positions(long10):
    long10.set_stale(0, True)
    reverts(long10, "StalePrice", long10.withdraw, ALICE, tokens(1))
    long10.deposit(CAROL, tokens(5))
    long10.set_global_paused(True)
    long10.set_paused(0, True)
    long10.withdraw(CAROL, tokens(5))  # no position: all of it, stale and paused
    assert long10.margin(CAROL) == 0


def test_zero_amounts_revert():
    model = make_model(alice=1)
    reverts(model, "ZeroAmount", model.deposit, ALICE, 0)
    reverts(model, "ZeroAmount", model.withdraw, ALICE, 0)


def test_deposit_does_not_touch(long10):
    long10.bump_loss_index(0, LONG, W("0.1"))
    long10.deposit(ALICE, tokens(1))
    assert long10.pending_loss(ALICE) == W(1)
    assert long10.margin(ALICE) == W(201)


# --- open interest and the market list ------------------------------------------------------------


def test_open_interest_cap_is_inclusive_and_only_blocks_raising_fills():
    model = make_model(alice=10_000, bob=10_000, carol=10_000, dave=10_000)
    model.set_params(0, params(oi_cap=W(5)))
    trade(model, ALICE, BOB, W(5), W(100))  # OI = 5 = cap
    err = reverts(model, "OpenInterestCapExceeded", trade, model, CAROL, DAVE, W(1), W(100))
    assert err.args == (0, W(6), W(5))
    trade(model, CAROL, ALICE, W(1), W(100))  # long moves from Alice to Carol: OI unchanged
    assert model.open_interest(0) == W(5)

    model.set_params(0, params(oi_cap=W(3)))  # cap lowered below the current OI
    trade(model, BOB, ALICE, W(1), W(100))  # both reduce: OI 4, lower, allowed above the cap
    assert model.open_interest(0) == W(4)
    reverts(model, "OpenInterestCapExceeded", trade, model, DAVE, BOB, W(1), W(100))


def test_ninth_market_reverts_and_closing_frees_a_slot_keeping_order():
    model = make_model(alice=100_000, bob=100_000, carol=100_000)
    for _ in range(8):
        model.add_market(params(), W(100))  # markets 1..8
    for m in range(8):
        trade(model, ALICE, BOB, W(1), W(100), market=m)
    assert model.markets_of(ALICE) == list(range(8))
    err = reverts(model, "TooManyMarkets", trade, model, CAROL, ALICE, W(1), W(100), 8, "seller")
    assert err.args == (ALICE,)

    trade(model, BOB, ALICE, W(1), W(100), market=3)  # Alice closes market 3
    assert model.markets_of(ALICE) == [0, 1, 2, 4, 5, 6, 7]
    trade(model, ALICE, CAROL, W(1), W(100), market=8)
    assert model.markets_of(ALICE) == [0, 1, 2, 4, 5, 6, 7, 8]
    reverts(model, "TooManyMarkets", trade, model, ALICE, CAROL, W(1), W(100), 3)


# --- order bookkeeping ----------------------------------------------------------------------------


def test_partial_fills_are_tracked_per_order():
    model = make_model(alice=1_000, bob=1_000)
    maker = Order(ALICE, 0, True, W(3), W(100), 0, FAR_EXPIRY)
    taker = Order(BOB, 0, False, W(10), W(99), 0, FAR_EXPIRY)
    model.match(maker, True, taker, True, W(2))
    model.match(maker, True, taker, True, W(1))
    assert model.filled_amount(maker) == W(3) and model.filled_amount(taker) == W(3)
    assert model.position(ALICE, 0) == (W(3), W(300))  # at the maker's price
    err = reverts(model, "OrderOverfilled", model.match, maker, True, taker, True, 1)
    assert err.args[1:] == (W(3), 1, W(3))


def test_cancel_and_min_nonce():
    model = make_model(alice=1_000, bob=1_000)
    maker = Order(ALICE, 0, True, W(1), W(100), 5, FAR_EXPIRY)
    taker = Order(BOB, 0, False, W(1), W(100), 0, FAR_EXPIRY)
    model.cancel(BOB, maker)  # someone else's hash: no effect on Alice's order
    assert not model.is_cancelled(ALICE, maker)
    model.cancel(ALICE, maker)
    reverts(model, "OrderIsCancelled", model.match, maker, True, taker, True, W(1))

    fresh = Order(ALICE, 0, True, W(1), W(100), 6, FAR_EXPIRY)
    model.set_min_nonce(ALICE, 7)
    err = reverts(model, "NonceTooLow", model.match, fresh, True, taker, True, W(1))
    assert err.args[1:] == (6, 7)
    assert reverts(model, "NonceNotIncreasing", model.set_min_nonce, ALICE, 7).args == (7, 7)
    model.match(Order(ALICE, 0, True, W(1), W(100), 7, FAR_EXPIRY), True, taker, True, W(1))  # nonce >= min


def test_expiry_is_inclusive():
    model = make_model(alice=1_000, bob=1_000)
    model.now = 1_000
    maker = Order(ALICE, 0, True, W(1), W(100), 0, 1_000)
    taker = Order(BOB, 0, False, W(1), W(100), 0, 999)
    reverts(model, "OrderExpired", model.match, maker, True, taker, True, W(1))
    model.match(maker, True, Order(BOB, 0, False, W(1), W(100), 0, 1_000), True, W(1))


def test_price_compatibility_and_band_edges():
    model = make_model(alice=1_000, bob=1_000)
    band = mul_wad_down(W(100), W("0.1"))  # 10
    # Maker sells at 110 (edge of the band); the buying taker's limit 110 accepts it.
    mk = Order(BOB, 0, False, W(1), W(100) + band, 0, FAR_EXPIRY)
    model.match(mk, True, Order(ALICE, 0, True, W(1), W(100) + band, 0, FAR_EXPIRY), True, W("0.5"))
    err = reverts(
        model,
        "PriceIncompatible",
        model.match,
        mk,
        True,
        Order(ALICE, 0, True, W(1), W(110) - 1, 1, FAR_EXPIRY),
        True,
        1,
    )
    assert err.args == (W(110), W(110) - 1)
    mk2 = Order(BOB, 0, False, W(1), W(100) - band - 1, 1, FAR_EXPIRY)
    err = reverts(
        model,
        "PriceOutsideBand",
        model.match,
        mk2,
        True,
        Order(ALICE, 0, True, W(1), W(200), 2, FAR_EXPIRY),
        True,
        1,
    )
    assert err.args == (0, W(90) - 1, W(100))


def test_stale_price_in_another_market_blocks_the_margin_check():
    model = make_model(alice=1_000, bob=1_000)
    other = model.add_market(params(), W(50))
    trade(model, ALICE, BOB, W(1), W(50), market=other)
    model.set_stale(other, True)
    reverts(model, "StalePrice", trade, model, ALICE, BOB, W(1), W(100))
    reverts(model, "StalePrice", model.equity, ALICE)
    assert model.pending_loss(ALICE) == 0  # needs no price


def test_invalid_market_params_revert_in_engine_order():
    model = Model()
    assert reverts(model, "InvalidMarketParam", model.add_market, params(mm_ratio=0), W(1)).args == (
        "mmRatio",
        0,
    )
    bad_im = params(im_ratio=W("0.05"))
    assert reverts(model, "InvalidMarketParam", model.add_market, bad_im, W(1)).args[0] == "imRatio"
    bad_fee = params(taker_fee_ratio=W("0.05"))
    assert reverts(model, "InvalidMarketParam", model.add_market, bad_fee, W(1)).args[0] == "takerFeeRatio"
    reverts(model, "UnknownMarket", model.set_price, 0, W(1))


# --- every check of matchOrders, in order ---------------------------------------------------------


@dataclass
class Case:
    model: Model
    maker: dict[str, Any]
    taker: dict[str, Any]
    q: int = 10**18
    maker_ok: bool = True
    taker_ok: bool = True
    cancel: list[str] = field(default_factory=list)

    def prepare(self) -> tuple[Order, bool, Order, bool, int]:
        """Builds the orders, makes the requested cancellations, returns the ``match`` arguments."""
        maker, taker = Order(**self.maker), Order(**self.taker)
        for who in self.cancel:
            order = maker if who == "maker" else taker
            self.model.cancel(order.account, order)
        return maker, self.maker_ok, taker, self.taker_ok, self.q


def _baseline() -> Case:
    model = make_model(alice=10_000, bob=10_000, carol=100_000)
    for _ in range(9):
        model.add_market(params(), W(100))  # markets 1..9
    model.now = 1_000
    order = {"market_id": 0, "size": W(1), "limit_price": W(100), "nonce": 0, "expiry": 2_000}
    return Case(
        model, {"account": ALICE, "is_buy": True, **order}, {"account": BOB, "is_buy": False, **order}
    )


def _drain(case: Case, who: str) -> None:
    account = case.maker["account"] if who == "maker" else case.taker["account"]
    free = case.model.free_collateral(account) // case.model.scale
    if free > 0:
        case.model.withdraw(account, free)


def _fill_eight_markets(case: Case) -> None:
    for m in range(1, 9):
        trade(case.model, case.maker["account"], CAROL, W(1), W(100), market=m)


# (expected error, first argument if checked, breaker). Each breaker makes exactly its check fail.
BREAKERS: list[tuple[str, Any, Callable[[Case], None]]] = [
    ("ZeroFill", None, lambda c: setattr(c, "q", 0)),
    ("MarketMismatch", None, lambda c: c.taker.update(market_id=c.maker["market_id"] + 1)),
    ("UnknownMarket", 99, lambda c: (c.maker.update(market_id=99), c.taker.update(market_id=99))),
    ("TradingPaused", 0, lambda c: c.model.set_paused(0, True)),
    ("SameSide", None, lambda c: c.taker.update(is_buy=c.maker["is_buy"])),
    ("SelfTrade", ALICE, lambda c: c.taker.update(account=c.maker["account"])),
    ("OrderExpired", None, lambda c: c.maker.update(expiry=c.model.now - 1)),
    ("InvalidSignature", None, lambda c: setattr(c, "maker_ok", False)),
    ("NonceTooLow", None, lambda c: c.model.set_min_nonce(ALICE, 1)),
    ("OrderIsCancelled", None, lambda c: c.cancel.append("maker")),
    ("OrderOverfilled", None, lambda c: c.maker.update(size=W(1) - 1)),
    ("OrderExpired", None, lambda c: c.taker.update(expiry=c.model.now - 1)),
    ("InvalidSignature", None, lambda c: setattr(c, "taker_ok", False)),
    ("NonceTooLow", None, lambda c: c.model.set_min_nonce(BOB, 1)),
    ("OrderIsCancelled", None, lambda c: c.cancel.append("taker")),
    ("OrderOverfilled", None, lambda c: c.taker.update(size=W(1) - 1)),
    ("PriceIncompatible", None, lambda c: c.taker.update(limit_price=c.maker["limit_price"] + 1)),
    ("StalePrice", 0, lambda c: c.model.set_stale(0, True)),
    (
        "PriceOutsideBand",
        0,
        lambda c: (c.maker.update(limit_price=W(110) + 1), c.taker.update(limit_price=W(110) + 1)),
    ),
    ("TooManyMarkets", ALICE, _fill_eight_markets),  # raised while the fill is applied (step 10)
    ("OpenInterestCapExceeded", 0, lambda c: c.model.set_params(0, params(oi_cap=W("0.5")))),
    ("InsufficientMargin", ALICE, lambda c: _drain(c, "maker")),
    ("InsufficientMargin", BOB, lambda c: _drain(c, "taker")),
]


def _check(case: Case, name: str, first_arg: Any) -> None:
    err = reverts(case.model, name, case.model.match, *case.prepare())
    if first_arg is not None:
        assert err.args[0] == first_arg


def test_baseline_match_succeeds():
    case = _baseline()
    case.model.match(*case.prepare())
    assert case.model.position(ALICE, 0) == (W(1), W(100))


@pytest.mark.parametrize("index", range(len(BREAKERS)), ids=[f"{i}-{b[0]}" for i, b in enumerate(BREAKERS)])
def test_each_check_alone(index):
    case = _baseline()
    name, first_arg, breaker = BREAKERS[index]
    breaker(case)
    _check(case, name, first_arg)


@pytest.mark.parametrize("index", range(len(BREAKERS)), ids=[f"{i}-{b[0]}" for i, b in enumerate(BREAKERS)])
def test_first_failing_check_names_the_revert(index):
    # Break check `index` and every later one; the earliest must win. Later breakers are applied
    # first so that an earlier breaker's change (e.g. q = 0) has the last word.
    case = _baseline()
    later_first = list(reversed(BREAKERS[index:]))
    # Opening eight markets needs margin, so that breaker runs before the ones that drain it.
    later_first.sort(key=lambda b: b[2] is not _fill_eight_markets)
    for _, _, breaker in later_first:
        breaker(case)
    name, first_arg, _ = BREAKERS[index]
    _check(case, name, first_arg)


def test_global_pause_blocks_trading():
    case = _baseline()
    case.model.set_global_paused(True)
    _check(case, "TradingPaused", 0)


def test_oversized_fill_reverts_value_out_of_range():
    case = _baseline()
    case.q = MAX_VALUE + 1
    _check(case, "ValueOutOfRange", MAX_VALUE + 1)


def test_failed_margin_check_rolls_back_settlement_fill_and_fees():
    model = Model(6)
    model.add_market(params(maker_fee_ratio=W("0.001"), taker_fee_ratio=W("0.002")), W(100))
    model.deposit(ALICE, tokens(1_000))
    model.deposit(BOB, tokens(20))
    trade(model, ALICE, BOB, W(1), W(100))
    model.bump_loss_index(0, SHORT, W(1))
    before = state(model)
    reverts(model, "InsufficientMargin", trade, model, ALICE, BOB, W(1), W(100))
    assert model.__dict__ == before
    assert model.pending_loss(BOB) == W(1)  # still pending: the touch was undone too


# --- properties -----------------------------------------------------------------------------------

ACTORS = [ALICE, BOB, CAROL, DAVE]
actor = st.integers(0, len(ACTORS) - 1)
market = st.integers(0, 1)
# 0.001..4 or ..20 base units with odd wei (rounding), or a few wei.
FILL_SIZE = st.one_of(
    st.builds(lambda milli, wei: milli * 10**15 + wei, st.integers(1, 4_000), st.integers(0, 10**15 - 1)),
    st.builds(lambda milli, wei: milli * 10**15 + wei, st.integers(1, 20_000), st.integers(0, 10**15 - 1)),
    st.integers(1, 10**6),
)
FILL = st.tuples(
    st.just("fill"),
    actor,
    st.integers(1, len(ACTORS) - 1),  # the taker, as an offset from the maker
    market,
    st.booleans(),  # the maker buys
    FILL_SIZE,
    st.integers(-1050, 1050),  # price offset in thousandths of the band (a few fall outside)
)
OPS = st.one_of(
    FILL,
    FILL,  # fills twice as likely as anything else
    st.tuples(st.just("deposit"), actor, st.integers(1, 10**9)),
    st.tuples(st.just("withdraw"), actor, st.integers(1, 10**9)),
    st.tuples(st.just("price"), market, st.integers(-60, 60)),
    st.tuples(st.just("bump"), market, st.sampled_from([LONG, SHORT]), st.integers(0, 10**16)),
    st.tuples(st.just("settle"), actor),
)


INITIAL_DEPOSIT = tokens("1000.123457")


def _fresh_market_model() -> Model:
    """Market 0 at 2,000 without fees; market 1 at an awkward price with fees and a small OI cap."""
    model = Model(6)
    model.add_market(params(), W(2_000))
    model.add_market(
        params(maker_fee_ratio=W("0.0002"), taker_fee_ratio=W("0.0005"), oi_cap=W(3)),
        W("1.234567891234567891"),
    )
    for account in ACTORS:
        model.deposit(account, INITIAL_DEPOSIT)
    return model


def _apply(model: Model, op: tuple[Any, ...], nonce: int) -> None:
    kind = op[0]
    if kind == "deposit":
        model.deposit(ACTORS[op[1]], op[2])
    elif kind == "withdraw":
        model.withdraw(ACTORS[op[1]], op[2])
    elif kind == "price":
        old = model.markets[op[1]].price
        model.set_price(op[1], max(1, old * (1_000 + op[2]) // 1_000))
    elif kind == "fill":
        _, i, j, m, maker_buys, q, k = op
        oracle = model.markets[m].price
        p = max(1, oracle + mul_wad_down(oracle, model.markets[m].params.price_band_ratio) * k // 1_000)
        maker = Order(ACTORS[i], m, maker_buys, q, p, nonce, FAR_EXPIRY)
        taker = Order(ACTORS[(i + j) % len(ACTORS)], m, not maker_buys, q, p, nonce, FAR_EXPIRY)
        model.match(maker, True, taker, True, q)
    elif kind == "bump":
        model.bump_loss_index(op[1], op[2], op[3])
    else:
        model.settle(ACTORS[op[1]])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(OPS, min_size=5, max_size=60))
def test_random_sequences_stay_zero_sum_and_solvent(ops):
    model = _fresh_market_model()
    deposited = INITIAL_DEPOSIT * len(ACTORS)
    dust_bound = 0
    for n, op in enumerate(ops):
        before = state(model)
        try:
            _apply(model, op, n)
        except ModelRevert:
            assert model.__dict__ == before, f"revert of {op} changed the model"
            continue
        if op[0] == "deposit":
            deposited += op[2]
        elif op[0] == "withdraw":
            deposited -= op[2]
        elif op[0] == "fill":
            # Each party's cash flow is rounded against it: < 1 wei per leg, 2 legs + 1 per flip.
            dust_bound += 3
        # A bump (test hook) moves an index and nothing else: the O(1) identity does not see the
        # loss it creates (settling it moves margin and unsettled_loss together), so no dust either.
        # Real socialization is exercised by tests/unit/model/test_liquidation_model.py.

        assert_zero_sum(model)
        assert model.vault_tokens + model.fund_tokens == deposited
        assert model.vault_tokens >= model.fund_credit
        sol = model.solvency()
        assert sol["vault_assets"] == sol["liabilities"] + sol["dust"]
        assert 0 <= sol["dust"] <= dust_bound, (sol, dust_bound)
