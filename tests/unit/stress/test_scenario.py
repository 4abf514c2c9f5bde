"""Scenario files: exact parsing, validation with errors that say where, and the pure parts of
the stress runner (the reference-model backend, the report document, the summary table).

No chain: ``.venv/bin/python -m pytest tests/unit/stress -p no:ape_test -q``.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from backstop.scenario import (
    ALL,
    MAX,
    Advance,
    Deposit,
    KeeperPass,
    Liquidate,
    Price,
    RequestUnstake,
    ScenarioError,
    Settle,
    Stake,
    Trade,
    Unstake,
    Withdraw,
    load_scenario,
    parse_scenario_text,
)
from backstop.stress import ModelBackend, derive_test_addresses, progress_line, run, write_outputs
from backstop.stress.describe import describe
from backstop.stress.report import summary_table, to_json, without_chain_fields
from backstop.units import WAD

ROOT = Path(__file__).resolve().parents[3]
SCENARIO_FILES = sorted((ROOT / "scenarios").glob("*.yaml"))

HEADER = """
name: t
markets:
  ETH: {price: 2000, initial_margin: 0.10, maintenance_margin: 0.05, keeper_reward: 0.01, insurance_fee: 0.01}
accounts: {alice: 1000, bob: 1000.5, keeper: 0}
"""


def parse(steps: str, header: str = HEADER):
    return parse_scenario_text(header + "steps:\n" + steps)


def error_of(steps: str, header: str = HEADER) -> str:
    with pytest.raises(ScenarioError) as info:
        parse(steps, header)
    return str(info.value)


# --- the docs/scenario-format.md example parses into typed steps --------------------------------------------------------

EXAMPLE = """
name: flash-crash
collateral_decimals: 6
markets:
  ETH:
    price: 2000
    initial_margin: 0.10
    maintenance_margin: 0.05
    keeper_reward: 0.01
    insurance_fee: 0.01
    price_band: 0.05
    maker_fee: 0
    taker_fee: 0
    heartbeat: 86400
insurance:
  cooldown: 604800
  floor: 0
accounts:
  alice: 10000
  bob: 1000
  keeper: 100000
steps:
  - stake: {account: alice, amount: 500}
  - trade: {buyer: bob, seller: alice, market: ETH, size: 4, price: 2000, maker: seller}
  - price: {ETH: 1500}
  - advance: 3600
  - liquidate: {account: bob, by: keeper}
  - keeper: {by: keeper}
  - settle: {account: alice}
  - deposit: {account: bob, amount: 100}
  - withdraw: {account: alice, amount: max}
  - request_unstake: {account: alice, shares: all}
  - advance: 604800
  - unstake: {account: alice}
  - withdraw: {account: bob, amount: 1000000, expect_revert: true}
