"""Hostile inputs of issue #8 that the unit suites left without a named test, or tested without
the exact error or without proving that nothing moved (see the test map in docs/security.md).

Every refusal here is asserted with its exact custom error and arguments (``ape.reverts`` sends
the call), and the ``ledger`` snapshot (token balances of the parties, the vault and the fund;
margins, positions, fund shares, market state, the solvency identity) is unchanged afterwards.
"""

from __future__ import annotations

import ape
import pytest

from backstop.chain.abi import encode_call
from backstop.orders import FAR_EXPIRY, Order, make_high_s, sign_order, to_tuple
from backstop.units import WAD
from tests.support.system import MarketSpec, Signed, System, ratio

PRICE = 2000 * WAD
TOKEN = 10**6
ZERO = "0x" + "00" * 20
MAX_UINT = 2**256 - 1
MAX_INT = 2**255 - 1
MAX_VALUE = 2**127 - 1  # the engine's bound on sizes, prices and position fields
HEARTBEAT = 86_400  # MarketSpec's default
GRACE = 3_600
PANIC_OVERFLOW = encode_call("Panic(uint256)", 0x11)


def match_args(maker: Signed, taker: Signed, fill: int) -> tuple:
    return (to_tuple(maker.order), maker.signature, to_tuple(taker.order), taker.signature, fill)


def digest(system, signed: Signed):
    return system.engine.hashOrder(to_tuple(signed.order))


def pin_next_block(chain) -> int:
    """Fixes the timestamp of the next block (errors that carry ``block.timestamp``)."""
    ts = chain.blocks.head.timestamp + 1
    chain.pending_timestamp = ts
    return ts


# --- tokens ------------------------------------------------------------------------------------------


def test_returns_false_token_fails_the_fee_sweep_and_nothing_moves(
    project, system_over, deployer, alice, bob, stranger, ledger
):
    """The fee leg (vault → fund) is the sweep of the fund's credit: a trade books its fees to the
    credit and moves no token, so it fills even while the token returns ``false``; the sweep's
    transfer is refused by SafeERC20, the sweep reverts and the credit stays the fund's."""
    raw = project.ReturnsFalseToken.deploy(6, sender=deployer)
    system = system_over(raw)
    market = system.add_market(
        PRICE, MarketSpec(maker_fee_ratio=ratio("0.02"), taker_fee_ratio=ratio("0.05"))
    )
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 10_000 * TOKEN)
    maker = system.order(alice, market, False, WAD, PRICE)
    taker = system.order(bob, market, True, WAD, PRICE)
    raw.setFailing(True, sender=deployer)
    system.match(maker, taker, WAD)  # no token moves in a trade
    assert system.vault.fundCredit() == 1_400_000  # 0.02 % and 0.05 % of 2,000: 0.4 + 1 token
    before = ledger(system, alice, bob, stranger)
    with ape.reverts(system.vault.SafeERC20FailedOperation, token=raw.address):
        system.vault.sweepToFund(sender=stranger)
    assert ledger(system, alice, bob, stranger) == before
    assert system.vault.fundCredit() == system.fund.totalAssets() == 1_400_000
    raw.setFailing(False, sender=deployer)
    system.sweep(stranger)  # the same sweep goes through once the token works again
    assert system.vault.fundCredit() == 0 and raw.balanceOf(system.fund) == 1_400_000
    system.check(alice, bob)


def test_returns_false_token_fails_the_funds_cover_and_the_liquidation_reverts(
    project, system_over, deployer, alice, bob, carol, keeper, ledger
):
    """Bad-debt cover (fund → vault) with a token that returns ``false``: the liquidation
    reverts as a whole instead of booking cover that never arrived."""
    raw = project.ReturnsFalseToken.deploy(6, sender=deployer)
    system = system_over(raw)
    market = system.add_market(PRICE)
    system.stake(carol, 1_000 * TOKEN)
    system.deposit(keeper, 100_000 * TOKEN)
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 210 * TOKEN)
    system.trade(bob, alice, market, WAD, PRICE)
    system.set_price(market, 1700 * WAD)  # bob bankrupt: deficit 107, the fund covers it
    raw.setFailing(True, sender=deployer)
    before = ledger(system, alice, bob, carol, keeper)
    with ape.reverts(system.fund.SafeERC20FailedOperation, token=raw.address):
        system.engine.liquidate(bob, sender=keeper)
    assert ledger(system, alice, bob, carol, keeper) == before
    raw.setFailing(False, sender=deployer)
    assert system.liquidate(bob, keeper)["covered"] == 107 * WAD
    system.check(alice, bob, carol, keeper)


