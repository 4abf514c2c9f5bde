"""The stress runner's per-step time series (report and chart), the summary's net P&L with a
stale price, and ``ape run stress --backend model`` (no node). No chain.

``.venv/bin/python -m pytest tests/unit/stress/test_series.py -p no:ape_test -q``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backstop.scenario import parse_scenario_text
from backstop.stress import ModelBackend, run
from backstop.stress.chart import _ticks, chart_figure, duration, time_positions, write_chart
from backstop.stress.report import summary_table, to_json, without_chain_fields
from backstop.units import WAD

ROOT = Path(__file__).resolve().parents[3]

SMALL = """
name: series
markets:
  ETH: {price: 2000, initial_margin: 0.10, maintenance_margin: 0.05, keeper_reward: 0.01, insurance_fee: 0.01}
accounts: {alice: 1000, bob: 5000, keeper: 5000, staker: 0}
steps:
  - stake: {account: staker, amount: 500}
  - trade: {buyer: alice, seller: bob, market: ETH, size: 5, price: 2000}
  - advance: 3600
  - price: {ETH: 1700}
  - keeper: {by: keeper}
  - withdraw: {account: alice, amount: max, expect_revert: ZeroAmount}
"""


def w(tokens: int | str) -> str:
    """A token amount as the report's WAD string."""
    return str(int(tokens) * WAD)


def test_every_step_carries_the_state_after_it_with_exact_wad_strings():
    result = run(parse_scenario_text(SMALL), ModelBackend())
    assert result.ok, result.failures
    report = to_json(result)
    assert report["start"] == {
        "time": 0,
        "prices": {"ETH": w(2000)},
        "equity": {"alice": w(1000), "bob": w(5000), "keeper": w(5000), "staker": "0"},
        "fund_assets": "0",
        "socialized_total": "0",
        "staked_value": {"staker": "0"},
    }
    series = [
        (
            s["index"],
            s["time"],
            s["prices"]["ETH"],
            s["equity"]["alice"],
            s["equity"]["bob"],
            s["equity"]["keeper"],
            s["fund_assets"],
            s["socialized_total"],
            s["staked_value"]["staker"],
        )
        for s in report["steps"]
    ]
    # alice: 5 long at 2,000 on 1,000 of margin; at 1,700 her equity is 1,000 - 5 x 300 = -500.
    # The keeper's reward is 1 % of 8,500 = 85, so the deficit is 585: the fund's 500 covers
    # 500 and the last 85 is socialized to bob, the only short (6,500 - 85).
    assert series == [
        (0, 0, w(2000), w(1000), w(5000), w(5000), w(500), "0", w(500)),
        (1, 0, w(2000), w(1000), w(5000), w(5000), w(500), "0", w(500)),
        (2, 3600, w(2000), w(1000), w(5000), w(5000), w(500), "0", w(500)),
        (3, 3600, w(1700), w(-500), w(6500), w(5000), w(500), "0", w(500)),
        (4, 3600, w(1700), "0", w(6415), w(5085), "0", w(85), "0"),
        (5, 3600, w(1700), "0", w(6415), w(5085), "0", w(85), "0"),
    ]
    assert [(liq["deficit"], liq["covered"], liq["socialized"]) for liq in report["liquidations"]] == [
        (w(585), w(500), w(85))
    ]
    # the report is JSON as written, and only chain_id, gas_used and time are chain-only
    assert json.loads(json.dumps(report)) == report
    bare = without_chain_fields(report)
    assert "chain_id" not in bare and all("time" not in s and "gas_used" not in s for s in bare["steps"])
    assert bare["steps"][3]["equity"]["alice"] == w(-500)


STALE = (
    SMALL
    + """  - advance: 90000
  - deposit: {account: staker, amount: 1}
"""
)


def _net_pnl(table: str, name: str) -> str:
    header = next(line for line in table.splitlines() if line.startswith("account"))
    row = next(line for line in table.splitlines() if line.split()[:1] == [name])
    columns = header.split()
    # "pending loss" and "fund shares" and "net P&L" are two words each in the header
    assert columns[-3:] == ["net", "P&L", "positions"]
    return row.split()[6]


def test_net_pnl_uses_the_last_readable_equity_when_the_price_is_stale():
    """The issue's case: after a heartbeat with no price, equity is unreadable; the net P&L used
    the bare margin (bob: -5,000 deposited + 5,000 margin = 0) instead of his last valuation
    (-5,000 + 6,415 = +1,415)."""
    result = run(parse_scenario_text(STALE), ModelBackend())
    assert result.ok, result.failures
    assert result.accounts["bob"].equity is None and result.accounts["bob"].margin == 5000 * WAD
    assert result.last_readable_equity("bob") == 6415 * WAD
    assert to_json(result)["steps"][-1]["equity"]["bob"] is None
    table = summary_table(result)
    assert _net_pnl(table, "bob") == "1,415.00"
    assert _net_pnl(table, "keeper") == "85.00"  # 5,085 last readable, 5,000 deposited
    assert _net_pnl(table, "alice") == "-1,000.00"