"""


def test_the_spec_example_parses_into_typed_steps():
    s = parse_scenario_text(EXAMPLE)
    assert s.name == "flash-crash" and s.collateral_decimals == 6 and s.scale == 10**12
    assert s.market_names == ["ETH"] and s.market_id("ETH") == 0
    eth = s.market("ETH")
    assert (eth.mock_price, eth.im_ratio, eth.mm_ratio) == (2000 * WAD, WAD // 10, WAD // 20)
    assert (eth.keeper_reward_ratio, eth.insurance_fee_ratio, eth.price_band_ratio) == (
        WAD // 100,
        WAD // 100,
        WAD // 20,
    )
    assert s.cooldown == 604_800 and s.floor_tokens == 0
    assert dict(s.accounts) == {"alice": 10_000 * 10**6, "bob": 1000 * 10**6, "keeper": 100_000 * 10**6}
    kinds = [type(step) for step in s.steps]
    assert kinds == [
        Stake, Trade, Price, Advance, Liquidate, KeeperPass, Settle, Deposit, Withdraw, RequestUnstake, Advance, Unstake, Withdraw,
    ]  # fmt: skip
    assert [step.index for step in s.steps] == list(range(13))
    assert s.steps[0] == Stake(index=0, account="alice", amount=500 * 10**6)
    assert s.steps[1] == Trade(
        index=1, buyer="bob", seller="alice", market="ETH", size=4 * WAD, price=2000 * WAD, maker="seller"
    )
    assert s.steps[2] == Price(index=2, prices={"ETH": 1500 * WAD})
    assert s.steps[3] == Advance(index=3, seconds=3600)
    assert s.steps[8].amount == MAX and s.steps[9].shares == ALL and s.steps[11].shares == ALL
    assert s.steps[12].expect_revert is True and s.steps[12].amount == 10**12
    assert not s.steps[0].expects_revert


def test_the_example_of_docs_scenario_format_md_parses_with_its_via_fill_trade():
    """The example of docs/scenario-format.md itself (the indented block of its "Scenario (YAML)"
    section), so the documented syntax cannot drift from the parser's."""
    text = (ROOT / "docs" / "scenario-format.md").read_text()
    section = text.split("## Scenario (YAML)", 1)[1].split("\n###", 1)[0]
    block = "\n".join(
        line[4:] for line in section.splitlines() if line.startswith("    ") or not line.strip()
    )
    s = parse_scenario_text(block)
    trades = [step for step in s.steps if isinstance(step, Trade)]
    assert [(t.buyer, t.seller, t.size, t.maker, t.via) for t in trades] == [
        ("bob", "alice", 4 * WAD, "seller", "match"),
        ("bob", "alice", 1 * WAD, "seller", "fill"),
    ]
    assert trades[1].taker_account == "bob"
    assert len(s.steps) == 17


def test_amounts_sizes_and_prices_are_exact_decimals_never_floats():
    s = parse(
        """
  - trade: {buyer: alice, seller: bob, market: ETH, size: 0.1, price: 1999.12345678}
  - trade: {buyer: alice, seller: bob, market: ETH, size: 0.123456789012345678, price: "2000.5"}
  - deposit: {account: alice, amount: 0.000001}
  - withdraw: {account: bob, amount: 1_000.25}
"""
    )
    assert s.steps[0].size == 10**17  # float("0.1") * 1e18 would not be
    assert s.steps[0].price == 1999_12345678 * 10**10
    assert s.steps[1].size == 123456789012345678  # more digits than a float holds
    assert s.steps[1].price == 20005 * 10**17
    assert s.steps[2].amount == 1
    assert s.steps[3].amount == 1_000_250_000
    assert s.accounts["bob"] == 1_000_500_000


def test_maker_defaults_to_the_seller_and_can_be_the_buyer():
    s = parse(
        """
  - trade: {buyer: alice, seller: bob, market: ETH, size: 1, price: 2000}
  - trade: {buyer: alice, seller: bob, market: ETH, size: 1, price: 2000, maker: buyer}
"""
    )
    assert [step.maker for step in s.steps] == ["seller", "buyer"]


def test_expect_revert_on_any_step_and_may_name_the_error():
    s = parse(
        """
  - deposit: {account: alice, amount: 0, expect_revert: ZeroAmount}
  - keeper: {by: keeper, expect_revert: false}
  - price: {ETH: 1500, expect_revert: true}
  - unstake: {account: alice, expect_revert: NoRedeemRequest}
"""
    )
    assert [step.expect_revert for step in s.steps] == ["ZeroAmount", False, True, "NoRedeemRequest"]
    assert s.steps[2].prices == {"ETH": 1500 * WAD}
    assert "expect_revert" in error_of("  - deposit: {account: alice, amount: 1, expect_revert: 1}\n")
    assert "expect_revert" in error_of(
        "  - deposit: {account: alice, amount: 1, expect_revert: not an error}\n"
    )


def test_shares_keyword_and_decimal_share_tokens():
    s = parse(
        """
  - request_unstake: {account: alice, shares: 2.5}
  - unstake: {account: alice, shares: all}
  - unstake: {account: alice, shares: 1}
"""
    )
    # share tokens have collateral decimals + 6 = 12 decimals
    assert s.steps[0].shares == 25 * 10**11
    assert s.steps[1].shares == ALL
    assert s.steps[2].shares == 10**12


