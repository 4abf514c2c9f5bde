"""Running a risk config (backstop.risk.run, report, cli): the same seed gives the same report
in one process, on a local Dask cluster of 2 workers and through a scheduler's address; the CLI's
errors are one line each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backstop.risk.config import load_risk_config
from backstop.risk.report import report
from backstop.risk.run import CHUNK, chunk_prices, chunk_seed, chunks, run_paths

CONFIG = """
name: tiny
paths: 60
seed: 7
markets:
  ETH: {price: 2000, initial_margin: 0.10, maintenance_margin: 0.05, keeper_reward: 0.01, insurance_fee: 0.01}
insurance: {size: 2000}
population:
  accounts: 8
  seed: 3
  markets: {ETH: 1}
  leverage: {lognormal: {mean: 7, sigma: 0.3}}
  size: {lognormal: {median: 10000, sigma: 0.5}}
process:
  ETH: {merton: {drift: 0, volatility: 1.5, jump_rate: 2000, jump_mean: -0.03, jump_sigma: 0.05}}
horizon: {steps: 12, step_seconds: 3600}
keeper: {capital: 200000, latency_steps: 1}
"""


@pytest.fixture(scope="module")
def config_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("risk") / "tiny.yaml"
    path.write_text(CONFIG)
    return path


def body(config_path: Path, **kwargs) -> dict:
    config = load_risk_config(config_path)
    out = run_paths(config, config.paths, config.seed, **kwargs)
    b = report(
        config.lab(),
        out.results,
        seed=config.seed,
        engine=kwargs.get("engine", "fast"),
        config_path="tiny.yaml",
        seconds=1.0,
        where="-",
    )
    return b


def test_chunks_and_their_seeds_do_not_depend_on_the_workers():
    assert chunks(60) == [(0, CHUNK), (1, CHUNK), (2, 60 - 2 * CHUNK)]
    assert chunk_seed(7, 2).generate_state(4).tolist() == chunk_seed(7, 2).generate_state(4).tolist()
    assert chunk_seed(7, 1).generate_state(4).tolist() != chunk_seed(7, 2).generate_state(4).tolist()
    with pytest.raises(ValueError, match="paths must be ≥ 1, got 0"):
        chunks(0)


def test_path_i_is_the_same_in_every_run_that_reaches_it(config_path):
    # A shorter run is a prefix of a longer one: the last, partial chunk keeps the first paths
    # of a whole chunk's draw, so adding paths extends the sample instead of redrawing it.
    config = load_risk_config(config_path)
    long = run_paths(config, 60, 7).results
    for n in (1, 8, CHUNK, CHUNK + 3):
        assert run_paths(config, n, 7).results == long[:n], n
    assert long[:8] != run_paths(config, 8, 8).results  # and the seed matters
    whole = chunk_prices(config, 7, 1, CHUNK)
    assert (chunk_prices(config, 7, 1, 3) == whole[:3]).all()
    for bad in (0, CHUNK + 1):
        with pytest.raises(ValueError, match=rf"count must be in \[1, {CHUNK}\], got {bad}"):
            chunk_prices(config, 7, 1, bad)


def test_one_process_two_workers_and_a_scheduler_give_the_same_report(config_path):
    from dask.distributed import LocalCluster

    alone = body(config_path)
    assert alone["paths"] == 60 and alone["trades_failed"] == 0
    # The config is rough enough that the distribution is not degenerate.
    assert 0 < alone["probabilities"]["bad_debt"] < 1
    assert alone["metrics"]["bad_debt"]["p99"] > alone["metrics"]["bad_debt"]["p50"]
    assert body(config_path, workers=2) == alone
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        assert body(config_path, scheduler=cluster.scheduler_address) == alone
    assert body(config_path) == alone  # and again
    # The exact engine gives the same numbers (tests/unit/risk/test_fast.py: path by path).
    exact = body(config_path, engine="exact")
    assert exact.pop("engine") == "exact" and alone.pop("engine") == "fast"
    assert exact == alone


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backstop.cli", "risk", "run", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_cli_writes_the_report_and_the_charts(config_path, tmp_path):
    done = run_cli(str(config_path), "--paths", "30", "--out", str(tmp_path), "--quiet")
    assert done.returncode == 0, done.stderr
    written = json.loads((tmp_path / "tiny.json").read_text())
    assert written["paths"] == 30 and written["seed"] == 7 and written["engine"] == "fast"
    assert set(written["metrics"]) == {
        "bad_debt",
        "fund_cover",
        "socialized",
        "haircut_per_oi",
        "max_account_haircut",
        "liquidations",
    }
    assert set(written["metrics"]["bad_debt"]) == {
        "mean",
        "p50",
        "p95",
        "p99",
        "p99.9",
        "es95",
        "es99",
        "max",
    }
    assert len(written["fund_assets"]["p50"]) == 13
    assert (tmp_path / "tiny-bad-debt.png").stat().st_size > 10_000
    assert (tmp_path / "tiny-fund.png").stat().st_size > 10_000
    assert (tmp_path / "tiny-shock.png").stat().st_size > 10_000
    curve = {p["move_pct"]: p for p in written["shock_curve"]}
    assert sorted(curve) == list(range(-50, 51, 5)) and curve[0]["bad_debt"] == "0"
    assert int(curve[-50]["bad_debt"]) > int(curve[-25]["bad_debt"]) > 0  # 7x longs: bankrupt past −14 %
    assert "paths" not in done.stderr.split("\n", 1)[1]  # --quiet: no progress bar


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace("paths: 60", "paths: 0"), "paths: must be ≥ 1, got 0"),
        (
            lambda s: s.replace("volatility: 1.5", "volatility: -0.2"),
            "process.ETH.volatility: must be ≥ 0, got -0.2",
        ),
        (lambda s: s.replace("seed: 7", "seed: 7\nsed: 1"), "unknown key 'sed'"),
    ],
)
def test_an_invalid_config_is_one_line_and_no_traceback(tmp_path, edit, message):
    path = tmp_path / "bad.yaml"
    path.write_text(edit(CONFIG))
    done = run_cli(str(path), "--out", str(tmp_path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("risk: "), done.stderr
    assert "Traceback" not in done.stderr


def test_exported_paths_and_their_records(config_path, tmp_path):
    done = run_cli(
        str(config_path), "--paths", "30", "--out", str(tmp_path), "--quiet",
        "--export-scenarios", str(tmp_path / "paths"), "--export", "2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    per_path = json.loads((tmp_path / "tiny.json").read_text())["per_path"]
    assert [p["path"] for p in per_path] == [0, 1]
    assert [Path(p["scenario"]).name for p in per_path] == ["tiny-path-0.yaml", "tiny-path-1.yaml"]
    assert set(per_path[0]) == {
        "path",
        "scenario",
        "bad_debt",
        "insurance_covered",
        "socialized",
        "liquidations",
    }
    bad = run_cli(
        str(config_path), "--out", str(tmp_path), "--export-scenarios", str(tmp_path), "--export", "0"
    )
    assert (
        bad.returncode == 2
        and bad.stderr.strip() == "risk: --export: must be between 1 and the 60 paths, got 0"
    )