def test_the_time_axis_spreads_every_distinct_time_and_labels_it():
    positions = time_positions([0, 0, 3600, 3660, 3660, 608460])
    assert list(positions) == [0, 3600, 3660, 608460]
    xs = list(positions.values())
    assert xs == sorted(xs) and len(set(xs)) == 4
    assert [duration(t) for t in positions] == ["0", "1 h", "1 h 1 min", "7 d 1 h"]
    # the chain's per-block seconds barely widen the axis and get no tick of their own
    chain = time_positions([0, 1, 2, 3600, 3601, 3660, 608462])
    assert chain[2] - chain[0] < 0.2 < chain[3660] - chain[3601]
    assert _ticks(chain)[1] == ["0", "1 h", "1 h 1 min", "7 d 1 h"]


def test_the_chart_has_a_time_axis_a_symlog_equity_axis_labels_and_marks(tmp_path):
    scenario = parse_scenario_text(SMALL.replace("name: series", "name: chart"))
    result = run(scenario, ModelBackend())
    fig = chart_figure(result)
    try:
        price_ax, equity_ax, fund_ax = fig.axes[:3]
        assert equity_ax.get_yscale() == "symlog"
        texts = [t.get_text() for t in equity_ax.texts]
        assert texts == ["liquidated alice (steps[4])"]
        assert "model time since the start" in fund_ax.get_xlabel()
        assert [t.get_text() for t in fund_ax.get_xticklabels()] == ["0", "1 h"]
        legend = [t.get_text() for t in fund_ax.get_legend().get_texts()]
        assert "staker's fund shares" in legend
        reverted = [line for line in price_ax.get_lines() if line.get_label() == "reverted step"]
        assert len(reverted) == 1 and list(reverted[0].get_ydata()) == [1700.0]
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    path = write_chart(result, tmp_path / "chart.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000


def _stress(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    ape = Path(sys.executable).with_name("ape")
    return subprocess.run(
        [str(ape), "run", "stress", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def dead_rpc() -> str:
    """A local URL where nothing listens (a port just freed)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_ape_run_stress_backend_model_needs_no_node(tmp_path, dead_rpc):
    """With a provider pointed at a dead RPC, the chain backend would refuse to start; the model
    backend never touches the provider, so it runs."""
    small = tmp_path / "series.yaml"
    small.write_text(SMALL)
    done = _stress(
        "--scenario", str(small), "--backend", "model", "--out", str(tmp_path),
        env={"APE_FOUNDRY_HOST": dead_rpc},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "on the reference model" in done.stdout
    assert "steps[4] keeper by keeper [liquidated alice] ok" in done.stdout
    assert "anvil" not in (done.stdout + done.stderr).lower()
    report = json.loads((tmp_path / "series.json").read_text())
    assert report["chain_id"] is None and report["steps"][4]["socialized_total"] == w(85)
    assert (tmp_path / "series.png").exists()

    refused = _stress("--scenario", str(small), "--backend", "chain", "--out", str(tmp_path),
                      env={"APE_FOUNDRY_HOST": dead_rpc})  # fmt: skip
    assert refused.returncode == 1 and "refusing to start a node" in refused.stderr


def test_backend_model_refuses_a_network_and_two_scenarios_of_one_name(tmp_path):
    small = tmp_path / "a.yaml"
    small.write_text(SMALL)
    other = tmp_path / "b.yaml"
    other.write_text(SMALL.replace("keeper: 5000", "keeper: 6000"))
    done = _stress("--scenario", str(small), "--backend", "model", "--network", "ethereum:local:test")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "stress: --network has no meaning with --backend model (the model needs no chain)"
    ]
    done = _stress("--scenario", str(small), "--scenario", str(other), "--backend", "model",
                   "--out", str(tmp_path))  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"stress: {small} and {other} are both named 'series': the second would overwrite "
        f"{tmp_path}/series.json; give one of them another name"
    ]
    assert not (tmp_path / "series.json").exists()
    # two names: both played, both written, in turn
    other.write_text(SMALL.replace("name: series", "name: series-2"))
    done = _stress("--scenario", str(small), "--scenario", str(other), "--backend", "model",
                   "--out", str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "series.json").exists() and (tmp_path / "series-2.json").exists()