def test_cancel_unstake_names_an_account():
    s = parse(
        "  - cancel_unstake: {account: alice}\n  - cancel_unstake: {account: bob, expect_revert: NoRedeemRequest}\n"
    )
    assert [(type(step).__name__, step.account, step.expect_revert) for step in s.steps] == [
        ("CancelUnstake", "alice", False),
        ("CancelUnstake", "bob", "NoRedeemRequest"),
    ]


def test_optional_settings_and_their_defaults():
    s = parse("  - advance: 1\n")
    eth = s.market("ETH")
    assert (eth.price_band_ratio, eth.maker_fee_ratio, eth.taker_fee_ratio, eth.heartbeat) == (
        WAD // 20,
        0,
        0,
        86_400,
    )
    assert (s.cooldown, s.window, s.floor_tokens, s.per_event_cap_tokens) == (604_800, 172_800, 0, 0)
    header = (
        HEADER
        + "collateral_decimals: 18\ninsurance: {cooldown: 60, window: 30, floor: 2.5, per_event_cap: 100}\n"
    )
    s = parse("  - advance: 1\n", header)
    assert (s.cooldown, s.window, s.floor_tokens, s.per_event_cap_tokens) == (60, 30, 25 * 10**17, 100 * WAD)
    assert s.suite_config().fund_floor_tokens == 25 * 10**17 and s.suite_config().collateral_decimals == 18


def test_accounts_are_ordered_by_first_appearance_and_wallets_cover_every_deposit_and_stake():
    s = parse(
        """
  - deposit: {account: bob, amount: 5}
  - stake: {account: keeper, amount: 7}
  - stake: {account: bob, amount: 1}
  - deposit: {account: bob, amount: 0, expect_revert: true}
"""
    )
    assert s.account_names() == ["alice", "bob", "keeper"]
    assert s.wallet_needs() == {
        "alice": (1000 * 10**6, 0),
        "bob": (1000_500_000 + 5 * 10**6, 1 * 10**6),
        "keeper": (0, 7 * 10**6),
    }


def test_describe_renders_a_step_on_one_line():
    s = parse(
        """
  - trade: {buyer: bob, seller: alice, market: ETH, size: 4, price: 2000}
  - withdraw: {account: alice, amount: max, expect_revert: ZeroAmount}
  - deposit: {account: alice, amount: 0.5}
  - price: {ETH: 1600.5}
"""
    )
    assert [describe(step, s) for step in s.steps] == [
        "trade bob<-alice ETH 4 @ 2000",
        "withdraw alice max (expect revert ZeroAmount)",
        "deposit alice 0.5",
        "price ETH=1600.5",
    ]


