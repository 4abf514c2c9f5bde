"""The risk config: defaults, exact amounts, and one clear line naming the key for each bad input."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path

import pytest

from backstop.risk.config import RiskConfigError, load_risk_config, load_risk_yaml, parse_risk_config
from backstop.risk.types import Fund, Keeper
from tests.unit.risk.conftest import BASE

ROOT = Path(__file__).resolve().parents[3]
D = Decimal


def base() -> dict:
    return copy.deepcopy(load_risk_yaml(BASE))


def test_defaults_and_exact_amounts():
    cfg = parse_risk_config(base())
    assert (cfg.paths, cfg.seed, cfg.collateral_decimals, cfg.step_seconds, cfg.steps) == (
        1000,
        0,
        6,
        300,
        10,
    )
    assert cfg.fund == Fund(assets=1000 * 10**6, floor=0, per_event_cap=0)
    assert cfg.keeper == Keeper(capital=100_000 * 10**6, latency=0)
    assert cfg.population.seed == 0 and cfg.population.pairs == 10
    assert cfg.population.shares == (D("0.5"), D("0.5"))
    assert cfg.market_names == ("ETH", "BTC") and cfg.initial_prices == (2000 * 10**18, 60000 * 10**18)
    assert [p.kind for p in cfg.process.markets] == ["gbm", "gbm"]
    assert cfg.process.correlation is None and cfg.process.shocks == () and cfg.process.replay is None
    raw = base()
    raw["insurance"] = {"size": D("1000.000001"), "floor": D("0.5"), "per_event_cap": 7}
    raw["population"].pop("markets")  # equal shares by default
    raw["population"].pop("leverage")  # 1x by default
    cfg = parse_risk_config(raw)
    assert cfg.fund == Fund(assets=1_000_000_001, floor=500_000, per_event_cap=7_000_000)
    assert cfg.population.shares == (D("0.5"), D("0.5"))
    assert cfg.population.leverage.kind == "fixed" and cfg.population.leverage.value == 1.0


def test_the_example_loads():
    cfg = load_risk_config(ROOT / "risk" / "eth_flash_crash.yaml")
    assert cfg.name == "eth_flash_crash" and cfg.steps == 288 and cfg.step_seconds == 300
    assert cfg.fund.assets == 100_000 * 10**6 and cfg.keeper.capital == 1_000_000 * 10**6
    assert cfg.population.accounts == 200 and cfg.population.shares == (D("0.7"), D("0.3"))
    eth, btc = cfg.process.markets
    assert (eth.kind, btc.kind) == ("merton", "gbm") and eth.jump_rate == 20.0
    assert cfg.process.correlation == ((1.0, 0.8), (0.8, 1.0))
    [shock] = cfg.process.shocks
    assert (shock.step, shock.market, shock.move) == (24, 0, -0.3)
    lab = cfg.lab()
    assert lab.accounts == 200 and lab.steps == 288


def _set(raw: dict, dotted: str, value) -> dict:
    *parents, last = dotted.split(".")
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value
    return raw


# (change to the base config, the one line expected)
BAD = [
    (
        lambda r: _set(r, "pathz", 5),
        "unknown key 'pathz'; allowed: collateral_decimals, description, horizon, insurance, keeper, "
        "markets, name, paths, population, process, seed",
    ),
    (lambda r: _set(r, "paths", 0), "paths: must be ≥ 1, got 0"),
    (lambda r: _set(r, "paths", D("10.5")), "paths: a whole number expected, got 10.5"),
    (lambda r: _set(r, "seed", -1), "seed: must be ≥ 0, got -1"),
    (
        lambda r: _set(r, "process.ETH.gbm.volatility", D("-0.2")),
        "process.ETH.volatility: must be ≥ 0, got -0.2",
    ),
    (
        lambda r: _set(r, "process.ETH", {"gbm": {"volatility": 1, "drfit": 0}}),
        "process.ETH.gbm: unknown key 'drfit'; allowed: drift, volatility",
    ),
    (
        lambda r: _set(r, "process.ETH", {"brownian": {"volatility": 1}}),
        "process.ETH: one of {gbm: {drift, volatility}} or {merton: {drift, volatility, jump_rate, "
        "jump_mean, jump_sigma}}",
    ),
    (
        lambda r: _set(r, "process.ETH", {"merton": {"volatility": 1, "jump_rate": 2, "jump_mean": 0}}),
        "process.ETH.merton.jump_sigma: is required",
    ),
    (
        lambda r: _set(
            r, "process.ETH", {"merton": {"volatility": 1, "jump_rate": -2, "jump_mean": 0, "jump_sigma": 0}}
        ),
        "process.ETH.jump_rate: must be ≥ 0, got -2",
    ),
    (
        lambda r: r["process"].pop("BTC") and r,
        "process.BTC: is required (every market needs gbm, merton or the replay)",
    ),
    (
        lambda r: _set(r, "process.correlation", [[1, D("0.5")], [D("0.4"), 1]]),
        "process.correlation: not symmetric ([0][1] is 0.5, [1][0] is 0.4)",
    ),
    (
        lambda r: _set(r, "process.correlation", [[1, 0], [0, D("0.9")]]),
        "process.correlation[1][1]: the diagonal must be 1, got 0.9",
    ),
    (
        lambda r: _set(r, "process.correlation", [[1, 2], [2, 1]]),
        "process.correlation[0][1]: must be in [-1, 1], got 2",
    ),
    (
        lambda r: _set(r, "process.correlation", [[1, 0]]),
        "process.correlation: a 2×2 matrix (a list of 2 lists of 2, in markets order) expected",
    ),
    (
        lambda r: _set(r, "process.shocks", [{"step": 11, "market": "ETH", "move": D("-0.3")}]),
        "process.shocks[0].step: must be ≤ 10, got 11",
    ),
    (
        lambda r: _set(r, "process.shocks", [{"step": 1, "market": "SOL", "move": D("-0.3")}]),
        "process.shocks[0].market: unknown market 'SOL'; markets: ETH, BTC",
    ),
    (
        lambda r: _set(r, "process.shocks", [{"step": 1, "market": "ETH", "move": -1}]),
        "process.shocks[0].move: must be > -1, got -1",
    ),
    (
        lambda r: _set(r, "population.accounts", 21),
        "population.accounts: must be even (long/short pairs), got 21",
    ),
    (
        lambda r: _set(r, "population.markets", {"ETH": D("0.5"), "BTC": D("0.4")}),
        "population.markets: the shares must sum to 1, got 0.9",
    ),
    (
        lambda r: _set(r, "population.markets", {"ETH": 1, "SOL": 0}),
        "population.markets.SOL: unknown market 'SOL'; markets: ETH, BTC",
    ),
    (
        lambda r: _set(r, "population.leverage", {"table": [[5, 1], [0, 1]]}),
        "population.leverage.table[1][0]: must be > 0, got 0",
    ),
    (
        lambda r: _set(r, "population.size", {"lognormal": {"mean": 5, "sigma": 1}}),
        "population.size.lognormal: unknown key 'mean'; allowed: median, sigma",
    ),
    (
        lambda r: _set(r, "population.size", {"uniform": [1, 2]}),
        "population.size: one of {lognormal: {median, sigma}}, {fixed: x}, {table: [[x, weight], ...]}",
    ),
    (
        lambda r: _set(r, "insurance.size", D("0.0000001")),
        "insurance.size: 0.0000001 has more decimals than the token's 6",
    ),
    (lambda r: _set(r, "insurance.floor", -5), "insurance.floor: must be ≥ 0, got -5"),
    (lambda r: _set(r, "keeper", {"latency_steps": 2}), "keeper.capital: is required"),
    (lambda r: _set(r, "keeper.latency_steps", -1), "keeper.latency_steps: must be ≥ 0, got -1"),
    (lambda r: _set(r, "horizon.step_seconds", 0), "horizon.step_seconds: must be ≥ 1, got 0"),
    (
        lambda r: _set(r, "markets.ETH.maintenance_margin", D("0.2")),
        "markets.ETH: initial_margin must be > maintenance_margin and ≤ 1 (initial_margin 0.1, maintenance_margin 0.2)",
    ),
    (
        lambda r: _set(r, "markets.ETH.feed_decimals", 6),
        "markets.ETH.feed_decimals: the lab's prices are on a 1e-8 grid; must be ≥ 8, got 6",
    ),
    (
        lambda r: _set(_set(r, "markets.ETH.price", D("2000.000000001")), "markets.ETH.feed_decimals", 18),
        "markets.ETH.price: must have at most 8 decimals (the lab's price grid)",
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_one_line_per_problem(change, message):
    with pytest.raises(RiskConfigError) as err:
        parse_risk_config(change(base()))
    assert str(err.value) == message


def test_non_psd_correlation_names_the_smallest_eigenvalue():
    text = BASE.replace(
        "  BTC: {gbm: {volatility: 0.6}}",
        "  BTC: {gbm: {volatility: 0.6}}\n  SOL: {gbm: {volatility: 1}}\n"
        "  correlation: [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]]",
    ).replace(
        "insurance:",
        "  SOL: {price: 100, initial_margin: 0.10, maintenance_margin: 0.05, keeper_reward: 0.01,"
        " insurance_fee: 0.01}\ninsurance:",
    )
    with pytest.raises(RiskConfigError) as err:
        parse_risk_config(load_risk_yaml(text))
    assert str(err.value) == "process.correlation: not positive semi-definite (smallest eigenvalue -0.8)"
    singular = text.replace(
        "[[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]]", "[[1, 1, 0], [1, 1, 0], [0, 0, 1]]"
    )
    assert parse_risk_config(load_risk_yaml(singular)).process.correlation[0] == (1.0, 1.0, 0.0)


def test_file_errors_are_one_line_with_the_file(write):
    dup = write(BASE.replace("horizon: {steps: 10}", "horizon: {steps: 10, steps: 20}"))
    with pytest.raises(RiskConfigError) as err:
        load_risk_config(dup)
    assert str(err.value) == f"{dup}: line 16: duplicate key 'steps' in horizon (first at line 16)"
    top = write(BASE + "name: again\n", "top.yaml")
    with pytest.raises(
        RiskConfigError,
        match=r"top\.yaml: line 18: duplicate key 'name' in the top-level mapping \(first at line 1\)$",
    ):
        load_risk_config(top)
    bad = write(BASE.replace("paths", "x") + "paths: 0\n", "zero.yaml")
    with pytest.raises(RiskConfigError) as err:
        load_risk_config(bad)
    assert str(err.value) == f"{bad}: paths: must be ≥ 1, got 0"
    broken = write("name: [unclosed\n", "broken.yaml")
    with pytest.raises(RiskConfigError) as err:
        load_risk_config(broken)
    assert str(err.value).startswith(f"{broken}: line 2, column 1: not valid YAML") and "\n" not in str(
        err.value
    )
    with pytest.raises(RiskConfigError, match=r"missing\.yaml: cannot read the risk config"):
        load_risk_config(Path(write("", "x.yaml")).parent / "missing.yaml")


def test_replay_csv(write, tmp_path):
    replay = "  replay: {market: ETH, csv: data/eth.csv}\n"
    text = BASE.replace("  ETH: {gbm: {drift: 0, volatility: 0.8}}\n", replay)
    (tmp_path / "data").mkdir()
    csv = tmp_path / "data" / "eth.csv"
    csv.write_text("return\n" + "\n".join(["0.05", "-0.1", "", "0.2"] + ["0"] * 8) + "\n")
    cfg = load_risk_config(write(text))
    assert cfg.process.replay.market == 0 and cfg.process.markets[0].kind == "replay"
    assert cfg.process.replay.returns == (0.05, -0.1, 0.2, *[0.0] * 7)  # the first 10 of 11
    csv.write_text("0.05\n-0.1\n")
    with pytest.raises(RiskConfigError) as err:
        load_risk_config(write(text))
    assert str(err.value).endswith(
        f"process.replay.csv: {csv} has 2 returns; the horizon needs 10 (horizon.steps)"
    )
    csv.write_text("0.05\n-1.5\n")
    with pytest.raises(RiskConfigError, match=r"eth\.csv line 2: a return must be > -1, got -1\.5$"):
        load_risk_config(write(text))
    csv.write_text("0.05,0.1\n")
    with pytest.raises(RiskConfigError, match=r"eth\.csv line 1: one column \(a return\) expected, got 2$"):
        load_risk_config(write(text))
    csv.unlink()
    with pytest.raises(RiskConfigError, match=r"process\.replay\.csv: cannot read .*eth\.csv"):
        load_risk_config(write(text))
    csv.write_text("0\n" * 10)
    both = BASE.replace("  BTC: {gbm: {volatility: 0.6}}\n", "  BTC: {gbm: {volatility: 0.6}}\n" + replay)
    with pytest.raises(
        RiskConfigError,
        match=r"c\.yaml: process\.ETH: ETH follows process\.replay; give it no other process$",
    ):
        load_risk_config(write(both))
