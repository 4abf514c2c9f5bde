"""The inputs of ``ape run populate`` and its trade sizing (``backstop.chain.populate_inputs``), pure."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backstop.chain.populate_inputs import (
    Move,
    PopulateError,
    new_answer,
    pair_size,
    parse_amount,
    parse_leverage,
    parse_move,
    side_room,
)
from backstop.units import WAD, mul_wad_up

FEED = 10**8  # one quote unit in an 8-decimal feed's answer


@pytest.mark.parametrize(
    ("text", "move"),
    [
        ("ETH=-30%", Move("ETH=-30%", "ETH", Decimal(-30), True)),
        ("ETH=+5.5%", Move("ETH=+5.5%", "ETH", Decimal("5.5"), True)),
        ("BTC=1400", Move("BTC=1400", "BTC", Decimal(1400), False)),
        (" ETH=1400.25 ", Move("ETH=1400.25", "ETH", Decimal("1400.25"), False)),
    ],
)
def test_a_move_is_a_market_and_a_price_or_a_percentage(text, move):
    assert parse_move(text) == move


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ETH", "--move 'ETH': expected MARKET=PRICE or MARKET=±PERCENT%"),
        ("ETH=", "--move 'ETH=': expected"),
        ("=1400", "--move '=1400': expected"),
        ("ETH=abc", "--move 'ETH=abc': expected"),
        ("ETH=-30", "--move ETH=-30: a price must be > 0"),
        ("ETH=0", "--move ETH=0: a price must be > 0"),
        ("ETH=30%%", "--move 'ETH=30%%': expected"),
    ],
)
def test_a_malformed_move_is_refused_by_name(text, message):
    with pytest.raises(PopulateError) as info:
        parse_move(text)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "answer", "expected"),
    [
        ("ETH=-30%", 2000 * FEED, 1400 * FEED),
        ("ETH=-25%", 2000 * FEED, 1500 * FEED),
        ("ETH=+10%", 2000 * FEED, 2200 * FEED),
        ("ETH=-50%", 3, 1),  # 1.5 units: rounded down to the feed's unit
        ("ETH=-99.9999999%", 10**12, 1000),
        ("ETH=1400", 2000 * FEED, 1400 * FEED),
        ("ETH=1400.12345678", 2000 * FEED, 140012345678),
    ],
)
def test_the_new_answer_of_a_move(text, answer, expected):
    assert new_answer(parse_move(text), answer, 8) == expected


@pytest.mark.parametrize(
    ("text", "answer", "message"),
    [
        ("ETH=-100%", 2000 * FEED, "--move ETH=-100%: the ETH price would be 0 (must stay > 0)"),
        ("ETH=-130%", 2000 * FEED, "--move ETH=-130%: the ETH price would be -600 (must stay > 0)"),
        ("ETH=-75%", 3, "--move ETH=-75%: the ETH price would be 0 (must stay > 0)"),
        ("ETH=1400.123456789", 2000 * FEED, "--move ETH=1400.123456789: 1400.123456789 has more decimals"),
    ],
)
def test_a_move_to_zero_or_below_or_finer_than_the_feed_is_refused(text, answer, message):
    with pytest.raises(PopulateError) as info:
        new_answer(parse_move(text), answer, 8)
    assert str(info.value).startswith(message)


def test_amounts_are_exact_token_units():
    assert parse_amount("10000", 6, "--collateral") == 10_000 * 10**6
    assert parse_amount("0.000001", 6, "--collateral") == 1
    assert parse_amount(0, 6, "--keeper-collateral") == 0
    for bad in ("0.0000001", "-1", "abc", "inf", "NaN"):
        with pytest.raises(PopulateError, match=f"--collateral {bad}: not a token amount"):
            parse_amount(bad, 6, "--collateral")


def test_leverage_is_a_wad_multiple():
    assert parse_leverage("5") == 5 * WAD
    assert parse_leverage("2.5") == 5 * WAD // 2
    assert parse_leverage("0") == 0
    with pytest.raises(PopulateError, match="--leverage -1: must be ≥ 0"):
        parse_leverage("-1")
    with pytest.raises(PopulateError, match="--leverage x: not a number"):
        parse_leverage("x")


SCALE = 10**12  # a 6-decimal token
IM, TAKER = WAD // 10, 5 * WAD // 10_000


def test_a_fresh_side_targets_leverage_times_equity():
    # 10,000 of equity at 5x and 2,000 per ETH: 25 ETH (notional 50,000), well within the IMR.
    assert side_room(10_000 * WAD, 0, 0, 2000 * WAD, 5 * WAD, IM, TAKER, SCALE) == (25 * WAD, 25 * WAD)
    # Already 20 ETH long: 5 more to reach the target.
    assert side_room(10_000 * WAD, 4000 * WAD, 20 * WAD, 2000 * WAD, 5 * WAD, IM, TAKER, SCALE) == (
        5 * WAD,
        25 * WAD,
    )
    # Over the target, or with negative equity: nothing to add.
    assert side_room(10_000 * WAD, 6000 * WAD, 30 * WAD, 2000 * WAD, 5 * WAD, IM, TAKER, SCALE)[0] == 0
    assert side_room(-25 * WAD, 2500 * WAD, 25 * WAD, 2000 * WAD, 5 * WAD, IM, TAKER, SCALE) == (0, 0)


def test_at_the_initial_margin_limit_the_fee_still_fits():
    equity, price = 10_000 * WAD, 2000 * WAD
    room, target = side_room(equity, 0, 0, price, 10 * WAD, IM, TAKER, SCALE)
    assert target == 50 * WAD and room < target
    notional = mul_wad_up(room, price)
    fee_tokens = -(-mul_wad_up(notional, TAKER) // SCALE)
    assert mul_wad_up(notional, IM) + fee_tokens * SCALE + 1 <= equity  # what matchOrders checks
    # One step more (a millionth of an ETH) would not fit.
    more = mul_wad_up(room + 10**12, price)
    assert mul_wad_up(more, IM) + mul_wad_up(more, TAKER) > equity - 2 * SCALE


def test_a_pair_fills_the_smaller_room_rounded_and_skips_dust():
    assert pair_size((25 * WAD, 25 * WAD), (30 * WAD, 30 * WAD)) == 25 * WAD
    assert pair_size((25 * WAD + 123, 25 * WAD), (26 * WAD, 26 * WAD)) == 25 * WAD  # down to 1e-6
    assert pair_size((WAD // 4, 25 * WAD), (WAD, 25 * WAD)) == WAD // 4  # exactly 1 % of the target
    assert pair_size((WAD // 4 - 10**12, 25 * WAD), (WAD, 25 * WAD)) == 0  # under 1 %: left as is
    assert pair_size((0, 0), (0, 0)) == 0
