"""``ape run deploy --plan`` / ``--apply`` as an operator runs them, on a long-lived anvil: the plan
in human units, the schedule, a run before the delay that sends nothing, the execution after it,
and the keeper refusing a manifest whose engine is not the code at its address."""

from __future__ import annotations

import json

import pytest

from tests.support.anvil import ROOT, anvil, ape_run, block_number, rpc

DELAY = 172_800


@pytest.fixture(scope="module")
def node():
    with anvil("--hardfork", "cancun") as url:
        yield url


def changed_config(path, mm="0.06", cap="120000"):
    text = (ROOT / "config" / "local.yaml").read_text()
    eth, btc = text.index("  ETH:"), text.index("  BTC:")
    market = text[eth:btc].replace("maintenance_margin: 0.05", f"maintenance_margin: {mm}")
    market = market.replace("open_interest_cap: 100000", f"open_interest_cap: {cap}")
    path.write_text(text[:eth] + market + text[btc:])
    return path


def deploy(node, *args):
    result = ape_run(["deploy", *args], node)
    return result.returncode, result.stdout, result.stderr


def test_plan_apply_then_execute_after_the_delay(node, tmp_path):
    manifest = str(tmp_path / "m.json")
    changed = str(changed_config(tmp_path / "changed.yaml"))
    code, out, err = deploy(node, "--manifest", manifest)
    assert code == 0, out + err

    # A plain run with the changed config refuses and sends nothing.
    head = block_number(node)
    code, out, err = deploy(node, "--manifest", manifest, "--config", changed)
    assert code == 1
    assert "deploy: the config changes timelocked parameters; nothing sent:\n" in err
    assert "    ETH maintenance margin 5 % → 6 %\n" in err
    assert block_number(node) == head

    code, out, err = deploy(node, "--plan", "--manifest", manifest, "--config", changed)
    assert (code, out) == (
        0,
        "ETH: to schedule; executable 2 d after scheduling, for 14 d\n"
        "  ETH maintenance margin 5 % → 6 %\n"
        "  ETH open interest cap 100,000 → 120,000\n",
    )
    assert block_number(node) == head

    code, out, err = deploy(node, "--apply", "--manifest", manifest, "--config", changed)
    assert code == 0, out + err
    assert "ETH: scheduled; executable from " in out and "(in 2 d)" in out
    assert json.loads((tmp_path / "m.json").read_text())["pending"][0]["target"] == "ETH"

    # A run before the eta (it sends nothing and says when) and the plan of a matching config
    # ("nothing to change") are the in-process tests' (tests/integration/test_plan_apply.py).
    rpc(node, "evm_increaseTime", DELAY)
    rpc(node, "evm_mine")
    code, out, err = deploy(node, "--apply", "--manifest", manifest, "--config", changed)
    assert code == 0, out + err
    assert (
        "\nETH: executed\n  ETH maintenance margin 5 % → 6 %\n  ETH open interest cap 100,000 → 120,000\n"
        in out
    )
    assert json.loads((tmp_path / "m.json").read_text())["pending"] == []


def test_plan_and_apply_exclude_each_other(node, tmp_path):
    code, _, err = deploy(node, "--plan", "--apply", "--manifest", str(tmp_path / "m.json"))
    assert code == 2 and "--plan and --apply exclude each other" in err
    assert not (tmp_path / "m.json").exists()


def test_the_keeper_refuses_a_manifest_whose_engine_code_differs(node, tmp_path):
    manifest = tmp_path / "m.json"
    code, out, err = deploy(node, "--manifest", str(manifest))
    assert code == 0, out + err
    data = json.loads(manifest.read_text())
    engine = data["contracts"]["MarginEngine"]
    engine["code_hash"] = "0x" + "11" * 32
    manifest.write_text(json.dumps(data))
    result = ape_run(
        ["keeper", "--once", "--deployment", str(manifest), "--state", str(tmp_path / "k.json")], node
    )
    assert result.returncode == 2
    assert f"MarginEngine at {engine['address']}: runtime code hash 0x" in result.stderr
    assert "the manifest does not describe this chain's suite" in result.stderr
    assert not (tmp_path / "k.json").exists()
