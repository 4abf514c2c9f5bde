"""Price paths (docs/risk-lab.md §"Price processes"): GBM and Merton jump-diffusion per market,
correlated diffusion shocks, scripted shocks and a CSV replay, as float64 arrays, then quantized
to WAD on the 1e-8 grid for the engines.

With ``dt = step_seconds / (365·86400)`` years, market ``m``'s log price moves each step by

    x = (μ − σ²/2 − λκ)·dt + σ·√dt·Z + Σ_{i ≤ N} Y_i,   N ~ Poisson(λ·dt),  Y_i ~ N(μ_J, σ_J²)

with ``κ = exp(μ_J + σ_J²/2) − 1`` (the compensator: ``E[S_t] = S_0·e^{μt}``); GBM is λ = 0, its
exact discretization. The sum of N normal jumps is drawn as ``N·μ_J + σ_J·√N·Z'``. The Z of the
markets are correlated by ``Z = A·ε`` with ``A = V·diag(√max(w, 0))`` from the eigen-decomposition
``C = V·diag(w)·Vᵀ`` (``A·Aᵀ = C`` also for a singular C). A replayed market's step is
``log(1 + r_t)`` (the same on every path); a scripted shock adds ``log(1 + move)`` at its step.
Then ``S_t = S_0·exp(x_1 + … + x_t)``.

The draws, in this order, all of shape ``(n_paths, steps, markets)`` from
``numpy.random.default_rng(seed_seq)``: ε (standard normals); then, only if some market has
jumps, N and Z'. A chunk's paths depend only on its ``SeedSequence`` and ``n_paths``.
"""

from __future__ import annotations

import numpy as np

from backstop.risk.config import RiskConfig
from backstop.risk.types import PricePath
from backstop.units import WAD

#: Seconds in the year of the annualized parameters.
YEAR_SECONDS = 365 * 86_400
#: The price grid: 1e-8 (WAD per tick = 1e10).
TICKS_PER_UNIT = 10**8
TICK = WAD // TICKS_PER_UNIT


def correlation_factor(correlation: tuple[tuple[float, ...], ...]) -> np.ndarray:
    """``A`` with ``A·Aᵀ = C`` for a positive semi-definite ``C`` (eigen-decomposition)."""
    w, v = np.linalg.eigh(np.asarray(correlation, dtype=np.float64))
    return v * np.sqrt(np.clip(w, 0.0, None))


def log_increments(cfg: RiskConfig, seed_seq: np.random.SeedSequence, n_paths: int) -> np.ndarray:
    """The per-step log-price moves ``x``, shape ``(n_paths, steps, markets)``."""
    spec, steps, k = cfg.process, cfg.steps, len(cfg.markets)
    if n_paths < 1:
        raise ValueError(f"n_paths must be ≥ 1, got {n_paths}")
    rng = np.random.default_rng(seed_seq)
    dt = cfg.step_seconds / YEAR_SECONDS
    drift = np.array([p.drift for p in spec.markets])
    vol = np.array([p.volatility for p in spec.markets])
    rate = np.array([p.jump_rate for p in spec.markets])
    jump_mean = np.array([p.jump_mean for p in spec.markets])
    jump_sigma = np.array([p.jump_sigma for p in spec.markets])
    kappa = np.expm1(jump_mean + jump_sigma**2 / 2)

    z = rng.standard_normal((n_paths, steps, k))
    if spec.correlation is not None:
        z = z @ correlation_factor(spec.correlation).T
    x = (drift - vol**2 / 2 - rate * kappa) * dt + vol * np.sqrt(dt) * z
    if np.any(rate > 0):
        counts = rng.poisson(rate * dt, size=(n_paths, steps, k))
        z_jump = rng.standard_normal((n_paths, steps, k))
        x += counts * jump_mean + jump_sigma * np.sqrt(counts) * z_jump
    if spec.replay is not None:
        x[:, :, spec.replay.market] = np.log1p(np.asarray(spec.replay.returns[:steps]))
    for shock in spec.shocks:
        x[:, shock.step - 1, shock.market] += np.log1p(shock.move)
    return x


def price_paths(cfg: RiskConfig, seed_seq: np.random.SeedSequence, n_paths: int) -> np.ndarray:
    """``n_paths`` price paths, float64 of shape ``(n_paths, steps + 1, markets)``: row 0 holds
    the initial prices, row ``t`` the prices after step ``t``."""
    x = log_increments(cfg, seed_seq, n_paths)
    initial = np.array([p / WAD for p in cfg.initial_prices])
    out = np.empty((n_paths, cfg.steps + 1, len(cfg.markets)))
    out[:, 0, :] = initial
    out[:, 1:, :] = initial * np.exp(np.cumsum(x, axis=1))
    return out


def to_ticks(paths: np.ndarray) -> np.ndarray:
    """The prices on the 1e-8 grid, as int64 ticks: ``round(p·1e8)`` (half to even), never below
    one tick. Prices must be finite and below 9.2e10 (int64 ticks)."""
    ticks = np.rint(np.asarray(paths, dtype=np.float64) * TICKS_PER_UNIT)
    if not np.all(np.isfinite(ticks)) or ticks.max(initial=0) >= 2.0**63:
        raise ValueError("a price path left the representable range (finite, < 9.2e10)")
    return np.maximum(ticks, 1).astype(np.int64)


def to_wad(paths: np.ndarray) -> list[PricePath]:
    """Each path as exact WAD ints on the 1e-8 grid (:func:`to_ticks` · 1e10)."""
    rows = to_ticks(paths).tolist()
    return [tuple(tuple(t * TICK for t in row) for row in path) for path in rows]
