"""Stricter scenario loading (issue #19): duplicate YAML keys, ``expect_revert`` names checked
against the contracts' errors, one-line YAML errors, and the same through ``ape run stress``
(one line, exit 2, no traceback, nothing started). No chain.

``.venv/bin/python -m pytest tests/unit/test_scenario_loading.py -p no:ape_test -q``
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from backstop.scenario import ScenarioError, load_scenario, parse_scenario_text
from backstop.scenario.errors import contract_error_names

ROOT = Path(__file__).resolve().parents[2]

HEADER = """name: t
markets:
  ETH: {price: 2000, initial_margin: 0.10, maintenance_margin: 0.05, keeper_reward: 0.01, insurance_fee: 0.01}
accounts: {alice: 1000, bob: 1000}
steps:
"""


def error_of(text: str, **kwargs) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario_text(text, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            HEADER + "  - deposit: {account: alice, amount: 1, amount: 2}\n",
            "line 6: duplicate key 'amount' in steps[0].deposit (first at line 6)",
        ),
        (
            HEADER.replace("name: t\n", "name: t\ndescription: x\nname: u\n") + "  - advance: 1\n",
            "line 3: duplicate key 'name' in the top-level mapping (first at line 1)",
        ),
        (
            HEADER.replace("accounts:", "  ETH: {price: 1}\naccounts:") + "  - advance: 1\n",
            "line 4: duplicate key 'ETH' in markets (first at line 3)",
        ),
        (
            HEADER.replace("accounts: {alice: 1000, bob: 1000}", "accounts:\n  alice: 1000\n  alice: 5")
            + "  - advance: 1\n",
            "line 6: duplicate key 'alice' in accounts (first at line 5)",
        ),
        (
            HEADER + "  - advance: 1\n  - price: {ETH: 1500, ETH: 1600}\n",
            "line 7: duplicate key 'ETH' in steps[1].price (first at line 7)",
        ),
    ],
)
def test_a_duplicate_key_is_an_error_naming_the_key_the_mapping_and_both_lines(text, message):
    assert error_of(text) == message


def test_the_same_key_in_two_mappings_is_not_a_duplicate():
    s = parse_scenario_text(
        HEADER + "  - deposit: {account: alice, amount: 1}\n  - deposit: {account: bob, amount: 1}\n"
    )
    assert len(s.steps) == 2


def test_expect_revert_names_a_custom_error_of_the_contracts():
    s = parse_scenario_text(
        HEADER + "  - deposit: {account: alice, amount: 0, expect_revert: ZeroAmount}\n"
        "  - withdraw: {account: alice, amount: 5000, expect_revert: InsufficientFreeCollateral}\n"
    )
    assert [step.expect_revert for step in s.steps] == ["ZeroAmount", "InsufficientFreeCollateral"]
    assert error_of(HEADER + "  - deposit: {account: alice, amount: 0, expect_revert: ZeroAmout}\n") == (
        "steps[0] (deposit).expect_revert: 'ZeroAmout' is not a custom error of the contracts; "
        "did you mean ZeroAmount?"
    )
    assert error_of(HEADER + "  - advance: 1\n  - settle: {account: bob, expect_revert: Nope}\n") == (
        "steps[1] (settle).expect_revert: 'Nope' is not a custom error of the contracts; "
        "see the contracts' error declarations"
    )
    # the list can be given (a test, another suite)
    assert (
        parse_scenario_text(
            HEADER + "  - settle: {account: bob, expect_revert: Nope}\n", known_errors={"Nope"}
        )
        .steps[0]
        .expect_revert
        == "Nope"
    )


def test_the_error_names_come_from_the_compiled_abis_and_the_sources(tmp_path):
    names = contract_error_names()
    assert {"ZeroAmount", "StalePrice", "CooldownNotElapsed", "Error", "Panic"} <= names
    assert "ERC20InsufficientBalance" in names  # OpenZeppelin's, from the compiled ABIs
    # without a compiled manifest: the declarations under contracts/
    (tmp_path / "contracts" / "lib").mkdir(parents=True)
    (tmp_path / "contracts" / "lib" / "X.sol").write_text(
        "contract X {\n    error OnlyHere(uint256 a);\n  error  Two();\n    // error NotThis\n}\n"
    )
    assert contract_error_names(tmp_path) == {"OnlyHere", "Two", "Error", "Panic"}


def test_every_provided_scenario_names_only_known_errors():
    for path in sorted((ROOT / "scenarios").rglob("*.yaml")):
        load_scenario(path)  # raises on an unknown name


def test_a_yaml_syntax_error_is_one_line_with_where():
    assert error_of(HEADER + "  - deposit: {account: alice, amount: 1\n") == (
        "line 7, column 1: not valid YAML: expected ',' or '}', but got '<stream end>'"
    )


def _stress(*args: str) -> subprocess.CompletedProcess:
    ape = Path(sys.executable).with_name("ape")
    return subprocess.run(
        [str(ape), "run", "stress", *args], cwd=ROOT, env=dict(os.environ), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["chain", "model"])
def test_the_cli_refuses_a_duplicate_key_and_a_misspelt_error_in_one_line(tmp_path, backend):
    dup = tmp_path / "dup.yaml"
    dup.write_text(HEADER + "  - deposit: {account: alice, amount: 1, amount: 2}\n")
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text(HEADER + "  - deposit: {account: alice, amount: 0, expect_revert: ZeroAmout}\n")
    for path, message in (
        (dup, f"stress: {dup}: line 6: duplicate key 'amount' in steps[0].deposit (first at line 6)"),
        (
            misspelt,
            f"stress: {misspelt}: steps[0] (deposit).expect_revert: 'ZeroAmout' is not a custom error "
            "of the contracts; did you mean ZeroAmount?",
        ),
    ):
        done = _stress("--scenario", str(path), "--backend", backend, "--out", str(tmp_path))
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.strip().splitlines() == [message]
        assert "Traceback" not in done.stdout + done.stderr and "anvil" not in done.stdout.lower()
    assert not list(tmp_path.glob("*.json"))


# --- trade … via: fill (issue #20) -------------------------------------------------------------------------

TRADE = "  - trade: {{buyer: alice, seller: bob, market: ETH, size: 1.5, price: 2000{extra}}}\n"


def test_a_trade_is_matched_by_default_and_via_fill_has_the_taker_fill_the_makers_order():
    s = parse_scenario_text(
        HEADER
        + TRADE.format(extra="")
        + TRADE.format(extra=", via: match")
        + TRADE.format(extra=", via: fill")
        + TRADE.format(extra=", maker: buyer, via: fill")
    )
    assert [(step.via, step.maker) for step in s.steps] == [
        ("match", "seller"),
        ("match", "seller"),
        ("fill", "seller"),
        ("fill", "buyer"),
    ]
    # the maker signs, the other party sends fillOrder
    assert [(step.maker_account, step.taker_account) for step in s.steps] == [
        ("bob", "alice"),
        ("bob", "alice"),
        ("bob", "alice"),
        ("alice", "bob"),
    ]
    # everything else parses as before
    assert {(step.size, step.price, step.market) for step in s.steps} == {(15 * 10**17, 2000 * 10**18, "ETH")}
    assert s.steps[0] == replace(s.steps[1], index=0)  # `via: match` is the default, written out


@pytest.mark.parametrize(
    ("value", "shown"),
    [("bogus", "'bogus'"), ("Fill", "'Fill'"), ("matchOrders", "'matchOrders'"), ("true", "True"),
     ("1", "1"), ("null", "None"), ("[fill]", "['fill']")],
)  # fmt: skip
def test_an_unknown_via_is_a_one_line_error_naming_the_step_and_the_key(value, shown):
    text = HEADER + "  - advance: 1\n" + TRADE.format(extra=f", via: {value}")
    assert error_of(text) == f"steps[1] (trade).via: {shown} must be 'match' or 'fill'"


def test_via_is_a_key_of_trade_only():
    assert error_of(HEADER + "  - deposit: {account: alice, amount: 1, via: fill}\n") == (
        "steps[0] (deposit): unknown key 'via'; allowed: account, amount"
    )
    assert error_of(HEADER + TRADE.format(extra=", vai: fill")) == (
        "steps[0] (trade): unknown key 'vai'; allowed: buyer, maker, market, price, seller, size, via"
    )
    # and a via: fill trade names its accounts like any trade
    assert error_of(HEADER + TRADE.format(extra=", via: fill").replace("bob", "bobby")) == (
        "steps[0] (trade).seller: unknown account 'bobby'; declare it under 'accounts' (known: alice, bob)"
    )
