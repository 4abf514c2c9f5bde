"""The stress runner on anvil: every provided scenario passes on a fresh deployment, its report
equals the reference model's (but for gas and the chain id), the chart is a real PNG, a failing
step fails the run, and a malformed scenario file is refused with a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backstop.scenario import load_scenario, parse_scenario_text
from backstop.stress import ChainBackend, ModelBackend, main, run, write_outputs
from backstop.stress.report import to_json, without_chain_fields
from backstop.units import WAD

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def play(project, chain, accounts, scenario):
    """The scenario on a fresh suite and on the model, with the same addresses."""
    backend = ChainBackend(project, chain, accounts)
    on_chain = run(scenario, backend)
    on_model = run(scenario, ModelBackend(addresses=backend.addresses))
    return on_chain, on_model


def assert_valid_png(path: Path) -> None:
    from PIL import Image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 600 and image.size[1] > 400


def test_flash_crash_report_equals_the_reference_model(project, chain, accounts, tmp_path):
    scenario = load_scenario(SCENARIOS / "flash_crash.yaml")
    on_chain, on_model = play(project, chain, accounts, scenario)
    assert on_chain.ok, on_chain.failures
    assert on_model.ok, on_model.failures

    chain_report, model_report = to_json(on_chain), to_json(on_model)
    assert without_chain_fields(chain_report) == without_chain_fields(model_report)
    assert chain_report["chain_id"] == chain.chain_id and model_report["chain_id"] is None
    gas = {s["action"]: s["gas_used"] for s in chain_report["steps"] if s["gas_used"]}
    assert {"trade", "keeper", "withdraw", "stake", "price", "settle", "unstake"} <= set(gas)
    assert all(s["gas_used"] is None for s in model_report["steps"])

    # the keeper really liquidated: bob at 1,800, then alice and gina at 1,600, in that order
    assert [(liq["step"], liq["account"], liq["liquidator"]) for liq in chain_report["liquidations"]] == [
        (7, "bob", "keeper"),
        (11, "alice", "keeper"),
        (11, "gina", "keeper"),
    ]
    assert (
        int(chain_report["totals"]["socialized"]) > 0 and int(chain_report["totals"]["insurance_covered"]) > 0
    )
    assert int(chain_report["solvency"]["dust"]) >= 0

    # the per-step time series: the same on both backends (they are in the comparison above),
    # with the state after every step; only `time` may differ, the chain gaining a second or
    # so per block over the model's sum of the advances
    series = ("prices", "equity", "fund_assets", "socialized_total", "staked_value")
    for chain_step, model_step in zip(chain_report["steps"], model_report["steps"], strict=True):
        assert all(chain_step[key] == model_step[key] for key in series)
        assert 0 <= chain_step["time"] - model_step["time"] <= 2 * len(chain_report["steps"]) + 30
    assert chain_report["start"] == model_report["start"]
    assert [s["time"] for s in model_report["steps"]][5:12] == [3600] * 4 + [3660] * 3
    assert [s["prices"]["ETH"] for s in chain_report["steps"]][5:12] == [
        str(p * WAD) for p in (2000, 1800, 1800, 1800, 1800, 1600, 1600)
    ]
    assert chain_report["steps"][11]["socialized_total"] == chain_report["totals"]["socialized"]
    assert int(chain_report["steps"][10]["equity"]["alice"]) < 0  # bankrupt before the pass
    assert chain_report["steps"][11]["equity"]["alice"] == "0"
    assert list(chain_report["steps"][0]["staked_value"]) == ["frank"]

    json_path, png_path = write_outputs(on_chain, tmp_path)
    assert json_path.name == "flash_crash.json" and png_path.name == "flash_crash.png"
    assert json.loads(json_path.read_text()) == chain_report
    assert_valid_png(png_path)


@pytest.mark.parametrize(
    "name",
    [
        "two_market_cascade",
        "exhausted_fund",
        "staker_exit_before_loss",
        "bad_inputs",
        "partial_and_batch",
        "fill_order",
    ],
)
def test_every_scenario_passes_on_chain_and_matches_the_model(project, chain, accounts, name):
    # flash_crash runs in the test above
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    on_chain, on_model = play(project, chain, accounts, scenario)
    assert on_chain.ok, on_chain.failures
    assert without_chain_fields(to_json(on_chain)) == without_chain_fields(to_json(on_model))
    assert all(step.ok for step in on_chain.steps)


def test_a_scenario_file_list_is_complete():
    assert {p.stem for p in SCENARIOS.glob("*.yaml")} == {
        "flash_crash",
        "two_market_cascade",
        "exhausted_fund",
        "staker_exit_before_loss",
        "bad_inputs",
        "partial_and_batch",
        "fill_order",
    }


def test_partial_and_batch_report(project, chain, accounts):
    """scenarios/partial_and_batch.yaml: the report's partial entries carry market and size, the
    batch adds one entry per account it liquidated, and the skipped ones are named in the note."""
    on_chain, _ = play(project, chain, accounts, load_scenario(SCENARIOS / "partial_and_batch.yaml"))
    report = to_json(on_chain)
    partial = [liq for liq in report["liquidations"] if "market" in liq]
    assert [(liq["account"], liq["market"], liq["size"], liq["notional"]) for liq in partial] == [
        ("whale", "ETH", str(5 * WAD), str(9_000 * WAD)),
        ("whale", "ETH", str(5 * WAD), str(9_000 * WAD)),
    ]
    assert all(
        (liq["keeper_reward"], liq["insurance_fee"]) == (str(90 * WAD), str(90 * WAD)) for liq in partial
    )
    batch = [liq for liq in report["liquidations"] if liq["step"] == 13]
    assert [liq["account"] for liq in batch] == ["ann", "ben", "cat"]
    assert on_chain.steps[13].note == "liquidated ann, ben, cat; skipped ben, dave"
    assert report["accounts"]["whale"]["positions"]["ETH"]["size"] == str(30 * WAD)


def test_fill_order_is_sent_by_the_taker_and_matches_the_model(project, chain, accounts):
    """scenarios/fill_order.yaml: each `via: fill` trade is one fillOrder transaction from the
    taker's own key (Trade with a zero takerOrderHash), the maker fee on the maker and the taker
    fee on the taker; its refusals carry the model's errors; the report equals the model's."""
    backend = ChainBackend(project, chain, accounts)
    scenario = load_scenario(SCENARIOS / "fill_order.yaml")
    on_chain = run(scenario, backend)
    on_model = run(scenario, ModelBackend(addresses=backend.addresses))
    assert on_chain.ok, on_chain.failures
    assert on_model.ok, on_model.failures
    chain_report, model_report = to_json(on_chain), to_json(on_model)
    assert without_chain_fields(chain_report) == without_chain_fields(model_report)

    errors = ["InsufficientMargin", "PriceOutsideBand", "SelfTrade", "ZeroFill"]
    for result in (on_chain, on_model):
        assert [(s.reverted, s.error) for s in result.steps[:7]] == [
            (False, None), (False, None), *[(True, e) for e in errors], (False, None),
        ]  # fmt: skip
        assert result.totals["trading_fees"] == 5_607 * WAD // 1000
    # the refusals were dry-run and not sent; the fills were mined
    gas = [s.gas_used for s in on_chain.steps]
    assert gas[0] and gas[1] and gas[6] and gas[2:6] == [None] * 4
    assert chain_report["accounts"]["tia"]["positions"] == {
        "ETH": {"size": str(2 * WAD), "open_notional": str(4000 * WAD)}
    }
    assert chain_report["accounts"]["tia"]["margin"] == str(420 * WAD)
    assert chain_report["accounts"]["mo"]["margin"] == str(19_988_398 * WAD // 1000)

    # on chain: who sent what, and the fees the Trade events carry (token units, 6 decimals)
    engine, w3 = backend.engine, backend.w3
    trades = engine.events.Trade.get_logs(from_block=backend.deployment.blocks.get("MarginEngine", 0))
    mo, tia, relayer = backend.addresses["mo"], backend.addresses["tia"], backend.relayer.address
    rows = [
        (
            w3.eth.get_transaction(log["transactionHash"])["from"],
            log["args"]["maker"],
            log["args"]["taker"],
            log["args"]["takerOrderHash"] == bytes(32),
            log["args"]["makerIsBuy"],
            log["args"]["price"],
            log["args"]["makerFeeTokens"],
            log["args"]["takerFeeTokens"],
        )
        for log in trades
    ]
    assert rows == [
        (tia, mo, tia, True, False, 2000 * WAD, 800_000, 2_000_000),  # tia fills mo's offer
        (tia, mo, tia, True, True, 2010 * WAD, 402_000, 1_005_000),  # tia sells into mo's bid
        (relayer, mo, tia, False, False, 2000 * WAD, 400_000, 1_000_000),  # matched by the relayer
    ]


FAILING = """
name: unexpected
markets:
  ETH: {price: 2000, initial_margin: 0.10, maintenance_margin: 0.05, keeper_reward: 0.01, insurance_fee: 0.01}