# --- errors name the place and the problem --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("  - deposit: {account: alice, amount: 1}\n  - teleport: {account: alice}\n", r"steps\[1\]: unknown action 'teleport'"),
        ("  - trade: {buyer: alice, seller: bob, market: ETH, szie: 1, price: 2000}\n", r"steps\[0\] \(trade\): unknown key 'szie'; allowed: buyer, maker, market, price, seller, size, via$"),
        ("  - advance: 1\n  - trade: {buyer: alice, seller: mallory, market: ETH, size: 1, price: 2000}\n", r"steps\[1\] \(trade\)\.seller: unknown account 'mallory'"),
        ("  - trade: {buyer: alice, seller: bob, market: DOGE, size: 1, price: 2000}\n", r"steps\[0\] \(trade\)\.market: unknown market 'DOGE'"),
        ("  - price: {DOGE: 1}\n", r"steps\[0\] \(price\): unknown market 'DOGE'"),
        ("  - price: {}\n", r"steps\[0\] \(price\): give at least one market price"),
        ("  - liquidate: {account: bob}\n", r"steps\[0\] \(liquidate\): missing 'by'"),
        ("  - deposit: {account: alice, amount: -1}\n", r"steps\[0\] \(deposit\)\.amount: -1 must not be negative"),
        ("  - deposit: {account: alice, amount: 0.0000001}\n", r"steps\[0\] \(deposit\)\.amount: 0.0000001 has more decimals than the token's 6"),
        ("  - deposit: {account: alice, amount: lots}\n", r"steps\[0\] \(deposit\)\.amount: 'lots' is not a number"),
        ("  - deposit: {account: alice, amount: true}\n", r"steps\[0\] \(deposit\)\.amount: True is not a number"),
        ("  - withdraw: {account: alice, amount: all}\n", r"steps\[0\] \(withdraw\)\.amount: 'all' is not a number"),
        ("  - request_unstake: {account: alice, shares: max}\n", r"steps\[0\] \(request_unstake\)\.shares: 'max' is not a number"),
        ("  - trade: {buyer: alice, seller: bob, market: ETH, size: 1, price: 2000, maker: taker}\n", r"steps\[0\] \(trade\)\.maker: 'taker' must be 'buyer' or 'seller'"),
        ("  - advance: 1\n  - trade: {buyer: alice, seller: bob, market: ETH, size: 1, price: 2000, via: relayer}\n", r"^steps\[1\] \(trade\)\.via: 'relayer' must be 'match' or 'fill'$"),
        ("  - trade: {buyer: alice, seller: bob, market: ETH, size: 1e-19, price: 2000}\n", r"steps\[0\] \(trade\)\.size"),
        ("  - price: {ETH: 1500.000000001}\n", r"steps\[0\] \(price\)\.ETH: 1500.000000001 is not representable with the feed's 8 decimals"),
        ("  - price: {ETH: 0}\n", r"steps\[0\] \(price\)\.ETH: an oracle price must be > 0"),
        ("  - advance: -5\n", r"steps\[0\] \(advance\): -5 must be a whole number of seconds"),
        ("  - advance: {seconds: 5}\n", r"steps\[0\] \(advance\)"),
        ("  - deposit: alice\n", r"steps\[0\] \(deposit\): expected a mapping"),
        ("  - {deposit: {account: alice, amount: 1}, advance: 1}\n", r"steps\[0\]: each step is a one-key mapping"),
        ("  - keeper: {by: alice, account: bob}\n", r"steps\[0\] \(keeper\): unknown key 'account'"),
        ("  - cancel_unstake: {account: alice, shares: 1}\n", r"steps\[0\] \(cancel_unstake\): unknown key 'shares'"),
        ("  - cancel_unstake: {account: mallory}\n", r"steps\[0\] \(cancel_unstake\)\.account: unknown account 'mallory'"),
    ],
)  # fmt: skip
def test_step_errors_name_the_step_and_the_problem(steps, message):
    assert re.search(message, error_of(steps)), error_of(steps)


