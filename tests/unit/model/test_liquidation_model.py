# Pure Python, no chain. Run without the Ape plugin (its entry point is named `ape_test`):
#   .venv/bin/python -m pytest tests/unit/model -p no:ape_test -q
"""Liquidation, the insurance-fund waterfall and socialized loss in the reference model.

Every number is worked out by hand from docs/margin-math.md §Liquidation. Unless a test says
otherwise: a 6-decimal token (SCALE = 1e12), market 0 at price 100 with IM 10 %, MM 5 %, keeper
reward 1 %, insurance fee 1 %, band 10 %, no trading fees; the keeper has 1,000 tokens.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from backstop.decisions import plan_liquidations
from backstop.model import LONG, SHORT, Model, ModelRevert, mul_wad_down, mul_wad_up
from backstop.orders import FAR_EXPIRY, Order
from tests.unit.model.test_model import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    FILL,
    W,
    assert_zero_sum,
    make_model,
    params,
    reverts,
    state,
    tokens,
    trade,
)

ERIN = "0x00000000000000000000000000000000000E0714"
KEEPER = "0x000000000000000000000000000000000000CEE9"
KEEPER2 = "0x000000000000000000000000000000000000CEE2"
STAKER = "0x0000000000000000000000000000000000057A4E"
WAD = 10**18


def keeper_model(**deposits: int) -> Model:
    model = make_model(**deposits)
    model.deposit(KEEPER, tokens(1_000))
    return model


def check_solvency(model: Model, bound: int = 0) -> dict[str, int]:
    sol = model.solvency()
    assert sol["vault_assets"] == sol["liabilities"] + sol["dust"]
    assert 0 <= sol["dust"] <= bound, sol
    # The loss still to be settled always funds what the O(1) ledger says is unsettled.
    assert model.total_pending_loss() >= model.unsettled_loss
    return sol


# --- (a) the account stays solvent ----------------------------------------------------------------


def test_solvent_liquidation_pays_keeper_and_full_fee():
    model = keeper_model(alice=100, bob=10_000)
    trade(model, ALICE, BOB, W(10), W(100))
    model.set_price(0, W(94))
    # E = 100 + 940 − 1,000 = 40 < MMR = 47.
    assert model.liquidatable(ALICE)
    result = model.liquidate(ALICE, KEEPER)
    # u = −60, m0 = 40; n = 940; K = 9.4; raw fee 9.4 ≤ m0 − K = 30.6 -> 9,400,000 units;
    # m1 = 40 − 9.4 − 9.4 = 21.2, kept.
    assert result == {
        "notional": W(940),
        "keeper_reward": W("9.4"),
        "insurance_fee": W("9.4"),
        "deficit": 0,
        "covered": 0,
        "socialized": 0,
        "index_deltas": [],
    }
    assert model.margin(ALICE) == W("21.2")
    assert model.markets_of(ALICE) == [] and model.position(ALICE, 0) == (0, 0)
    # The keeper takes long 10 at 94 and the reward: margin 1,009.4, E ≥ IMR 94.
    assert model.position(KEEPER, 0) == (W(10), W(940))
    assert model.margin(KEEPER) == W("1009.4")
    assert model.fund_assets() == tokens("9.4")
    assert model.fund_credit == tokens("9.4")  # booked in the vault for the fund, not transferred
    assert model.vault_tokens == tokens(11_100)
    assert model.loss_index(0, SHORT) == 0 and model.unsettled_loss == 0
    assert_zero_sum(model)
    check_solvency(model)


def test_solvent_liquidation_with_the_fee_capped_by_remaining_equity():
    model = keeper_model(alice=100, bob=10_000)
    trade(model, ALICE, BOB, W(10), W(100))
    model.set_price(0, W("91.00000011"))
    result = model.liquidate(ALICE, KEEPER)
    # u = 910.0000011 − 1,000 = −89.9999989; m0 = 10.0000011; n = 910.0000011; K = 9.100000011;
    # m0 − K = 0.900001089 < raw fee 9.100000011: fee = 0.900001089e18 // 1e12 = 900,001 units
    # (0.900001 token, rounded down to a unit); m1 = 0.000000089 (less than a unit) stays with Alice.
    assert result["keeper_reward"] == W("9.100000011")
    assert result["insurance_fee"] == W("0.900001")
    assert result["deficit"] == 0
    assert model.margin(ALICE) == W("0.000000089")
    assert model.fund_assets() == 900_001
    check_solvency(model)


# --- (b) bankrupt, fully covered by the fund ------------------------------------------------------


def test_bankrupt_account_fully_covered_by_the_fund():
    model = keeper_model(alice=100, bob=10_000)
    model.stake(STAKER, tokens(1_000))
    trade(model, ALICE, BOB, W(10), W(100))
    model.set_price(0, W("84.9999999999995"))
    vault = model.vault_tokens
    result = model.liquidate(ALICE, KEEPER)
    # u = 849.999999999995 − 1,000 = −150.000000000005; m0 = −50.000000000005;
    # n = 849.999999999995; K = 8.49999999999995; fee 0 (m0 − K < 0);
    # D = 58.50000000000495 -> ceilDiv(D, 1e12) = 58,500,001 units ≤ coverable (1,000 tokens).
    assert result["deficit"] == 58_500_000_000_004_950_000
    assert result["insurance_fee"] == 0
    assert result["covered"] == 58_500_001 * 10**12
    assert result["socialized"] == 0 and result["index_deltas"] == []
    assert model.margin(ALICE) == 0
    assert model.fund_assets() == tokens(1_000) - 58_500_001
    assert model.vault_tokens == vault + 58_500_001
    # The cover's excess over D (less than a unit) stays in the vault as dust:
    # 58,500,001e12 − 58,500,000,000,004,950,000 = 999,995,050,000 wei.
    assert check_solvency(model, 10**12)["dust"] == 999_995_050_000


# --- (c) partly covered, the rest socialized to three winners -------------------------------------


def socialized_three_winners() -> tuple[Model, dict[str, Any]]:
    """Alice long 10e18 + 7 wei from Carol (1.5e18 + 1), Dave (3.2e18 + 2), Erin (5.3e18 + 4) at 100."""
    model = keeper_model(alice=101, carol=1_000, dave=1_000)
    model.deposit(ERIN, tokens(1_000))
    model.stake(STAKER, tokens(20))
    trade(model, ALICE, CAROL, W("1.5") + 1, W(100))
    trade(model, ALICE, DAVE, W("3.2") + 2, W(100))
    trade(model, ALICE, ERIN, W("5.3") + 4, W(100))
    assert model.position(ALICE, 0) == (W(10) + 7, W(1_000) + 700)
    model.set_price(0, W(80))
    return model, model.liquidate(ALICE, KEEPER)


def test_partly_covered_rest_socialized_pro_rata_to_three_winners():
    model, result = socialized_three_winners()
    # u = 80·(10e18 + 7) − (1,000e18 + 700) = −200e18 − 140; m0 = 101e18 − 200e18 − 140 = −99e18 − 140.
    # n = 800e18 + 560; K = floor(8e18 + 5.6) = 8e18 + 5; fee 0; D = 107e18 + 145.
    # Cover: min(ceilDiv(D, 1e12) = 107,000,001, coverable 20,000,000) = 20 tokens; R = 87e18 + 145.
    assert result["notional"] == W(800) + 560
    assert result["keeper_reward"] == W(8) + 5
    assert result["deficit"] == W(107) + 145
    assert result["covered"] == W(20)
    assert result["socialized"] == W(87) + 145
    # ΔL = ceil((87e18 + 145)·1e18 / (10e18 + 7)) = ceil(8.7e18 + 14.5 − 6.09 + ...) = 8.7e18 + 9.
    delta = W("8.7") + 9
    assert result["index_deltas"] == [(0, SHORT, W(87) + 145, delta)]
    assert model.loss_index(0, SHORT) == delta and model.loss_index(0, LONG) == 0
    assert model.fund_assets() == 0

    # Pending = mulWadUp(|size|, ΔL):
    #   Carol (1.5e18 + 1)(8.7e18 + 9)/1e18 = 13.05e18 + 13.5 + 8.7 + ε -> 13.05e18 + 23
    #   Dave  (3.2e18 + 2)(8.7e18 + 9)/1e18 = 27.84e18 + 28.8 + 17.4 + ε -> 27.84e18 + 47
    #   Erin  (5.3e18 + 4)(8.7e18 + 9)/1e18 = 46.11e18 + 47.7 + 34.8 + ε -> 46.11e18 + 83
    pending = {CAROL: W("13.05") + 23, DAVE: W("27.84") + 47, ERIN: W("46.11") + 83}
    for who, owed in pending.items():
        assert model.pending_loss(who) == owed == mul_wad_up(abs(model.position(who, 0)[0]), delta)
    assert model.pending_loss(KEEPER) == 0  # it took the long side: not charged
    # Σ = 87e18 + 153 ≥ R: the winners fund the loss, 8 wei over. That excess is bounded by one wei
    # per winner (the per-position ceil) plus OI/1e18 wei (the ceil of ΔL): 8 < 3 + 10.
    excess = sum(pending.values()) - result["socialized"]
    assert excess == 8
    assert excess < 3 + (W(10) + 7) / WAD
    # Ledger: unsettled_loss = R; nothing rounds at exact prices, so no dust yet.
    assert model.unsettled_loss == W(87) + 145
    check_solvency(model)
    assert_zero_sum(model)


# --- (d) empty fund: all socialized ---------------------------------------------------------------


def test_fund_at_its_floor_covers_nothing_and_everything_is_socialized():
    model = Model(6, floor_tokens=tokens(50))
    model.add_market(params(), W(100))
    for who, amount in ((ALICE, 100), (CAROL, 1_000), (KEEPER, 1_000)):
        model.deposit(who, tokens(amount))
    model.stake(STAKER, tokens(50))  # exactly the floor: coverable 0
    trade(model, ALICE, CAROL, W(10), W(100))
    model.set_price(0, W(80))
    result = model.liquidate(ALICE, KEEPER)
    # m0 = 100 − 200 = −100; K = 8; D = 108; cover 0; R = 108; ΔL = 108 / 10 = 10.8.
    assert (result["deficit"], result["covered"], result["socialized"]) == (W(108), 0, W(108))
    assert result["index_deltas"] == [(0, SHORT, W(108), W("10.8"))]
    assert model.fund_assets() == tokens(50)
    assert model.pending_loss(CAROL) == W(108)
    check_solvency(model)


# --- (e) two markets: only the losing market's winners pay ----------------------------------------


def test_two_market_account_socializes_only_to_the_market_it_lost_in():
    model = keeper_model(alice=200, carol=10_000, dave=10_000)
    btc = model.add_market(params(), W(1_000))
    trade(model, ALICE, CAROL, W(10), W(100))  # Alice long 10 ETH
    trade(model, DAVE, ALICE, W(1), W(1_000), market=btc)  # Alice short 1 BTC; IMR 100 + 100 = 200
    model.set_price(0, W(70))
    model.set_price(btc, W(950))
    # ETH u = −300 (lost), BTC u = +50 (won); m0 = 200 − 250 = −50; n = 700 + 950;
    # K = 7 + 9.5 = 16.5; fee 0; D = 66.5; empty fund: R = 66.5, all of it to ETH (the only u < 0).
    result = model.liquidate(ALICE, KEEPER)
    assert result["notional"] == W(1_650)
    assert result["deficit"] == result["socialized"] == W("66.5")
    assert result["index_deltas"] == [(0, SHORT, W("66.5"), W("6.65"))]
    assert model.loss_index(btc, LONG) == model.loss_index(btc, SHORT) == 0
    assert model.pending_loss(CAROL) == W("66.5")
    assert model.pending_loss(DAVE) == 0  # lost to Alice in BTC: never charged
    # The keeper took both positions, in market-list order.
    assert model.markets_of(KEEPER) == [0, btc]
    assert model.position(KEEPER, btc) == (W(-1), W(-950))
    check_solvency(model)


# --- (f) deficit from the keeper reward alone: split by notional ----------------------------------


def test_deficit_without_a_losing_market_is_split_by_notional():
    model = keeper_model(bob=100, alice=150, carol=1_000, dave=1_000)
    model.deposit(KEEPER2, tokens(10_000))
    btc = model.add_market(params(), W(1_000))
    model.stake(STAKER, tokens(26))
    trade(model, BOB, ALICE, W(5), W(100))  # Alice short 5 ETH
    trade(model, BOB, CAROL, W(5), W(100))
    trade(model, ALICE, DAVE, W(1), W(1_000), market=btc)  # Alice long 1 BTC: IMR 50 + 100 = 150

    # Bob goes bankrupt at 60: m0 = 100 − 400 = −300, K = 6, D = 306, cover 26, R = 280, ΔL = 28:
    # Alice owes 5 × 28 = 140 (and Carol 140).
    model.set_price(0, W(60))
    first = model.liquidate(BOB, KEEPER)
    assert (first["covered"], first["socialized"]) == (W(26), W(280))
    assert model.pending_loss(ALICE) == W(140)

    # ETH back at 100: Alice's u is 0 in both markets, but E = 150 − 140 = 10 < MMR = 25 + 50.
    model.set_price(0, W(100))
    assert model.equity(ALICE) == W(10) and model.liquidatable(ALICE)
    result = model.liquidate(ALICE, KEEPER2)
    # Touch: margin 10. m0 = 10 + 0 + 0; n = 500 + 1,000; K = 5 + 10 = 15; fee 0; D = 5; fund at 0.
    assert result["notional"] == W(1_500) and result["keeper_reward"] == W(15)
    assert result["deficit"] == result["socialized"] == W(5)
    # Weights 500 : 1,000. ETH: 5e18·500e18 // 1,500e18 = 1,666,666,666,666,666,666 to the LONG side
    # (the keeper's 10): ΔL = ceil(166,666,666,666,666,666.6) = 166,666,666,666,666,667.
    # BTC (the last) gets the rest, 3,333,333,333,333,333,334, on the SHORT side (Dave's 1).
    r_eth, r_btc = 1_666_666_666_666_666_666, 3_333_333_333_333_333_334
    assert result["index_deltas"] == [
        (0, LONG, r_eth, 166_666_666_666_666_667),
        (btc, SHORT, r_btc, r_btc),
    ]
    assert model.pending_loss(KEEPER) == 1_666_666_666_666_666_670  # 10 × ΔL, 4 wei over R_eth
    assert model.pending_loss(DAVE) == r_btc
    assert model.margin(ALICE) == 0 and model.markets_of(ALICE) == []
    assert model.markets_of(KEEPER2) == [0, btc]
    check_solvency(model)


# --- (g) the liquidator must end above its initial requirement ------------------------------------


def test_liquidator_that_would_end_below_im_reverts_and_nothing_changes():
    model = make_model(alice=100, bob=10_000)
    model.deposit(KEEPER, tokens(80))
    trade(model, ALICE, BOB, W(10), W(100))
    model.set_price(0, W(94))
    # After taking long 10 at 94: E = 80 + 9.4 = 89.4 < IMR = 94.
    err = reverts(model, "InsufficientMargin", model.liquidate, ALICE, KEEPER)
    assert err.args == (KEEPER, W("89.4"), W(94))
    model.deposit(KEEPER, tokens("4.6"))  # E = 94 = IMR: inclusive
    model.liquidate(ALICE, KEEPER)
    assert model.equity(KEEPER) == model.initial_margin(KEEPER) == W(94)


def test_liquidator_with_eight_other_markets_reverts_too_many_markets():
    model = keeper_model(alice=100, bob=10_000, carol=100_000)
    for _ in range(8):
        model.add_market(params(), W(100))
    for m in range(1, 9):
        trade(model, KEEPER, CAROL, W(1), W(100), market=m)
    trade(model, ALICE, BOB, W(10), W(100))
    model.set_price(0, W(94))
    assert reverts(model, "TooManyMarkets", model.liquidate, ALICE, KEEPER).args == (KEEPER,)
    model.liquidate(ALICE, BOB)  # Bob already holds market 0: it nets, no new slot


def test_stale_price_of_any_market_of_the_account_blocks_liquidation():
    model = keeper_model(alice=200, bob=10_000)
    btc = model.add_market(params(), W(1_000))
    trade(model, ALICE, BOB, W(10), W(100))
    trade(model, ALICE, BOB, W("0.1"), W(1_000), market=btc)
    model.set_price(0, W(80))  # E = 200 − 200 = 0 < MMR = 40 + 5
    model.set_stale(btc, True)
    assert reverts(model, "StalePrice", model.liquidate, ALICE, KEEPER).args == (btc,)
    model.set_stale(btc, False)
    model.liquidate(ALICE, KEEPER)


# --- (h) a liquidator on the winning side pays its share before netting ---------------------------


def test_liquidator_holding_the_opposite_side_pays_its_share_first():
    model = keeper_model(bob=100, carol=1_000)
    trade(model, BOB, CAROL, W(6), W(100))
    trade(model, BOB, KEEPER, W(4), W(100))  # the keeper is short 4
    model.set_price(0, W(80))
    result = model.liquidate(BOB, KEEPER)
    # D = 108 (K = 8), no fund: R = 108 over OI 10: ΔL = 10.8, charged to Carol (6) and the keeper (4).
    assert result["index_deltas"] == [(0, SHORT, W(108), W("10.8"))]
    # The keeper is touched after the index moved: pays 4 × 10.8 = 43.2; then takes +10 on −4 (a
    # flip): closes 4 at 80, realizing −320 + 400 = +80, opens long 6 at 80 (basis 480); gets K = 8.
    assert model.margin(KEEPER) == W(1_000) - W("43.2") + W(80) + W(8) == W("1044.8")
    assert model.position(KEEPER, 0) == (W(6), W(480))
    assert model.pending_loss(KEEPER) == 0
    assert model.pending_loss(CAROL) == W("64.8")
    assert model.unsettled_loss == W(108) - W("43.2") == W("64.8")
    check_solvency(model)
    assert_zero_sum(model)


# --- (i) who can be liquidated, and by whom ---------------------------------------------------------


def test_not_liquidatable_at_the_boundary_flat_or_unknown_and_no_self_liquidation():
    model = keeper_model(alice=145, bob=10_000, carol=5)
    trade(model, ALICE, BOB, W(10), W(100))
    model.set_price(0, W(90))
    # E = 145 − 100 = 45 = MMR = 45: the bound is strict.
    assert not model.liquidatable(ALICE)
    err = reverts(model, "NotLiquidatable", model.liquidate, ALICE, KEEPER)
    assert err.args == (ALICE, W(45), W(45))
    # SelfLiquidation is checked first, before the account is even read.
    assert reverts(model, "SelfLiquidation", model.liquidate, ALICE, ALICE).args == (ALICE,)

    # Flat account: E = margin, MMR = 0, no price needed.
    model.set_stale(0, True)
    reverts(model, "SelfLiquidation", model.liquidate, ALICE, ALICE)  # before the stale price
    reverts(model, "StalePrice", model.liquidate, ALICE, KEEPER)
    assert not model.liquidatable(CAROL)
    assert reverts(model, "NotLiquidatable", model.liquidate, CAROL, KEEPER).args == (CAROL, W(5), 0)
    assert reverts(model, "NotLiquidatable", model.liquidate, DAVE, KEEPER).args == (DAVE, 0, 0)
    model.set_stale(0, False)

    # One wei lower: E = 45e18 − 10 < MMR = ceil(0.05 × (900e18 − 10)) = 45e18.
    model.set_price(0, W(90) - 1)
    assert model.liquidatable(ALICE)
    assert reverts(model, "SelfLiquidation", model.liquidate, ALICE, ALICE).args == (ALICE,)
    model.liquidate(ALICE, KEEPER)


# --- (j) pauses do not stop liquidations ----------------------------------------------------------


def test_liquidation_works_while_trading_is_paused():
    model = keeper_model(alice=100, bob=10_000)
    trade(model, ALICE, BOB, W(10), W(100))
    model.set_price(0, W(94))
    model.set_paused(0, True)
    model.set_global_paused(True)
    reverts(model, "TradingPaused", trade, model, BOB, ALICE, W(1), W(94))
    model.liquidate(ALICE, KEEPER)
    assert model.position(KEEPER, 0) == (W(10), W(940))


# --- (k) settling the socialized loss: settle, withdraw and trade ---------------------------------


def test_pending_loss_is_settled_by_settle_withdraw_and_trade():
    model, result = socialized_three_winners()
    assert model.unsettled_loss == result["socialized"] == W(87) + 145

    model.settle(CAROL)
    assert model.margin(CAROL) == W(1_000) - W("13.05") - 23
    assert model.unsettled_loss == W(87) + 145 - (W("13.05") + 23)
    check_solvency(model)

    model.withdraw(DAVE, tokens(10))  # touches first
    assert model.margin(DAVE) == W(990) - W("27.84") - 47
    assert model.unsettled_loss == W("46.11") + 145 - 23 - 47
    check_solvency(model)

    trade(model, ERIN, KEEPER, W(1), W(80))  # Erin buys back 1 of her short 5.3
    assert model.pending_loss(ERIN) == 0
    # Settled 46.11e18 + 83; the buy closes 1 of −(5.3e18 + 4) with basis −(530e18 + 400):
    # k = ceil(−(530e18 + 400)·1e18 / (5.3e18 + 4)) = −100e18; c = 80e18; r = −80 + 100 = +20.
    assert model.margin(ERIN) == W(1_000) - W("46.11") - 83 + W(20)
    # Everything settled: the ledger ends 8 wei below zero, the winners' over-payment.
    assert model.unsettled_loss == -8
    assert model.total_pending_loss() == 0
    check_solvency(model)
    assert_zero_sum(model)


# --- the worked example of docs/waterfall.md ------------------------------------------------------

DOC = Path(__file__).resolve().parents[3] / "docs" / "waterfall.md"


def _doc_snippet() -> str:
    text = DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "docs/waterfall.md must hold exactly one python block"
    return blocks[0]


def test_waterfall_doc_example_numbers():
    scope: dict[str, Any] = {}
    exec(compile(_doc_snippet(), str(DOC), "exec"), scope)
    m: Model = scope["m"]
    r = scope["result"]
    bob, carol, dave, keeper = scope["BOB"], scope["CAROL"], scope["DAVE"], scope["KEEPER"]

    assert scope["before_crash"] == {"vault_assets": W(8_100), "liabilities": W(8_100), "dust": 0}
    assert scope["bob_at_crash"].equity == W(-900) and scope["bob_at_crash"].mmr == W(850)
    # Realized −3,000, m0 = −900, K = 170, fee 0, D = 1,070, fund 600 − floor 100 -> cover 500,
    # R = 570, ΔL = 57 per ETH on the short side.
    assert r == {
        "notional": W(17_000),
        "keeper_reward": W(170),
        "insurance_fee": 0,
        "deficit": W(1_070),
        "covered": W(500),
        "socialized": W(570),
        "index_deltas": [(0, SHORT, W(570), W(57))],
    }
    assert scope["pending"] == {"carol": W(342), "dave": W(228)}
    assert scope["after_liquidation"] == {"vault_assets": W(8_600), "liabilities": W(8_600), "dust": 0}
    assert scope["unsettled_after_liquidation"] == W(570)
    assert m.margin(bob) == 0 and m.markets_of(bob) == []
    assert m.margin(carol) == W(1_658) and m.margin(dave) == W(1_772)
    assert m.margin(keeper) == W(2_170) and m.position(keeper, 0) == (W(10), W(17_000))
    assert m.unsettled_loss == 0
    assert m.solvency() == {"vault_assets": W(8_600), "liabilities": W(8_600), "dust": 0}
    assert m.fund_assets() == 100_000_000
    assert scope["erin_value"] == 100_000_000  # 6e14 · (1e8 + 1) // (6e14 + 1e6)

    # The doc's tables quote these figures.
    text = DOC.read_text()
    for figure in ("−3,000", "−900", "170", "1,070", "500", "570", "57", "342", "228", "1,658", "1,772"):
        assert figure in text, figure
    for line in scope["printed"]:
        assert line in text, f"the doc does not show the snippet's output line {line!r}"


# --- properties: trading, crashes, liquidations, staking ------------------------------------------

TRADERS = [ALICE, BOB, CAROL, DAVE]
STAKERS = [STAKER, ERIN]
trader = st.integers(0, len(TRADERS) - 1)
market = st.integers(0, 1)
staker = st.integers(0, len(STAKERS) - 1)
permille = st.integers(1, 1_000)

DAY = 86400
OPS = st.one_of(
    FILL,
    # a fill sized to use `pct` % of the smaller free collateral of the two parties: high leverage
    st.tuples(st.just("lever"), trader, st.integers(1, 3), market, st.booleans(), st.integers(50, 100)),
    st.tuples(st.just("lever"), trader, st.integers(1, 3), market, st.booleans(), st.integers(50, 100)),
    st.tuples(st.just("deposit"), trader, st.integers(1, 10**9)),
    st.tuples(st.just("withdraw"), trader, st.integers(1, 10**9)),
    st.tuples(st.just("price"), market, st.integers(-60, 60)),
    # a crash or a squeeze, then a keeper pass
    st.tuples(st.just("shock"), market, st.one_of(st.integers(-450, -100), st.integers(100, 450))),
    st.tuples(st.just("shock"), market, st.one_of(st.integers(-450, -100), st.integers(100, 450))),
    st.tuples(
        st.just("keeper"),
    ),  # a keeper pass over every liquidatable trader
    st.tuples(
        st.just("keeper"),
    ),
    st.tuples(st.just("liquidate"), trader, trader),  # a trader tries to liquidate another
    st.tuples(st.just("stake"), staker, st.integers(0, 10**9)),
    st.tuples(st.just("request"), staker, permille),
    st.tuples(st.just("unstake"), staker, st.one_of(st.just(1_000), permille)),
    st.tuples(st.just("fund_withdraw"), staker, st.one_of(st.just(1_000), permille)),
    st.tuples(st.just("cancel"), staker),
    st.tuples(st.just("time"), st.one_of(st.integers(0, 3 * DAY), st.sampled_from([7 * DAY, 8 * DAY]))),
    st.tuples(st.just("settle"), trader),
    st.tuples(st.just("sweep")),  # the fund's credit (fees booked in the vault) to the fund
    # request -> shock (losses may hit the fund during the cooldown) -> wait into the window -> exit
    st.tuples(
        st.just("exit"),
        staker,
        permille,
        st.integers(-450, 100),
        st.integers(0, 2 * DAY),
        st.booleans(),
    ),
)

INITIAL_DEPOSIT = tokens("1000.123457")


def _fresh() -> Model:
    model = Model(6, floor_tokens=tokens(1), per_event_cap_tokens=tokens(400))
    model.add_market(params(), W(2_000))
    model.add_market(
        params(maker_fee_ratio=W("0.0002"), taker_fee_ratio=W("0.0005"), oi_cap=W(3)),
        W("1.234567891234567891"),
    )
    for account in TRADERS:
        model.deposit(account, INITIAL_DEPOSIT)
    model.deposit(KEEPER, tokens(10_000_000))
    model.stake(STAKER, tokens(500))
    # Start leveraged, so that shocks soon make someone liquidatable: Alice long 4.5 ETH from Bob
    # (IMR 900 of 1,000.123457 each), Carol long 1 ETH from Dave.
    trade(model, ALICE, BOB, W("4.5"), W(2_000))
    trade(model, CAROL, DAVE, W(1), W(2_000))
    return model


class Ledger:
    """Token flows in and out of the system, and the dust it may hold."""

    def __init__(self) -> None:
        self.tokens_in = INITIAL_DEPOSIT * len(TRADERS) + tokens(10_000_000) + tokens(500)
        self.dust_bound = 0


def _liquidate(model: Model, ledger: Ledger, account: str, liquidator: str) -> None:
    markets = len(model.markets_of(account))
    result = model.liquidate(account, liquidator)
    # Each market's close rounds against the pair (floor for the account, ceil for the liquidator),
    # and a cover may exceed the deficit by less than a token unit.
    ledger.dust_bound += markets + model.scale - 1
    assert model.margin(account) >= 0 and model.markets_of(account) == []
    d, c, r = result["deficit"], result["covered"], result["socialized"]
    assert r == max(d - c, 0) and (d > 0 or c == r == 0)
    assert sum(share for _, _, share, _ in result["index_deltas"]) == r
    assert result["insurance_fee"] % model.scale == 0 and c % model.scale == 0
    event("liquidation: " + ("socialized" if r else "covered" if c else "solvent"))


def _keeper_pass(model: Model, ledger: Ledger) -> None:
    """Most negative E − MMR first (ties by address), each re-checked just before acting."""
    for account in plan_liquidations(model.health_snapshot(TRADERS), KEEPER).targets:
        if model.liquidatable(account):
            try:
                _liquidate(model, ledger, account, KEEPER)
            except ModelRevert as err:  # a well-funded keeper's liquidation never reverts
                raise AssertionError(f"a keeper liquidation reverted: {err}") from err


def _apply(model: Model, ledger: Ledger, op: tuple[Any, ...], nonce: int) -> None:
    kind = op[0]
    if kind == "fill":
        _, i, j, m, maker_buys, q, k = op
        oracle = model.markets[m].price
        p = max(1, oracle + mul_wad_down(oracle, model.markets[m].params.price_band_ratio) * k // 1_000)
        maker = Order(TRADERS[i], m, maker_buys, q, p, nonce, FAR_EXPIRY)
        taker = Order(TRADERS[(i + j) % len(TRADERS)], m, not maker_buys, q, p, nonce, FAR_EXPIRY)
        model.match(maker, True, taker, True, q)
        ledger.dust_bound += 3
    elif kind == "lever":
        _, i, j, m, buys, pct = op
        a, b = TRADERS[i], TRADERS[(i + j) % len(TRADERS)]
        price, im = model.markets[m].price, model.markets[m].params.im_ratio
        free = min(model.free_collateral(a), model.free_collateral(b))
        q = max(free, 0) * WAD // price * WAD // im * pct // 100
        if q == 0:
            return
        maker = Order(a, m, buys, q, price, nonce, FAR_EXPIRY)
        taker = Order(b, m, not buys, q, price, nonce, FAR_EXPIRY)
        model.match(maker, True, taker, True, q)
        ledger.dust_bound += 3
    elif kind == "deposit":
        model.deposit(TRADERS[op[1]], op[2])
        ledger.tokens_in += op[2]
    elif kind == "withdraw":
        model.withdraw(TRADERS[op[1]], op[2])
        ledger.tokens_in -= op[2]
    elif kind == "price":
        old = model.markets[op[1]].price
        model.set_price(op[1], max(1, old * (1_000 + op[2]) // 1_000))
    elif kind == "shock":
        _apply(model, ledger, ("price", op[1], op[2]), nonce)
        _keeper_pass(model, ledger)
    elif kind == "keeper":
        _keeper_pass(model, ledger)
    elif kind == "exit":
        _, i, share_permille, shock, wait, by_assets = op
        who = STAKERS[i]
        model.request_unstake(who, model.fund_shares(who) * share_permille // 1_000)
        _apply(model, ledger, ("shock", 0, shock), nonce)
        model.now += model.cooldown + wait
        shares, assets_at_request, _ = model.redeem_request(who)
        try:
            if by_assets:
                assets = assets_at_request * share_permille // 1_000
                model.fund_withdraw(who, assets)
                ledger.tokens_in -= assets
            else:
                ledger.tokens_in -= model.unstake(who, shares)
        except ModelRevert as err:  # e.g. a loss made `assets` need more shares than requested
            event(f"exit reverted {err.name}")
    elif kind == "liquidate":
        _liquidate(model, ledger, TRADERS[op[2]], TRADERS[op[1]])
    elif kind == "stake":
        model.stake(STAKERS[op[1]], op[2])
        ledger.tokens_in += op[2]
    elif kind == "request":
        model.request_unstake(STAKERS[op[1]], model.fund_shares(STAKERS[op[1]]) * op[2] // 1_000)
    elif kind == "unstake":
        req = model.redeem_request(STAKERS[op[1]])
        shares = (req[0] if req else 1) * op[2] // 1_000
        ledger.tokens_in -= model.unstake(STAKERS[op[1]], shares)
    elif kind == "fund_withdraw":
        req = model.redeem_request(STAKERS[op[1]])
        assets = (req[1] if req else 1) * op[2] // 1_000
        model.fund_withdraw(STAKERS[op[1]], assets)
        ledger.tokens_in -= assets
    elif kind == "cancel":
        model.cancel_unstake(STAKERS[op[1]])
    elif kind == "time":
        model.now += op[1]
    elif kind == "sweep":
        assets, price = model.fund_assets(), model.convert_to_assets(10**18)
        model.sweep_to_fund()
        assert model.fund_credit == 0 and model.fund_assets() == assets  # no share price jump
        assert model.convert_to_assets(10**18) == price
    else:
        model.settle(TRADERS[op[1]])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(OPS, min_size=5, max_size=60))
def test_random_sequences_with_liquidations_and_staking_stay_solvent(ops):
    model = _fresh()
    ledger = Ledger()
    for n, op in enumerate(ops):
        before = state(model)
        saved = (ledger.tokens_in, ledger.dust_bound)
        try:
            _apply(model, ledger, op, n)
        except ModelRevert:
            assert model.__dict__ == before, f"revert of {op} changed the model"
            ledger.tokens_in, ledger.dust_bound = saved
            continue
        if op[0] in ("unstake", "fund_withdraw", "exit"):
            event(f"{op[0]} done")

        assert_zero_sum(model)
        assert model.vault_tokens + model.fund_tokens == ledger.tokens_in
        assert model.fund_tokens >= 0 and model.vault_tokens >= model.fund_credit
        check_solvency(model, ledger.dust_bound)
        assert sum(model.fund_balances.values()) + model.fund_escrow() == model.fund_supply()
        for who in STAKERS:
            req = model.redeem_request(who)
            assert req is None or req[0] > 0
