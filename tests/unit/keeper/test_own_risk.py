"""The keeper's own-risk figures and their human rendering (backstop.keeper.risk, docs/keeper.md
§"The keeper's own risk"): exact integers in, quote units with two decimals out."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from backstop.decisions import Book, MarketTerms
from backstop.keeper import Keeper
from backstop.keeper.risk import DEFAULT_MIN_BUFFER, OwnRisk, human, ratio
from backstop.units import WAD

ETH = MarketTerms(0, 2_000 * WAD, WAD // 10, WAD // 20, WAD // 100, 1_000 * WAD, 0)


@pytest.mark.parametrize(
    ("wad", "text"),
    [
        (0, "0.00"),
        (12_345_670 * 10**15, "12,345.67"),
        (-2_525 * WAD, "-2,525.00"),
        (5 * 10**15, "0.01"),  # half up
        (5 * 10**15 - 1, "0.00"),
        (-5 * 10**15, "-0.01"),
        (-1, "0.00"),
        (1_000_000_000 * WAD + 1, "1,000,000,000.00"),
    ],
)
def test_human_renders_wad_in_quote_units(wad, text):
    assert human(wad) == text


def test_ratio_rounds_and_says_inf_without_a_denominator():
    assert ratio(10_000, 12_345) == "0.81"
    assert ratio(1, 0) == "inf"
    assert ratio(1, -5) == "inf"
    assert ratio(DEFAULT_MIN_BUFFER, WAD) == "0.20"


def keeper_book(margin: int, size: int) -> Book:
    positions = {0: (size, size * 2_000)} if size else {}  # opened at the oracle price: u = 0
    return Book("0x" + "ee" * 20, margin, 0, positions)


def test_own_risk_of_a_long_keeper_and_its_log_line(caplog):
    # 5 ETH long at 2,000 with 12,345.67 of margin: N = 10,000, IMR = 1,000, MMR = 500,
    # F = 12,345.67 − 1,000, leverage 10,000 / 12,345.67 = 0.81x, buffer 11.34567 → 11.35.
    risk = OwnRisk.of(keeper_book(12_345_670 * 10**15, 5 * WAD), {0: ETH}, 42)
    assert (risk.equity, risk.imr, risk.mmr, risk.free, risk.notional) == (
        12_345_670 * 10**15,
        1_000 * WAD,
        500 * WAD,
        11_345_670 * 10**15,
        10_000 * WAD,
    )
    assert risk.fields() == {
        "equity": "12,345.67",
        "imr": "1,000.00",
        "mmr": "500.00",
        "free": "11,345.67",
        "notional": "10,000.00",
        "leverage": "0.81x",
        "buffer": "11.35",
    }
    logger = logging.getLogger("test.own_risk")
    caplog.set_level(logging.INFO, logger="test.own_risk")
    Keeper._event(SimpleNamespace(log=logger), logging.INFO, "own_risk", block=risk.block, **risk.fields())
    assert caplog.messages == [
        "keeper own_risk block=42 equity=12,345.67 imr=1,000.00 mmr=500.00 free=11,345.67 "
        "notional=10,000.00 leverage=0.81x buffer=11.35"
    ]


def test_a_flat_or_underwater_keeper():
    flat = OwnRisk.of(keeper_book(100 * WAD, 0), {0: ETH}, 1)
    assert flat.fields()["leverage"] == "0.00x"
    assert flat.fields()["buffer"] == "inf"
    assert flat.leverage == 0 and flat.buffer is None
    assert not flat.buffer_low(DEFAULT_MIN_BUFFER)
    # 1 ETH long opened at 3,000 with 500 of margin: E = 500 − 1,000 < 0.
    under = OwnRisk.of(Book("0x" + "ee" * 20, 500 * WAD, 0, {0: (WAD, 3_000 * WAD)}), {0: ETH}, 1)
    assert under.equity == -500 * WAD
    assert under.fields()["leverage"] == "inf"
    assert under.leverage is None
    assert under.buffer_low(0)


def test_the_buffer_is_low_strictly_under_the_threshold():
    # IMR = 1,000 (5 ETH): F = margin − 1,000; the threshold 0.2 needs F ≥ 200.
    at = OwnRisk.of(keeper_book(1_200 * WAD, 5 * WAD), {0: ETH}, 1)
    assert at.free == 200 * WAD and not at.buffer_low(DEFAULT_MIN_BUFFER)
    below = OwnRisk.of(keeper_book(1_200 * WAD - 1, 5 * WAD), {0: ETH}, 1)
    assert below.buffer_low(DEFAULT_MIN_BUFFER)
    assert below.fields()["buffer"] == "0.20"  # rounded for the line; the check is exact