def market(**overrides) -> str:
    params = {
        "price": 2000,
        "initial_margin": 0.1,
        "maintenance_margin": 0.05,
        "keeper_reward": 0.01,
        "insurance_fee": 0.01,
        **overrides,
    }
    body = ", ".join(f"{k}: {v}" for k, v in params.items() if v is not None)
    return f"name: t\nmarkets:\n  ETH: {{{body}}}\naccounts: {{alice: 1}}\nsteps: []\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "a scenario is a mapping"),
        ("name: t\nmarkets: {}\nsteps: []\n", "markets: at least one market"),
        ("markets: {ETH: {price: 1}}\nsteps: []\n", r"scenario: missing 'name'"),
        ("name: 'has space'\nmarkets: {}\nsteps: []\n", "name: 'has space' must be a file-name-safe string"),
        (market() + "colour: blue\n", r"scenario: unknown key 'colour'"),
        (market().replace("steps: []", "steps: {a: 1}"), "steps: must be a list"),
        (market() + "collateral_decimals: 19\n", r"collateral_decimals: 19 must be an integer in 1\.\.18"),
        (market() + "insurance: {cooldwn: 5}\n", r"insurance: unknown key 'cooldwn'"),
        (market().replace("alice: 1", "alice: -1"), r"accounts\.alice: -1 must not be negative"),
        (
            market().replace("alice: 1", "'not a name': 1"),
            "accounts: 'not a name' is not a valid account name",
        ),
        (market(price=None), r"markets\.ETH: price \(the initial oracle price\) is required"),
        (market(initial_margin=0.05), r"markets\.ETH: initial_margin must be > maintenance_margin"),
        (market(keeper_reward=0.051), r"markets\.ETH: keeper_reward must be ≤ maintenance_margin"),
        (
            market(keeper_reward=0.05),
            r"markets\.ETH: keeper_reward \+ insurance_fee must be ≤ maintenance_margin",
        ),
        (
            market(keeper_reward_cap=0),
            r"^markets\.ETH: keeper_reward_cap must be > 0 and < 2\^128 WAD, got 0$",
        ),
        (market(taker_fee=0.06), r"markets\.ETH: taker_fee must be < maintenance_margin"),
        (market(price_band=1), r"markets\.ETH: price_band must be in \(0, 1\)"),
        (market(heartbeat=0), r"markets\.ETH: heartbeat must be > 0"),
        (market(feed="0x0000000000000000000000000000000000000001"), r"markets\.ETH: .*mock feeds only"),
        (
            market(leverage=100),
            r"^markets\.ETH: unknown key 'leverage'; allowed: feed, feed_decimals, heartbeat, initial_margin, "
            r"insurance_fee, keeper_reward, keeper_reward_cap, maintenance_margin, maker_fee, open_interest_cap, "
            r"price, price_band, taker_fee$",
        ),
        (
            market(heartbeat=2**32),
            r"^markets\.ETH: heartbeat must be > 0 and < 2\^32 seconds, got 4294967296$",
        ),
        (market(maintenance_margin=None), r"markets\.ETH: maintenance_margin is required"),
        ("name: t\nmarkets: [\n", "not valid YAML"),
    ],
)
def test_scenario_errors_are_clear(text, message):
    with pytest.raises(ScenarioError) as info:
        parse_scenario_text(text)
    assert re.search(message, str(info.value)), str(info.value)


def test_a_file_error_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(HEADER + "steps:\n  - deposit: {account: zed, amount: 1}\n")
    with pytest.raises(
        ScenarioError, match=r"broken\.yaml: steps\[0\] \(deposit\)\.account: unknown account 'zed'"
    ):
        load_scenario(path)
    with pytest.raises(ScenarioError, match="cannot read the scenario"):
        load_scenario(tmp_path / "missing.yaml")


# --- the provided scenarios -------------------------------------------------------------------------------------


def test_the_provided_scenarios_are_all_there():
    names = {p.name for p in SCENARIO_FILES}
    assert {
        "flash_crash.yaml",
        "two_market_cascade.yaml",
        "exhausted_fund.yaml",
        "staker_exit_before_loss.yaml",
        "bad_inputs.yaml",
    } <= names


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.stem)
def test_every_provided_scenario_passes_on_the_reference_model(path, tmp_path):
    scenario = load_scenario(path)
    result = run(scenario, ModelBackend())
    assert result.ok, result.failures
    assert result.solvency[2] >= 0
    report = to_json(result)
    assert report["scenario"] == scenario.name and report["chain_id"] is None
    assert [s["index"] for s in report["steps"]] == list(range(len(scenario.steps)))
    assert all(s["gas_used"] is None for s in report["steps"])
    json_path, png_path = write_outputs(result, tmp_path)
    assert json.loads(json_path.read_text()) == report
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_flash_crash_tells_its_story_on_the_model():
    """The demo's liquidations: bob with margin left; alice covered in full; gina partly covered,
    the rest socialized; the fund pays out everything it had."""
    result = run(load_scenario(ROOT / "scenarios" / "flash_crash.yaml"), ModelBackend())
    liquidations = [(liq.step, liq.account, liq.liquidator) for liq in result.liquidations]
    assert liquidations == [(7, "bob", "keeper"), (11, "alice", "keeper"), (11, "gina", "keeper")]
    bob, alice, gina = result.liquidations
    assert bob.deficit == 0 and bob.insurance_fee > 0
    assert alice.deficit > 0 and alice.covered == alice.deficit and alice.socialized == 0
    assert 0 < gina.covered < gina.deficit and gina.socialized == gina.deficit - gina.covered
    assert result.totals["socialized"] == gina.socialized
    assert result.totals["bad_debt"] == alice.deficit + gina.deficit
    # value is conserved: every token that came in is in a wallet, the vault or the fund
    vault_assets, liabilities, dust = result.solvency
    assert dust == 0 and vault_assets == liabilities
    scale = result.scenario.scale
    assert sum(result.flows.values()) + (vault_assets + result.insurance_assets) // scale == 0


