"""The plan's decision table and its human units (backstop.chain.plan), without a chain."""

from __future__ import annotations

import pytest

from backstop.chain.plan import EXECUTION_WINDOW, MARKET_FIELDS, NO_CAP, Change, duration, human, plan_target
from backstop.units import WAD

FEED = "0x" + "ab" * 20
NOW = 1_800_000_000
DELAY = 172_800


def params(mm=5, cap=100_000):
    return (
        FEED,
        86_400,
        WAD // 10,
        mm * WAD // 100,
        WAD // 100,
        WAD // 100,
        5 * WAD // 100,
        0,
        0,
        cap * WAD,
        NO_CAP,
    )


def target(current, wanted, scheduled=None, eta=0, now=NOW):
    return plan_target("ETH", 0, MARKET_FIELDS, current, wanted, scheduled, eta, now)


def test_same_values_and_nothing_scheduled_need_nothing():
    assert target(params(), params()) is None


def test_a_difference_with_nothing_scheduled_is_to_schedule():
    u = target(params(), params(mm=6, cap=120_000))
    assert u.status == "schedule" and u.eta == 0
    assert [str(c) for c in u.changes] == [
        "ETH maintenance margin 5 % → 6 %",
        "ETH open interest cap 100,000 → 120,000",
    ]
    assert u.describe(DELAY)[0] == "ETH: to schedule; executable 2 d after scheduling, for 14 d"


@pytest.mark.parametrize(
    ("now", "status"),
    [(NOW + DELAY - 1, "wait"), (NOW + DELAY, "execute"), (NOW + DELAY + EXECUTION_WINDOW, "execute")],
)
def test_the_configs_change_scheduled_waits_then_is_due_until_its_window_ends(now, status):
    u = target(params(), params(mm=6), scheduled=params(mm=6), eta=NOW + DELAY, now=now)
    assert u.status == status and u.eta == NOW + DELAY


def test_a_change_past_its_window_has_expired_and_is_scheduled_again():
    u = target(params(), params(mm=6), scheduled=params(mm=6), eta=NOW, now=NOW + EXECUTION_WINDOW + 1)
    assert u.status == "schedule" and u.eta == 0


def test_an_expired_change_the_config_no_longer_wants_is_left_alone():
    assert target(params(), params(), scheduled=params(mm=6), eta=NOW, now=NOW + EXECUTION_WINDOW + 1) is None


def test_a_different_change_scheduled_is_replaced():
    u = target(params(), params(mm=7), scheduled=params(mm=6), eta=NOW + 10)
    assert u.status == "replace"
    assert [str(c) for c in u.changes] == ["ETH maintenance margin 5 % → 7 %"]


def test_a_change_scheduled_that_the_config_does_not_want_is_cancelled():
    u = target(params(), params(), scheduled=params(mm=6), eta=NOW + 10)
    assert u.status == "cancel" and not u.chain_differs
    assert u.describe(DELAY)[1] == "  scheduled: ETH maintenance margin 5 % → 6 %"


def test_addresses_compare_without_case():
    assert target(params(), (FEED.upper().replace("0X", "0x"), *params()[1:])) is None


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (5 * WAD // 100, "ratio", "5 %"),
        (2 * WAD // 10_000, "ratio", "0.02 %"),
        (WAD, "ratio", "100 %"),
        (100_000 * WAD, "base", "100,000"),
        (15 * WAD // 10, "base", "1.5"),
        (NO_CAP, "quote", "no cap"),
        (1_000 * WAD, "quote", "1,000"),
        (86_400, "seconds", "86,400 s (1 d)"),
        (30, "seconds", "30 s"),
        ("0x" + "0" * 40, "address", "none"),
        (FEED, "address", FEED),
    ],
)
def test_human_units(value, unit, text):
    assert human(value, unit) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (59, "59 s"), (60, "1 min"), (3_660, "1 h 1 min"), (90_000, "1 d 1 h"), (172_800, "2 d")],
)
def test_duration_keeps_the_two_largest_units(seconds, text):
    assert duration(seconds) == text


def test_a_change_prints_as_an_operator_reads_it():
    c = Change("BTC", "heartbeat", "heartbeat", "seconds", 86_400, 3_600)
    assert str(c) == "BTC heartbeat 86,400 s (1 d) → 3,600 s (1 h)"
