"""The risk config's population inputs and its error (split from :mod:`backstop.risk.spec` so
that :mod:`backstop.risk.population` needs nothing of the config itself)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


class RiskConfigError(ValueError):
    """A risk config is malformed; the message names the dotted key, one line per problem."""


@dataclass(frozen=True)
class Distribution:
    """A positive random quantity: ``lognormal`` (``median·exp(sigma·Z)``), ``fixed`` (``value``)
    or ``table`` (``values`` drawn with probabilities ``weights``, normalized)."""

    kind: str
    median: float = 0.0
    sigma: float = 0.0
    value: float = 0.0
    values: tuple[float, ...] = ()
    weights: tuple[float, ...] = ()


@dataclass(frozen=True)
class PopulationSpec:
    """``accounts`` accounts in long/short pairs; ``shares[m]``: market ``m``'s share of the pairs
    (exact decimals summing to 1); each side's leverage and the pair's notional (quote units)."""

    accounts: int
    seed: int
    shares: tuple[Decimal, ...]
    leverage: Distribution
    size: Distribution

    @property
    def pairs(self) -> int:
        return self.accounts // 2