def test_the_model_keeper_liquidates_most_negative_buffer_first_and_skips_healthy_accounts():
    s = parse_scenario_text(
        HEADER.replace("keeper: 0", "keeper: 50000, carol: 5000, dave: 5000, erin: 300")
        + """steps:
  - trade: {buyer: alice, seller: carol, market: ETH, size: 5, price: 2000}
  - trade: {buyer: bob, seller: dave, market: ETH, size: 5, price: 2000}
  - trade: {buyer: erin, seller: dave, market: ETH, size: 1, price: 2000}
  - price: {ETH: 1850}
  - keeper: {by: keeper}
  - keeper: {by: keeper}
"""
    )
    result = run(s, ModelBackend())
    assert result.ok, result.failures
    # alice (1000 margin, 5 ETH) is further under maintenance than bob (1000.5 margin); erin is fine
    assert [(liq.step, liq.account) for liq in result.liquidations] == [(4, "alice"), (4, "bob")]
    assert result.steps[4].note == "liquidated alice, bob" and result.steps[5].note == "liquidated nobody"


def test_an_unexpected_revert_or_success_fails_the_run_but_every_step_is_played():
    s = parse(
        """
  - withdraw: {account: alice, amount: 5000}
  - deposit: {account: alice, amount: 1, expect_revert: true}
  - deposit: {account: alice, amount: 0, expect_revert: InsufficientFreeCollateral}
  - deposit: {account: alice, amount: 0, expect_revert: ZeroAmount}
"""
    )
    result = run(s, ModelBackend())
    assert not result.ok
    assert [(r.ok, r.reverted, r.error) for r in result.steps] == [
        (False, True, "InsufficientFreeCollateral"),
        (False, False, None),
        (False, True, "ZeroAmount"),
        (True, True, "ZeroAmount"),
    ]
    assert result.failures == [
        "steps[0] (withdraw): unexpected revert InsufficientFreeCollateral",
        "steps[1] (deposit): expected a revert, but the step succeeded",
        "steps[2] (deposit): expected revert InsufficientFreeCollateral, got ZeroAmount",
    ]
    assert to_json(result)["ok"] is False
    lines = [
        progress_line(r, 4, [f for f in result.failures if f.startswith(f"steps[{r.index}]")])
        for r in result.steps
    ]
    assert lines[0] == "steps[0] withdraw alice 5000 FAILED: unexpected revert InsufficientFreeCollateral"
    assert (
        lines[3] == "steps[3] deposit alice 0 (expect revert ZeroAmount) reverted ZeroAmount as expected, ok"
    )


def test_withdraw_max_takes_the_free_collateral_floored_to_a_token_unit():
    s = parse(
        """
  - trade: {buyer: alice, seller: bob, market: ETH, size: 0.333333, price: 2000}
  - withdraw: {account: alice, amount: max}
  - withdraw: {account: alice, amount: max, expect_revert: ZeroAmount}
"""
    )
    result = run(s, ModelBackend())
    assert result.ok, result.failures
    alice = result.accounts["alice"]
    # F = 1,000 - IMR (10 % of 0.333333 x 2,000 = 66.6666): 933.3334 tokens, a whole number of units
    assert alice.free_collateral == 0
    assert result.flows["alice"] == -1000 * 10**6 + 933_333_400