accounts: {alice: 1000, bob: 1000}
steps:
  - trade: {buyer: alice, seller: bob, market: ETH, size: 1, price: 2000}
  - withdraw: {account: alice, amount: 5000}
  - deposit: {account: bob, amount: 10}
"""


def test_an_unexpected_revert_fails_the_run_after_writing_the_report(project, chain, accounts, tmp_path):
    lines: list[str] = []
    code, result = main(
        parse_scenario_text(FAILING), ChainBackend(project, chain, accounts), tmp_path, echo=lines.append
    )
    assert code == 1 and not result.ok
    report = json.loads((tmp_path / "unexpected.json").read_text())
    assert report["ok"] is False
    assert [(s["ok"], s["reverted"], s["error"]) for s in report["steps"]] == [
        (True, False, None),
        (False, True, "InsufficientFreeCollateral"),
        (True, False, None),  # the run goes on after a failed step
    ]
    assert report["failures"] == ["steps[1] (withdraw): unexpected revert InsufficientFreeCollateral"]
    assert "steps[1] withdraw alice 5000 FAILED: unexpected revert InsufficientFreeCollateral" in lines
    assert any(line.startswith("unexpected: FAILED") for line in lines)
    assert_valid_png(tmp_path / "unexpected.png")


def _ape_run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    ape = Path(sys.executable).with_name("ape")
    return subprocess.run(
        [str(ape), "run", "stress", *args],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_bad_scenario_file_is_refused_with_a_clear_error_before_any_chain_starts(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        FAILING.replace(
            "  - deposit: {account: bob, amount: 10}", "  - deposit: {account: bobby, amount: 10}"
        )
    )
    done = _ape_run("--scenario", str(bad), "--out", str(tmp_path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "steps[2] (deposit).account: unknown account 'bobby'" in done.stderr
    assert "Starting 'anvil'" not in done.stdout + done.stderr
    assert not (tmp_path / "unexpected.json").exists()
