"""Statistics of a loss distribution (docs/risk-lab.md §"Report"): percentiles and expected
shortfall. Pure numpy.

- ``pXX`` is the empirical quantile with numpy's default (linear) interpolation;
- ``ES_a`` (expected shortfall at level ``a``) is the mean of the worst ``1 − a`` share of the
  paths, the tail that starts at ``ceil(a·n)`` in sorted order (at least one path), so that
  ``ES_a ≥ VaR_a`` always and ES of a constant is that constant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

PERCENTILES = (50.0, 95.0, 99.0, 99.9)
ES_LEVELS = (0.95, 0.99)


def expected_shortfall(values: Sequence[float] | np.ndarray, level: float) -> float:
    """The mean of the worst ``1 − level`` share of ``values`` (see the module docstring)."""
    x = np.sort(np.asarray(values, dtype=float))
    if x.size == 0:
        raise ValueError("no values")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    start = min(math.ceil(level * x.size), x.size - 1)
    return float(x[start:].mean())


def summary(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """``{"mean", "p50", "p95", "p99", "p99.9", "es95", "es99", "max"}`` of ``values``."""
    x = np.asarray(values, dtype=float)
    out = {"mean": float(x.mean())}
    for p in PERCENTILES:
        out[f"p{p:g}"] = float(np.percentile(x, p))
    for level in ES_LEVELS:
        out[f"es{round(level * 100)}"] = expected_shortfall(x, level)
    out["max"] = float(x.max())
    return out