def test_returns_false_token_stake_into_the_fund_reverts(project, system_over, deployer, carol, ledger):
    raw = project.ReturnsFalseToken.deploy(6, sender=deployer)
    system = system_over(raw)
    raw.mint(carol, 1_000 * TOKEN, sender=deployer)
    raw.approve(system.fund, 2**256 - 1, sender=carol)
    raw.setFailing(True, sender=deployer)
    before = ledger(system, carol)
    with ape.reverts(system.fund.SafeERC20FailedOperation, token=raw.address):
        system.fund.deposit(1_000 * TOKEN, carol, sender=carol)
    assert ledger(system, carol) == before


def test_reentrant_token_cannot_reenter_a_wired_vault(project, system_over, deployer, alice, bob, ledger):
    """Through the production wiring (the withdrawal asks the engine for free collateral first),
    the token's transfer hook re-enters `withdraw` and is refused by the vault's guard; exactly
    one withdrawal is paid and the solvency identity still holds with zero dust."""
    raw = project.ReentrantToken.deploy(6, sender=deployer)
    system = system_over(raw)
    market = system.add_market(PRICE)
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 10_000 * TOKEN)
    system.trade(alice, bob, market, WAD, PRICE)  # other accounts hold positions meanwhile
    attacker = project.ReentrancyAttacker.deploy(system.vault, sender=deployer)
    raw.mint(attacker, 100 * TOKEN, sender=deployer)
    attacker.deposit(100 * TOKEN, sender=deployer)
    raw.setHooked(attacker, True, sender=deployer)
    before = ledger(system, alice, bob)

    attacker.attackWithdraw(100 * TOKEN, sender=deployer)

    assert attacker.attempts() == 1
    assert attacker.lastReentrySucceeded() is False
    assert bytes(attacker.lastRevertData()) == encode_call("ReentrancyGuardReentrantCall()")
    assert raw.balanceOf(attacker) == 100 * TOKEN  # once, not twice
    assert system.vault.marginOf(attacker) == 0
    after = ledger(system, alice, bob)
    for key in ("tokens:vault", "total_margin", "solvency"):
        del before[key], after[key]
    assert after == before  # the other accounts and the markets are untouched
    assert raw.balanceOf(system.vault) == 20_000 * TOKEN
    assert system.engine.solvency()[2] == 0


def test_18_decimal_collateral_credits_exact_wei_and_refuses_amounts_past_the_ledger(
    project, chain, deployer, alice, bob, keeper, ledger
):
    """SCALE = 1: one token wei is one WAD wei; the ledger's int256 bound is the only limit.
    A full trade, fee and liquidation cycle matches the reference model exactly."""
    system = System(project, chain, deployer, decimals=18)
    market = system.add_market(
        PRICE, MarketSpec(maker_fee_ratio=ratio("0.02"), taker_fee_ratio=ratio("0.05"))
    )
    system.deposit(alice, 1)
    assert system.vault.marginOf(alice) == 1
    before = ledger(system, alice)
    for amount in (MAX_INT + 1, MAX_UINT):
        with ape.reverts(system.vault.AmountTooLarge, amountTokens=amount):
            system.vault.deposit(amount, sender=alice)
        with ape.reverts(system.vault.AmountTooLarge, amountTokens=amount):
            system.vault.withdraw(amount, sender=alice)
    assert ledger(system, alice) == before
    system.deposit(alice, 10_000 * WAD)
    system.deposit(bob, 250 * WAD)
    system.deposit(keeper, 100_000 * WAD)
    system.trade(bob, alice, market, WAD + 7, PRICE + 3)
    system.set_price(market, 1800 * WAD)
    system.liquidate(bob, keeper)
    system.check(alice, bob, keeper)


