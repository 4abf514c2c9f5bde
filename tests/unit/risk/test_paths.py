"""Price paths: GBM and Merton moments, realized correlation, scripted shocks, the CSV replay,
determinism per SeedSequence, and the exact 1e-8 quantization. Fixed seeds: deterministic."""

from __future__ import annotations

import copy
from decimal import Decimal

import numpy as np
import pytest

from backstop.risk.config import load_risk_yaml, parse_risk_config
from backstop.risk.paths import YEAR_SECONDS, log_increments, price_paths, to_wad
from tests.unit.risk.conftest import BASE

D = Decimal
SS = np.random.SeedSequence


def config(process=None, steps=10, step_seconds=300, **top):
    raw = copy.deepcopy(load_risk_yaml(BASE))
    if process is not None:
        raw["process"] = process
    raw["horizon"] = {"steps": steps, "step_seconds": step_seconds}
    raw.update(top)
    return parse_risk_config(raw)


def gbm(vol, drift=0):
    return {"gbm": {"drift": D(str(drift)), "volatility": D(str(vol))}}


def test_shape_and_initial_row():
    p = price_paths(config(), SS(1), 7)
    assert p.shape == (7, 11, 2) and p.dtype == np.float64
    assert (p[:, 0, :] == [2000.0, 60000.0]).all() and (p > 0).all()


def test_gbm_log_return_moments_and_mean_price():
    mu, sigma, dt = 0.5, 0.8, 1 / 365
    cfg = config({"ETH": gbm(sigma, mu), "BTC": gbm(0)}, steps=50, step_seconds=86_400)
    p = price_paths(cfg, SS(2024), 20_000)
    x = np.diff(np.log(p[:, :, 0]), axis=1).ravel()  # 1,000,000 daily log returns
    se = sigma * np.sqrt(dt) / np.sqrt(x.size)
    assert abs(x.mean() - (mu - sigma**2 / 2) * dt) < 4 * se
    assert x.var() == pytest.approx(sigma**2 * dt, rel=0.01)
    growth = p[:, -1, 0] / 2000
    assert growth.mean() == pytest.approx(np.exp(mu * 50 * dt), rel=0.01)  # E[S_T] = S_0 e^{μT}
    assert np.allclose(p[:, :, 1], 60000.0, rtol=0, atol=1e-9)  # volatility 0, drift 0: flat


def test_merton_moments_with_the_compensator():
    mu, sigma, lam, mj, sj, dt = 0.1, 0.5, 50.0, -0.05, 0.1, 1 / 365
    merton = {
        "merton": {
            k: D(str(v))
            for k, v in dict(drift=mu, volatility=sigma, jump_rate=lam, jump_mean=mj, jump_sigma=sj).items()
        }
    }
    cfg = config({"ETH": merton, "BTC": gbm(0.3)}, steps=50, step_seconds=86_400)
    x = log_increments(cfg, SS(99), 20_000)[:, :, 0].ravel()
    kappa = np.exp(mj + sj**2 / 2) - 1
    mean = (mu - sigma**2 / 2 - lam * kappa) * dt + lam * dt * mj
    var = sigma**2 * dt + lam * dt * (mj**2 + sj**2)
    assert abs(x.mean() - mean) < 4 * np.sqrt(var / x.size)
    assert x.var() == pytest.approx(var, rel=0.02)
    growth = np.exp(x.reshape(20_000, 50).sum(axis=1))
    assert growth.mean() == pytest.approx(np.exp(mu * 50 * dt), rel=0.01)  # the jumps are compensated
    no_jumps = config({"ETH": gbm(sigma, mu), "BTC": gbm(0.3)}, steps=50, step_seconds=86_400)
    assert log_increments(no_jumps, SS(99), 20_000)[:, :, 0].ravel().var() == pytest.approx(
        sigma**2 * dt, rel=0.01
    )


