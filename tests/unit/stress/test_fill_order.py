"""``trade … via: fill`` on the reference-model backend (scenarios/fill_order.yaml): the maker's
order is filled by the taker itself through ``Model.fill_order``, with the maker fee on the maker
and the taker fee on the taker, and the same numbers and errors as a matched trade.

No chain: ``.venv/bin/python -m pytest tests/unit/stress -p no:ape_test -q``.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from backstop.model import Model
from backstop.scenario import load_scenario, parse_scenario_text
from backstop.stress import ModelBackend, run
from backstop.stress.report import to_json
from backstop.units import WAD

ROOT = Path(__file__).resolve().parents[3]
FILL_ORDER = ROOT / "scenarios" / "fill_order.yaml"
TOKEN = 10**6  # the scenario's collateral has 6 decimals


def wad(text: str) -> int:
    return int(Decimal(text) * WAD)


def test_the_fill_order_scenario_on_the_model_charges_the_taker_the_taker_fee():
    result = run(load_scenario(FILL_ORDER), ModelBackend())
    assert result.ok, result.failures
    assert [(s.reverted, s.error) for s in result.steps] == [
        (False, None),
        (False, None),
        (True, "InsufficientMargin"),
        (True, "PriceOutsideBand"),
        (True, "SelfTrade"),
        (True, "ZeroFill"),
        (False, None),
        (False, None),
        (False, None),
    ]
    # states[0] is the start, states[i + 1] the state after steps[i]; the oracle stays at 2,000
    # until steps[7], so equity is margin plus realized P&L
    equity = [s.equity for s in result.states]
    # steps[0]: tia (buyer, the taker: she sends fillOrder) pays 0.05 % of 4,000, mo (the maker) 0.02 %
    assert (equity[1]["tia"], equity[1]["mo"]) == (wad("1998"), wad("19999.2"))
    # steps[1]: mo makes the buy at 2,010, tia sells into it: the taker fee 1.005 is hers again,
    # plus her +10 on the half she closes; mo pays 0.402 and loses 10
    assert (equity[2]["tia"], equity[2]["mo"]) == (wad("2006.995"), wad("19988.798"))
    # the refusals move nothing
    assert equity[3:7] == [equity[2]] * 4
    assert [s.fund_assets for s in result.states] == [
        0, wad("2.8"), *[wad("4.207")] * 5, wad("5.607"), wad("5.607"), wad("5.607"),
    ]  # fmt: skip
    assert result.totals["trading_fees"] == wad("5.607") == result.insurance_assets
    # the end: tia long 2 at 2,000, 1,585.995 withdrawn; mo short 2; sam untouched
    tia, mo, sam = (result.accounts[n] for n in ("tia", "mo", "sam"))
    assert tia.positions == {"ETH": (2 * WAD, 4000 * WAD)} and mo.positions == {
        "ETH": (-2 * WAD, -4000 * WAD)
    }
    assert (tia.margin, tia.equity, tia.free_collateral) == (wad("420"), wad("620"), 0)
    assert mo.margin == wad("19988.398")
    assert (sam.margin, sam.positions) == (100 * WAD, {})
    assert result.flows == {"mo": -20_000 * TOKEN, "tia": -414_005_000, "sam": -100 * TOKEN}
    assert result.solvency[2] == 0


def test_via_fill_plays_fill_order_with_the_makers_order_and_the_takers_address(monkeypatch):
    calls: list[tuple] = []
    fill_order, match = Model.fill_order, Model.match

    def spy_fill(self, order, signer_ok, taker, q):
        calls.append(("fill_order", order, signer_ok, taker, q))
        return fill_order(self, order, signer_ok, taker, q)

    def spy_match(self, maker, maker_ok, taker, taker_ok, q):
        calls.append(("match", maker, maker_ok, taker, taker_ok, q))
        return match(self, maker, maker_ok, taker, taker_ok, q)

    monkeypatch.setattr(Model, "fill_order", spy_fill)
    monkeypatch.setattr(Model, "match", spy_match)
    backend = ModelBackend()
    result = run(load_scenario(FILL_ORDER), backend)
    assert result.ok, result.failures
    mo, tia, sam = (backend.addresses[n] for n in ("mo", "tia", "sam"))

    def order(call):
        o = call[1]
        return (o.account, o.market_id, o.is_buy, o.size, o.limit_price, o.nonce)

    assert [call[0] for call in calls] == ["fill_order"] * 6 + ["match"]
    # the maker's order (mo's, a fresh nonce each time), signed; the taker is the sender
    assert [(order(c), c[2], c[3], c[4]) for c in calls[:6]] == [
        ((mo, 0, False, 2 * WAD, 2000 * WAD, 0), True, tia, 2 * WAD),
        ((mo, 0, True, 1 * WAD, 2010 * WAD, 1), True, tia, 1 * WAD),  # maker: buyer
        ((mo, 0, False, 1 * WAD, 2000 * WAD, 2), True, sam, 1 * WAD),
        ((mo, 0, False, 1 * WAD, 2200 * WAD, 3), True, tia, 1 * WAD),
        ((mo, 0, False, 1 * WAD, 2000 * WAD, 4), True, mo, 1 * WAD),  # a self fill
        ((mo, 0, False, 0, 2000 * WAD, 5), True, tia, 0),
    ]
    # via: match: both orders; tia signed none before (a taker of a fill signs nothing): nonce 0
    [(_, maker, maker_ok, taker, taker_ok, q)] = calls[6:]
    assert (maker.account, maker.is_buy, maker.nonce, maker_ok) == (mo, False, 6, True)
    assert (taker.account, taker.is_buy, taker.nonce, taker_ok, q) == (tia, True, 0, True, WAD)


def test_fill_and_match_give_the_same_report_but_for_the_step_descriptions():
    text = FILL_ORDER.read_text()
    assert text.count(", via: fill") == 6  # steps[0..5]
    by_fill = to_json(run(parse_scenario_text(text), ModelBackend()))
    by_match = to_json(run(parse_scenario_text(text.replace(", via: fill", ", via: match")), ModelBackend()))
    assert by_fill["ok"] and by_match["ok"]
    fill_descriptions = [step.pop("description") for step in by_fill["steps"]]
    match_descriptions = [step.pop("description") for step in by_match["steps"]]
    assert by_fill == by_match
    assert fill_descriptions[:2] == [
        "trade tia<-mo ETH 2 @ 2000 (tia fills)",
        "trade mo<-tia ETH 1 @ 2010 (buyer makes, tia fills)",
    ]
    assert fill_descriptions[4] == "trade mo<-mo ETH 1 @ 2000 (mo fills) (expect revert SelfTrade)"
    assert match_descriptions[:2] == [
        "trade tia<-mo ETH 2 @ 2000",
        "trade mo<-tia ETH 1 @ 2010 (buyer makes)",
    ]
    assert fill_descriptions[6:] == match_descriptions[6:]  # the via: match trade and after


def test_a_fill_that_reverts_with_another_error_than_expected_fails_the_run():
    s = parse_scenario_text(
        FILL_ORDER.read_text().replace(
            "price: 2000, via: fill, expect_revert: InsufficientMargin",
            "price: 2000, via: fill, expect_revert: PriceOutsideBand",
        )
    )
    result = run(s, ModelBackend())
    assert not result.ok
    assert result.failures == ["steps[2] (trade): expected revert PriceOutsideBand, got InsufficientMargin"]