# --- oracles, through the engine ---------------------------------------------------------------------

ORACLE_FAILURES = [
    "stale",
    "zero",
    "negative",
    "future",
    "never_written",
    "sequencer_down",
    "sequencer_in_grace_period",
    "sequencer_uninitialized",
]


def break_oracle(kind: str, system, market: int, sequencer, deployer, chain):
    """Applies one oracle failure; returns the expected error's name and, given the block
    timestamp of the refused call, its exact arguments."""
    feed = system.feeds[market]
    answer = feed.answer()
    now = chain.blocks.head.timestamp
    if kind == "stale":
        old = now - HEARTBEAT - 1
        feed.setAnswerAt(answer, old, old, sender=deployer)
        return "StalePrice", lambda ts: {
            "marketId": market,
            "updatedAt": old,
            "heartbeat": HEARTBEAT,
            "blockTimestamp": ts,
        }
    if kind in ("zero", "negative"):
        bad = 0 if kind == "zero" else -1
        feed.setAnswer(bad, sender=deployer)
        return "InvalidPrice", lambda ts: {"marketId": market, "answer": bad}
    if kind == "future":
        later = now + 10_000
        feed.setAnswerAt(answer, later, later, sender=deployer)
        return "PriceFromFuture", lambda ts: {"marketId": market, "updatedAt": later, "blockTimestamp": ts}
    if kind == "never_written":
        feed.setAnswerAt(answer, 0, 0, sender=deployer)
        return "PriceNotInitialized", lambda ts: {"marketId": market}
    if kind == "sequencer_down":
        sequencer.setAnswer(1, sender=deployer)
        return "SequencerDown", lambda ts: {"marketId": market}
    if kind == "sequencer_in_grace_period":
        sequencer.setAnswer(0, sender=deployer)  # just came back up
        up_since = sequencer.startedAt()
        return "SequencerGracePeriod", lambda ts: {
            "marketId": market,
            "upSince": up_since,
            "gracePeriod": GRACE,
        }
    if kind == "sequencer_uninitialized":
        sequencer.setAnswerAt(0, 0, 0, sender=deployer)
        return "SequencerStatusInvalid", lambda ts: {"marketId": market}
    raise ValueError(kind)


@pytest.fixture
def exposed(system, project, deployer, chain, alice, bob, carol, keeper):
    """An L2-style suite (sequencer feed up for longer than its grace period) where bob is
    liquidatable, alice holds the other side, carol is flat and the keeper has margin."""
    sequencer = project.MockAggregator.deploy(0, 0, "L2 Sequencer Uptime Status Feed", sender=deployer)
    # The sequencer feed changes only through the engine's timelock (docs/design.md §10).
    system.engine.scheduleSequencerUpdate(sequencer, GRACE, sender=deployer)
    system.advance(system.engine.PARAMS_DELAY())
    system.engine.executeSequencerUpdate(sender=deployer)
    up_since = chain.blocks.head.timestamp - GRACE - 10
    sequencer.setAnswerAt(0, up_since, up_since, sender=deployer)
    market = system.add_market(PRICE)
    system.deposit(keeper, 100_000 * TOKEN)
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 250 * TOKEN)
    system.deposit(carol, 1_000 * TOKEN)
    system.trade(bob, alice, market, WAD, PRICE)
    system.set_price(market, 1800 * WAD)
    assert system.model.liquidatable(bob.address)
    return market, sequencer