def test_realized_correlation_matches_the_matrix():
    raw = copy.deepcopy(load_risk_yaml(BASE))
    raw["markets"]["SOL"] = dict(raw["markets"]["ETH"], price=100)
    matrix = [[1, D("0.8"), D("-0.3")], [D("0.8"), 1, 0], [D("-0.3"), 0, 1]]
    raw["process"] = {"ETH": gbm(0.8), "BTC": gbm(0.6), "SOL": gbm(1.2), "correlation": matrix}
    cfg = parse_risk_config(raw)
    x = log_increments(cfg, SS(5), 10_000).reshape(-1, 3)
    realized = np.corrcoef(x, rowvar=False)
    assert np.abs(realized - np.array(matrix, dtype=float)).max() < 0.01
    assert x.std(axis=0) == pytest.approx(np.array([0.8, 0.6, 1.2]) * np.sqrt(300 / YEAR_SECONDS), rel=0.01)
    # a singular PSD matrix works too: perfectly correlated shocks
    raw["process"]["correlation"] = [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    x = log_increments(parse_risk_config(raw), SS(5), 1_000).reshape(-1, 3)
    assert np.corrcoef(x, rowvar=False)[0, 1] == pytest.approx(1.0, abs=1e-9)


def test_a_shock_moves_exactly_its_step():
    shocked = {"ETH": gbm(0.8), "BTC": gbm(0.6), "shocks": [{"step": 4, "market": "ETH", "move": D("-0.3")}]}
    plain = config({"ETH": gbm(0.8), "BTC": gbm(0.6)})
    a, b = price_paths(config(shocked), SS(3), 50), price_paths(plain, SS(3), 50)
    assert (a[:, :4, :] == b[:, :4, :]).all() and (a[:, :, 1] == b[:, :, 1]).all()
    assert np.allclose(a[:, 4:, 0] / b[:, 4:, 0], 0.7, rtol=1e-12, atol=0)
    flat = config({"ETH": gbm(0), "BTC": gbm(0), "shocks": shocked["shocks"] * 2})  # two compose
    path = to_wad(price_paths(flat, SS(0), 1))[0]
    assert [row[0] for row in path] == [2000 * 10**18] * 4 + [980 * 10**18] * 7  # 2000·0.7·0.7


def test_replay_reproduces_the_csv_prices(tmp_path):
    returns = ["0.05", "-0.1", "0.2", "-0.5", "0.25", "0", "0.01", "-0.01", "0.125", "-0.02"]
    (tmp_path / "r.csv").write_text("simple_return\n" + "\n".join(returns) + "\n")
    raw = copy.deepcopy(load_risk_yaml(BASE))
    raw["process"] = {"BTC": gbm(0.6), "replay": {"market": "ETH", "csv": "r.csv"}}
    cfg = parse_risk_config(raw, base_dir=tmp_path)
    expected, price = [2000 * 10**18], D(2000)
    for r in returns:
        price *= 1 + D(r)
        expected.append(int((price * 10**8).to_integral_value()) * 10**10)
    for path in to_wad(price_paths(cfg, SS(8), 5)):
        assert [row[0] for row in path] == expected  # every path, exactly on the 1e-8 grid
    shocked = dict(raw["process"], shocks=[{"step": 2, "market": "ETH", "move": D("0.5")}])
    raw["process"] = shocked
    eth = price_paths(parse_risk_config(raw, base_dir=tmp_path), SS(8), 1)[0, :, 0]
    assert eth[2] == pytest.approx(2000 * 1.05 * 0.9 * 1.5, rel=1e-12)


def test_determinism_per_seed_sequence():
    cfg = config(
        {
            "ETH": {
                "merton": {"volatility": 1, "jump_rate": 30, "jump_mean": D("-0.1"), "jump_sigma": D("0.1")}
            },
            "BTC": gbm(0.6),
            "correlation": [[1, D("0.5")], [D("0.5"), 1]],
        }
    )
    a = price_paths(cfg, SS(11), 20)
    assert np.array_equal(a, price_paths(cfg, SS(11), 20))
    assert not np.array_equal(a, price_paths(cfg, SS(12), 20))
    first, second = SS(11).spawn(2)  # the run's chunks: independent, each reproducible
    c1 = price_paths(cfg, first, 20)
    assert np.array_equal(c1, price_paths(cfg, SS(11).spawn(2)[0], 20))
    assert not np.array_equal(c1, price_paths(cfg, second, 20))
    assert not np.array_equal(c1, a)


def test_quantization_is_exact():
    paths = np.array([[[2000.0, 1234.56789012], [1e-12, -5.0], [0.123456785, 0.123456775]]])
    [path] = to_wad(paths)
    assert path == (
        (2000 * 10**18, 123456789012 * 10**10),
        (10**10, 10**10),  # never below one tick
        (round(0.123456785 * 1e8) * 10**10, round(0.123456775 * 1e8) * 10**10),  # Python's round
    )
    assert all(type(v) is int for row in path for v in row)
    with pytest.raises(ValueError, match="representable range"):
        to_wad(np.array([[[np.nan]]]))