# --- the report document --------------------------------------------------------------------------------------


def test_the_report_has_the_public_fields_with_wad_strings():
    result = run(load_scenario(ROOT / "scenarios" / "staker_exit_before_loss.yaml"), ModelBackend())
    report = to_json(result)
    assert {
        "scenario",
        "chain_id",
        "steps",
        "accounts",
        "insurance",
        "liquidations",
        "totals",
        "solvency",
    } <= set(report)
    assert set(report["steps"][0]) >= {"index", "action", "ok", "reverted", "gas_used"}
    for account in report["accounts"].values():
        assert set(account) >= {"margin", "equity", "free_collateral", "pending_loss", "positions"}
    assert set(report["insurance"]) == {"total_assets", "total_supply"}
    assert set(report["totals"]) == {
        "bad_debt", "insurance_covered", "socialized", "keeper_rewards", "insurance_fees", "trading_fees",
    }  # fmt: skip
    assert set(report["solvency"]) == {"vault_assets", "liabilities", "dust"}
    [liq] = report["liquidations"]
    assert set(liq) == {
        "step", "account", "liquidator", "notional", "keeper_reward", "insurance_fee", "deficit", "covered", "socialized",
    }  # fmt: skip
    assert (liq["step"], liq["account"], liq["liquidator"]) == (7, "alice", "keeper")
    assert liq["notional"] == str(17_500 * WAD) and liq["keeper_reward"] == str(175 * WAD)
    assert liq["deficit"] == liq["covered"] == str(675 * WAD)
    # the fund: 2,000 staked, 675 paid out, early_bird left with 662.5 (min of 1,000 and its value then)
    assert report["insurance"]["total_assets"] == str(int(Decimal("662.5") * WAD))
    assert report["insurance"]["total_supply"] == str(1000 * 10**12)  # loyal's shares, 12 decimals
    assert result.flows["early_bird"] == -1000 * 10**6 + 662_500_000

    def strings(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key not in ("index", "step", "chain_id", "gas_used", "ok", "reverted", "expect_revert"):
                    yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        else:
            yield node

    money = [
        v
        for key in ("accounts", "insurance", "liquidations", "totals", "solvency")
        for v in strings(report[key])
    ]
    names = {"alice", "keeper"}
    assert all(isinstance(v, str) and (re.fullmatch(r"-?\d+", v) or v in names) for v in money), money


def test_without_chain_fields_drops_only_chain_id_and_gas():
    report = {"chain_id": 1, "scenario": "x", "steps": [{"index": 0, "gas_used": 5, "ok": True}]}
    assert without_chain_fields(report) == {"scenario": "x", "steps": [{"index": 0, "ok": True}]}


def test_summary_table_lists_accounts_liquidations_totals_and_solvency():
    result = run(load_scenario(ROOT / "scenarios" / "exhausted_fund.yaml"), ModelBackend())
    text = summary_table(result)
    assert text.splitlines()[0].startswith("exhausted_fund: PASSED - 19 steps")
    assert "socialized 955.00" in text and "covered by the fund 800.00" in text
    assert re.search(r"^a2 .*\n", text, re.M) and "solvency: vault" in text


def test_model_addresses_are_the_test_accounts_of_the_default_mnemonic():
    assert derive_test_addresses(2) == (
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    )


def test_a_crash_in_a_backend_fails_its_step_even_where_a_revert_was_expected():
    class Flaky(ModelBackend):
        def execute(self, step):
            if step.index == 0:
                raise ConnectionError("node went away")
            return super().execute(step)

    s = parse("  - deposit: {account: alice, amount: 0, expect_revert: true}\n  - advance: 1\n")
    result = run(s, Flaky())
    assert [r.ok for r in result.steps] == [False, True]
    assert result.failures == [
        "steps[0] (deposit): the runner crashed: ConnectionError: node went away",
    ]