@pytest.mark.parametrize("kind", ORACLE_FAILURES)
def test_a_bad_oracle_refuses_trades_liquidations_and_priced_withdrawals_and_nothing_moves(
    system, exposed, kind, deployer, chain, alice, bob, carol, keeper, stranger, ledger
):
    market, sequencer = exposed
    name, expected = break_oracle(kind, system, market, sequencer, deployer, chain)
    error = getattr(system.oracle, name)
    sell = system.order(alice, market, False, WAD, 1800 * WAD)
    buy = system.order(bob, market, True, WAD, 1800 * WAD)
    everyone = (alice, bob, carol, keeper)
    before = ledger(system, *everyone)

    ts = pin_next_block(chain)
    with ape.reverts(error, **expected(ts)):
        system.engine.matchOrders(*match_args(sell, buy, WAD), sender=deployer)
    ts = pin_next_block(chain)
    with ape.reverts(error, **expected(ts)):
        system.engine.liquidate(bob, sender=keeper)
    ts = pin_next_block(chain)
    with ape.reverts(error, **expected(ts)):
        system.vault.withdraw(1, sender=alice)  # holds a position: needs a price
    assert ledger(system, *everyone) == before

    # What needs no price keeps working: settling anyone, and a flat account's withdrawal.
    system.engine.settle(alice, sender=stranger)
    system.vault.withdraw(1_000 * TOKEN, sender=carol)
    assert system.token.balanceOf(carol) == 1_000 * TOKEN


# --- signatures ----------------------------------------------------------------------------------------


def _other_chain(system, eth, alice, bob, carol, chain):
    maker = system.order(alice, eth, False, WAD, PRICE)
    maker.signature = sign_order(maker.order, alice.private_key, system.chain_id + 1, system.engine.address)
    return maker, "InvalidSignature", {"account": alice.address}


def _other_contract(system, eth, alice, bob, carol, chain):
    maker = system.order(alice, eth, False, WAD, PRICE)
    maker.signature = sign_order(maker.order, alice.private_key, system.chain_id, system.vault.address)
    return maker, "InvalidSignature", {"account": alice.address}


def _expired(system, eth, alice, bob, carol, chain):
    expiry = chain.blocks.head.timestamp - 1
    return system.order(alice, eth, False, WAD, PRICE, expiry=expiry), "OrderExpired", {"expiry": expiry}


def _cancelled(system, eth, alice, bob, carol, chain):
    maker = system.order(alice, eth, False, WAD, PRICE)
    system.cancel(alice, maker)
    return maker, "OrderIsCancelled", {}


def _below_min_nonce(system, eth, alice, bob, carol, chain):
    maker = system.order(alice, eth, False, WAD, PRICE, nonce=3)
    system.raise_min_nonce(alice, 4)
    return maker, "NonceTooLow", {"nonce": 3, "minNonce": 4}


def _malleable(system, eth, alice, bob, carol, chain):
    maker = system.order(alice, eth, False, WAD, PRICE)
    maker.signature = make_high_s(maker.signature)
    return maker, "InvalidSignature", {"account": alice.address}


def _signed_by_someone_else(system, eth, alice, bob, carol, chain):
    return (
        system.order(alice, eth, False, WAD, PRICE, signer=carol),
        "InvalidSignature",
        {"account": alice.address},
    )


def _zero_address_signed(system, eth, alice, bob, carol, chain):
    ghost = Order(ZERO, eth, False, WAD, PRICE, 0, FAR_EXPIRY)
    signed = Signed(ghost, sign_order(ghost, alice.private_key, system.chain_id, system.engine.address))
    return signed, "InvalidSignature", {"account": ZERO}


def _zero_address_unrecoverable(system, eth, alice, bob, carol, chain):
    """The classic bug: `ecrecover` returns address(0) for an invalid signature, which would
    'match' an order whose account is the zero address."""
    ghost = Order(ZERO, eth, False, WAD, PRICE, 0, FAR_EXPIRY)
    return Signed(ghost, bytes(64) + bytes([27])), "InvalidSignature", {"account": ZERO}


def _truncated(system, eth, alice, bob, carol, chain):
    maker = system.order(alice, eth, False, WAD, PRICE)
    maker.signature = maker.signature[:64]
    return maker, "InvalidSignature", {"account": alice.address}


def _replayed_after_fill(system, eth, alice, bob, carol, chain):
    maker = system.order(alice, eth, False, WAD, PRICE)
    system.match(maker, system.order(carol, eth, True, WAD, PRICE), WAD)
    return maker, "OrderOverfilled", {"filled": WAD, "fill": WAD, "size": WAD}


