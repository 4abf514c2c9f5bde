"""``backstop risk sweep`` (backstop.risk.sweep): the grid's values, its validation (one line
naming the --param), and a run whose cells share their price paths."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from backstop.risk.spec import RiskConfigError
from backstop.risk.sweep import grid, parse_param
from tests.unit.risk.test_run import CONFIG


@pytest.fixture(scope="module")
def config_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "tiny.yaml"
    path.write_text(CONFIG)
    return path


def test_a_range_is_exact_decimals_and_an_integer_range_is_ints():
    p = parse_param("markets.ETH.maintenance_margin=0.03:0.10:8")
    assert p.key == "markets.ETH.maintenance_margin"
    assert p.values == tuple(
        Decimal(v) for v in ("0.03", "0.04", "0.05", "0.06", "0.07", "0.08", "0.09", "0.1")
    )
    assert parse_param("insurance.size=0:200000:5").values == (0, 50_000, 100_000, 150_000, 200_000)
    assert parse_param("keeper.latency_steps=0,1,3").values == (0, 1, 3)
    assert parse_param("insurance.size=0:1:3").values == (Decimal(0), Decimal("0.5"), Decimal(1))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("insurance.size", "expected KEY=LO:HI:N or KEY=V1,V2,..."),
        ("insurance.size=1:2", "a range is LO:HI:N"),
        ("insurance.size=0:10:1", "N must be between 2 and 50, got 1"),
        ("insurance.size=0:10:x", "N must be a whole number, got 'x'"),
        ("insurance.size=10:0:3", "HI must be above LO"),
        ("insurance.size=ten", "'ten' is not a number"),
        ("insurance..size=1", "is not a dotted key"),
        ("insurance.size=1,1", "a value is listed twice"),
    ],
)
def test_bad_params_are_one_line_naming_the_param(text, message):
    with pytest.raises(RiskConfigError, match="^--param ") as err:
        parse_param(text)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        # The tiny config's initial margin is 0.10: a maintenance margin of 0.10 is refused by the
        # engine's bounds, named with the cell.
        (
            ["markets.ETH.maintenance_margin=0.05:0.10:2"],
            "--param markets.ETH.maintenance_margin=0.1: markets.ETH: initial_margin must be > maintenance_margin",
        ),
        (["insurance.sise=0:10:2"], "--param insurance.sise=0: insurance: unknown key 'sise'"),
        (
            ["markets.SOL.maintenance_margin=0.01,0.02"],
            "--param markets.SOL.maintenance_margin: the config has no section markets.SOL",
        ),
        (["insurance.size=0:1:2", "insurance.size=0:2:2"], "--param: insurance.size is swept twice"),
        (["insurance.size=0:1:2", "seed=1,2", "paths=1,2"], "one or two parameters, got 3"),
        (["insurance.size=-5,1"], "insurance.size: "),
    ],
)
def test_every_cell_is_validated_before_anything_runs(config_path, params, message):
    with pytest.raises(RiskConfigError) as err:
        grid(config_path, [parse_param(p) for p in params])
    assert message in str(err.value), str(err.value)


def run_sweep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backstop.cli", "risk", "sweep", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_two_parameter_sweep_writes_the_grid_and_the_heatmap(config_path, tmp_path):
    done = run_sweep(
        str(config_path),
        "--param",
        "markets.ETH.maintenance_margin=0.03:0.09:3",
        "--param",
        "insurance.size=0:20000:3",
        "--paths",
        "25",
        "--out",
        str(tmp_path),
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    body = json.loads((tmp_path / "tiny-sweep.json").read_text())
    assert body["format"] == "backstop-risk-sweep/1" and body["paths"] == 25 and body["engine"] == "fast"
    assert body["params"] == [
        {"key": "markets.ETH.maintenance_margin", "values": ["0.03", "0.06", "0.09"]},
        {"key": "insurance.size", "values": ["0", "10000", "20000"]},
    ]
    cells = body["cells"]
    assert [c["values"] for c in cells[:4]] == [
        {"markets.ETH.maintenance_margin": "0.03", "insurance.size": "0"},
        {"markets.ETH.maintenance_margin": "0.03", "insurance.size": "10000"},
        {"markets.ETH.maintenance_margin": "0.03", "insurance.size": "20000"},
        {"markets.ETH.maintenance_margin": "0.06", "insurance.size": "0"},
    ]
    social = [[cells[3 * i + j]["probabilities"]["socialization"] for j in range(3)] for i in range(3)]
    # The cells share their price paths: a bigger fund never socializes on more paths; with no
    # stake the fund holds only fees, and most paths with bad debt socialize some of it.
    for row in social:
        assert row[0] >= row[1] >= row[2]
    for i in range(3):
        assert cells[3 * i]["probabilities"]["bad_debt"] >= social[i][0] > 0
    assert social[0][0] > social[0][2]
    # A later liquidation (a higher maintenance margin) leaves less bad debt on the same paths.
    assert cells[0]["bad_debt"]["es99"] >= cells[6]["bad_debt"]["es99"]
    assert (tmp_path / "tiny-sweep.png").stat().st_size > 10_000


def test_a_bad_sweep_is_one_line_and_no_traceback(config_path, tmp_path):
    done = run_sweep(str(config_path), "--param", "insurance.size=0:1", "--out", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "risk: --param insurance.size=0:1: a range is LO:HI:N, got '0:1'"
    ]
