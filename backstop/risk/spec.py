"""The parsed risk config's plain data (:class:`RiskConfig` and its sections), as
:mod:`backstop.risk.config` builds it from YAML: token amounts in token units, prices WAD, the
statistics (process and distribution parameters) floats."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backstop.config import MarketConfig
from backstop.risk.inputs import Distribution, PopulationSpec, RiskConfigError
from backstop.risk.types import Fund, Keeper, Lab

__all__ = ["Distribution", "PopulationSpec", "RiskConfigError"]


@dataclass(frozen=True)
class MarketProcess:
    """One market's price process (annualized): ``gbm`` (the jump terms 0), ``merton`` (Poisson
    jumps at ``jump_rate`` a year, log-jump ~ N(jump_mean, jump_sigma²)) or ``replay`` (the
    returns of :attr:`ProcessSpec.replay`)."""

    kind: str
    drift: float = 0.0
    volatility: float = 0.0
    jump_rate: float = 0.0
    jump_mean: float = 0.0
    jump_sigma: float = 0.0


@dataclass(frozen=True)
class Shock:
    """An instant move: market ``market``'s price is multiplied by ``1 + move`` at step ``step``
    (1-based; the level stays moved afterwards)."""

    step: int
    market: int
    move: float


@dataclass(frozen=True)
class Replay:
    """Market ``market`` follows the simple returns read from ``csv`` (one per step)."""

    market: int
    csv: Path
    returns: tuple[float, ...]


@dataclass(frozen=True)
class ProcessSpec:
    """Per market (in ``markets`` order) a :class:`MarketProcess`; the diffusion shocks'
    correlation (``None``: independent); scripted shocks; an optional replay."""

    markets: tuple[MarketProcess, ...]
    correlation: tuple[tuple[float, ...], ...] | None = None
    shocks: tuple[Shock, ...] = ()
    replay: Replay | None = None


@dataclass(frozen=True)
class RiskConfig:
    """A validated risk config (docs/risk-lab.md §"Config"); :meth:`lab` generates the population."""

    name: str
    description: str
    collateral_decimals: int
    markets: tuple[MarketConfig, ...]
    paths: int
    seed: int
    fund: Fund
    population: PopulationSpec
    process: ProcessSpec
    steps: int
    step_seconds: int
    keeper: Keeper
    source: str | None = None

    @property
    def market_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.markets)

    @property
    def initial_prices(self) -> tuple[int, ...]:
        """Each market's initial oracle price (WAD, on the 1e-8 grid)."""
        return tuple(m.mock_price for m in self.markets)

    def lab(self) -> Lab:
        """The run's markets, fund, keeper, horizon and population (generated from
        ``population.seed`` alone: the same on every call, whatever the run's ``seed``)."""
        from backstop.risk.population import generate_pairs

        pairs = generate_pairs(self, np.random.default_rng(self.population.seed))
        return Lab(
            name=self.name,
            collateral_decimals=self.collateral_decimals,
            markets=self.markets,
            pairs=pairs,
            fund=self.fund,
            keeper=self.keeper,
            steps=self.steps,
            step_seconds=self.step_seconds,
        )