SIGNATURE_CASES = {
    "replayed_across_chain_id": _other_chain,
    "replayed_across_contract": _other_contract,
    "expired": _expired,
    "cancelled": _cancelled,
    "below_min_nonce": _below_min_nonce,
    "malleable_high_s": _malleable,
    "signed_by_someone_else": _signed_by_someone_else,
    "zero_address_signed": _zero_address_signed,
    "zero_address_unrecoverable": _zero_address_unrecoverable,
    "truncated": _truncated,
    "replayed_after_fill": _replayed_after_fill,
}


@pytest.mark.parametrize("case", SIGNATURE_CASES)
def test_a_bad_order_is_refused_by_name_and_nothing_moves(
    system, eth, case, deployer, chain, alice, bob, carol, ledger
):
    system.deposit(carol, 10_000 * TOKEN)
    maker, name, args = SIGNATURE_CASES[case](system, eth, alice, bob, carol, chain)
    taker = system.order(bob, eth, True, WAD, PRICE)
    h = digest(system, maker)
    filled = system.engine.filledOf(h)
    before = ledger(system, alice, bob, carol)
    with ape.reverts(getattr(system.engine, name), orderHash=h, **args):
        system.engine.matchOrders(*match_args(maker, taker, WAD), sender=deployer)
    assert ledger(system, alice, bob, carol) == before
    assert system.engine.filledOf(h) == filled
    assert system.engine.filledOf(digest(system, taker)) == 0


def test_an_order_filled_on_one_deployment_cannot_be_replayed_on_another(
    project, chain, deployer, system, alice, bob, ledger
):
    """Replay across contracts for real: two deployments on one chain, the same order bytes."""
    other = System(project, chain, deployer)
    for suite in (system, other):
        suite.add_market(PRICE)
        suite.deposit(alice, 10_000 * TOKEN)
        suite.deposit(bob, 10_000 * TOKEN)
    maker = other.order(alice, 0, False, WAD, PRICE)
    taker = other.order(bob, 0, True, WAD, PRICE)
    other.match(maker, taker, WAD)
    before = ledger(system, alice, bob)
    with ape.reverts(system.engine.InvalidSignature, orderHash=digest(system, maker), account=alice.address):
        system.engine.matchOrders(*match_args(maker, taker, WAD), sender=deployer)
    assert ledger(system, alice, bob) == before
    other.check(alice, bob)


# --- amounts: 0, 1 unit, the maximum -------------------------------------------------------------------


def test_zero_fill_is_refused_and_nothing_moves(system, eth, deployer, alice, bob, ledger):
    maker, taker = system.order(alice, eth, False, WAD, PRICE), system.order(bob, eth, True, WAD, PRICE)
    before = ledger(system, alice, bob)
    with ape.reverts(system.engine.ZeroFill):
        system.engine.matchOrders(*match_args(maker, taker, 0), sender=deployer)
    assert ledger(system, alice, bob) == before


def test_zero_min_nonce_is_refused(system, eth, alice, ledger):
    before = ledger(system, alice)
    with ape.reverts(system.engine.NonceNotIncreasing, current=0, requested=0):
        system.engine.raiseMinNonce(0, sender=alice)
    assert ledger(system, alice) == before


def test_one_wei_fill_pays_at_least_one_token_unit_of_fees_each(system, alice, bob):
    """Fees round up, to the wei and then to a whole token unit: a 1-wei fill (notional 2,000
    wei) cannot dodge them. The fund is credited exactly 1 unit from each side."""
    market = system.add_market(
        PRICE, MarketSpec(maker_fee_ratio=ratio("0.02"), taker_fee_ratio=ratio("0.05"))
    )
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 10_000 * TOKEN)
    tx = system.match(
        system.order(alice, market, False, 1, PRICE), system.order(bob, market, True, 1, PRICE), 1
    )
    [trade] = [log for log in tx.events if log.event_name == "Trade"]
    assert (trade.makerFeeTokens, trade.takerFeeTokens) == (1, 1)
    assert system.vault.fundCredit() == system.fund.totalAssets() == 2
    assert system.engine.positionOf(bob, market) == (1, 2000)
    system.check(alice, bob)


def test_maximum_deposit_is_refused_and_nothing_moves(system, eth, alice, ledger):
    system.token.approve(system.vault, MAX_UINT, sender=alice)
    before = ledger(system, alice)
    with ape.reverts(system.vault.AmountTooLarge, amountTokens=MAX_UINT):
        system.vault.deposit(MAX_UINT, sender=alice)
    assert ledger(system, alice) == before


def test_maximum_fill_and_price_are_refused_by_value(system, eth, deployer, alice, bob, ledger):
    before = ledger(system, alice, bob)
    orders = system.order(alice, eth, False, MAX_UINT, PRICE), system.order(bob, eth, True, MAX_UINT, PRICE)
    with ape.reverts(system.engine.ValueOutOfRange, value=MAX_UINT):
        system.engine.matchOrders(*match_args(*orders, MAX_UINT), sender=deployer)
    orders = system.order(alice, eth, False, WAD, MAX_UINT), system.order(bob, eth, True, WAD, MAX_UINT)
    with ape.reverts(system.engine.ValueOutOfRange, value=MAX_UINT):
        system.engine.matchOrders(*match_args(*orders, WAD), sender=deployer)
    assert ledger(system, alice, bob) == before


def test_maximum_fund_amounts_are_refused_and_nothing_moves(system, carol, ledger, revert_data):
    system.stake(carol, 100 * TOKEN)
    shares = system.fund.balanceOf(carol)
    before = ledger(system, carol)
    with ape.reverts(system.fund.InvalidRedeemRequest, shares=MAX_UINT, balance=shares):
        system.fund.requestRedeem(MAX_UINT, carol, carol, sender=carol)
    system.request_unstake(carol, shares)
    system.advance(7 * 86_400 + 1)
    before = ledger(system, carol)
    with ape.reverts(system.fund.ERC4626ExceededMaxRedeem, owner=carol, shares=MAX_UINT, max=shares):
        system.fund.redeem(MAX_UINT, carol, carol, sender=carol)
    with ape.reverts(system.fund.ERC4626ExceededMaxWithdraw, owner=carol, assets=MAX_UINT, max=100 * TOKEN):
        system.fund.withdraw(MAX_UINT, carol, carol, sender=carol)
    # ERC-4626's share conversion of 2^256 − 1 overflows before any custom check: a panic, not a
    # custom error (OpenZeppelin's Math.mulDiv), still with nothing moved.
    system.token.approve(system.fund, MAX_UINT, sender=carol)
    assert revert_data(system.fund.deposit, MAX_UINT, carol, sender=carol) == PANIC_OVERFLOW
    assert ledger(system, carol) == before


# --- sizes and prices that would overflow --------------------------------------------------------------


def test_a_position_that_would_grow_past_the_size_bound_is_refused(system, deployer, alice, bob, ledger):
    """Each fill is within the 127-bit bound; their sum is not. At the smallest 8-decimal
    price (1e-8) the margin for such sizes is affordable, so only the bound stops it."""
    tiny = 10**10  # answer 1 of an 8-decimal feed, in WAD
    market = system.add_market(tiny, MarketSpec(oi_cap=MAX_VALUE))
    system.deposit(alice, 10**18 * TOKEN)
    system.deposit(bob, 10**18 * TOKEN)
    half = 2**126
    system.trade(alice, bob, market, half, tiny)
    maker, taker = system.order(bob, market, False, half, tiny), system.order(alice, market, True, half, tiny)
    before = ledger(system, alice, bob)
    with ape.reverts(system.engine.ValueOutOfRange, value=2**127):
        system.engine.matchOrders(*match_args(maker, taker, half), sender=deployer)
    assert ledger(system, alice, bob) == before
    system.check(alice, bob)


# --- parameters outside their bounds -------------------------------------------------------------------

BAD_PARAMS = [
    ("mm_ratio", 0, "mmRatio"),
    ("im_ratio", ratio(5), "imRatio"),  # equal to MM
    ("im_ratio", WAD + 1, "imRatio"),
    ("keeper_reward_ratio", ratio(5) + 1, "keeperRewardRatio"),  # above MM on its own
    ("insurance_fee_ratio", ratio(4) + 1, "insuranceFeeRatio"),  # with the 1 % reward: above MM
    ("maker_fee_ratio", ratio(5), "makerFeeRatio"),
    ("taker_fee_ratio", ratio(5), "takerFeeRatio"),
    ("price_band_ratio", 0, "priceBandRatio"),
    ("price_band_ratio", WAD, "priceBandRatio"),
    ("heartbeat", 0, "heartbeat"),
    ("oi_cap", 0, "openInterestCap"),
    ("oi_cap", MAX_VALUE + 1, "openInterestCap"),
    ("keeper_reward_cap", 0, "keeperRewardCap"),
    ("keeper_reward_cap", 2**128, "keeperRewardCap"),
]


@pytest.mark.parametrize(("field", "value", "param"), BAD_PARAMS, ids=[f"{f}={v}" for f, v, _ in BAD_PARAMS])
def test_market_update_outside_bounds_is_refused_when_scheduled_and_the_market_is_unchanged(
    system, eth, deployer, alice, bob, field, value, param, ledger
):
    system.trade(alice, bob, eth, WAD, PRICE)  # a live market
    bad = MarketSpec(**{field: value}).contract_params(system.feeds[eth])
    before = ledger(system, alice, bob)
    with ape.reverts(system.engine.InvalidMarketParam, param=param, value=value):
        system.engine.scheduleMarketUpdate(eth, bad, sender=deployer)
    assert ledger(system, alice, bob) == before  # includes the stored parameters and the feed
    assert system.engine.scheduledMarketUpdate(eth)[1] == 0


def test_heartbeat_past_32_bits_and_feeds_past_36_decimals_are_refused(
    system, eth, deployer, project, ledger
):
    feed = system.feeds[eth]
    too_long = MarketSpec(heartbeat=2**32).contract_params(feed)
    before = ledger(system)
    with ape.reverts(system.engine.InvalidMarketParam, param="heartbeat", value=2**32):
        system.engine.scheduleMarketUpdate(eth, too_long, sender=deployer)
    with ape.reverts(system.engine.InvalidMarketParam, param="heartbeat", value=2**32):
        system.engine.addMarket(too_long, sender=deployer)
    wide = project.MockAggregator.deploy(37, 1, "TOO / WIDE", sender=deployer)
    with ape.reverts(system.oracle.InvalidFeed, marketId=1, feed=wide.address):
        system.engine.addMarket(MarketSpec().contract_params(wide), sender=deployer)
    assert ledger(system) == before
    assert system.oracle.feedOf(eth).feed == feed.address


def test_listing_past_the_market_id_range_is_refused(system, eth, deployer, chain):
    """Market ids are 16-bit in an account's market list: the 65,536th listing is refused. The
    array length is set directly in storage (found by scanning) rather than listing 65,535."""
    system.add_market(PRICE)
    address = system.engine.address
    provider = chain.provider
    slot = next(s for s in range(64) if provider.get_storage(address, s) == (2).to_bytes(32, "big"))
    provider.set_storage(address, slot, (2**16 - 1).to_bytes(32, "big"))
    assert system.engine.marketCount() == 2**16 - 1
    with ape.reverts(system.engine.TooManyMarketsListed):
        system.engine.addMarket(MarketSpec().contract_params(system.feeds[eth]), sender=deployer)
    assert system.engine.marketCount() == 2**16 - 1


# --- pauses never trap funds ---------------------------------------------------------------------------


def test_a_trader_with_positions_withdraws_free_collateral_while_everything_is_paused(
    system, eth, alice, bob
):
    system.trade(alice, bob, eth, WAD, PRICE)
    system.set_paused(eth, True)
    system.set_global_paused(True)
    free = system.engine.freeCollateralOf(alice) // 10**12
    system.withdraw(alice, free)
    assert system.token.balanceOf(alice) == free
    system.check(alice, bob)


def test_fund_stakers_stake_and_exit_while_everything_is_paused(system, eth, carol):
    system.set_paused(eth, True)
    system.set_global_paused(True)
    system.stake(carol, 100 * TOKEN)
    shares = system.fund.balanceOf(carol)
    system.request_unstake(carol, shares)
    system.advance(7 * 86_400 + 1)
    system.unstake(carol, shares)
    assert system.token.balanceOf(carol) == 100 * TOKEN
    system.check(carol)
