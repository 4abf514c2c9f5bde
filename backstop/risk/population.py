"""The generated population (docs/risk-lab.md §"Population"): long/short pairs that open against
each other at the markets' initial prices, each side with margin for its own drawn leverage.

The draws from the generator, market by market in ``markets`` order (so a seed gives one
population):

1. the pairs are split among the markets by the ``population.markets`` shares with the
   largest-remainder rule (exact counts, ties to the earlier market; no draw);
2. the market's pairs' notionals (quote units) from ``population.size``; a size is ``notional /
   price`` floored to the 1e-6 base-unit grid (:data:`SIZE_TICK` WAD), so every size is
   representable in a trade. A lognormal draw below one tick is drawn again (up to
   :data:`REDRAWS` rounds, then an error); a ``fixed`` or ``table`` value below one tick is an
   error;
3. the longs' leverages, then the shorts', from ``population.leverage``, clipped to at most
   ``1 / initial_margin`` of the market;
4. each side's margin in whole token units (no draw): ``notional / leverage`` rounded up, and at
   least :func:`opening_margin` (the initial margin requirement plus the larger of the maker and
   taker fees, exactly as the model computes them), so every pair opens whichever side makes.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Protocol

import numpy as np

from backstop.config import MarketConfig
from backstop.model.math import ceil_div, mul_wad_up
from backstop.risk.inputs import Distribution, PopulationSpec, RiskConfigError
from backstop.risk.types import Pair
from backstop.units import WAD, format_units

#: The size grid: 1e-6 base units (WAD).
SIZE_TICK = 10**12
#: Rounds of redrawing the sizes below one tick before giving up.
REDRAWS = 100


def allocate(shares: tuple[Decimal, ...], pairs: int) -> tuple[int, ...]:
    """``pairs`` split by ``shares`` (summing to 1): floors, then one more to the largest
    remainders (the earlier market on a tie). The counts sum to ``pairs``."""
    exact = [s * pairs for s in shares]
    counts = [int(e.to_integral_value(ROUND_FLOOR)) for e in exact]
    order = sorted(range(len(shares)), key=lambda m: (-(exact[m] - counts[m]), m))
    for m in order[: pairs - sum(counts)]:
        counts[m] += 1
    return tuple(counts)


def draw(dist: Distribution, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` draws of ``dist`` (float64)."""
    if dist.kind == "fixed":
        return np.full(n, dist.value)
    if dist.kind == "lognormal":
        return dist.median * np.exp(dist.sigma * rng.standard_normal(n))
    weights = np.asarray(dist.weights)
    return np.asarray(dist.values)[rng.choice(len(weights), size=n, p=weights / weights.sum())]


def opening_margin(market: MarketConfig, size: int, price: int, scale: int) -> int:
    """The fewest whole token units with which one side opens ``size`` at ``price`` (= the
    oracle) on the model: equity ``margin − fee + uPnL ≥ IMR``, with the fee the larger of the
    maker's and the taker's (``ceilDiv(mulWadUp(notional, fee), SCALE)``) and the uPnL of an
    open at the oracle price (0, or -1 wei when ``size·price`` is not a whole WAD)."""
    notional = mul_wad_up(size, price)
    imr = mul_wad_up(notional, market.im_ratio)
    fee = ceil_div(mul_wad_up(notional, max(market.maker_fee_ratio, market.taker_fee_ratio)), scale)
    upnl_loss = 1 if (size * price) % WAD else 0
    return ceil_div(imr + upnl_loss, scale) + fee


def _sizes(dist: Distribution, price: int, rng: np.random.Generator, n: int, where: str) -> list[int]:
    """``n`` sizes (WAD, multiples of SIZE_TICK, ≥ one tick) for notionals drawn from ``dist``."""
    price_f = price / WAD

    def ticks(notional: np.ndarray) -> np.ndarray:
        return np.floor(notional / price_f * (WAD // SIZE_TICK))

    out = ticks(draw(dist, rng, n))
    for _ in range(REDRAWS):
        low = np.flatnonzero(out < 1)
        if not len(low):
            return [int(t) * SIZE_TICK for t in out]
        if dist.kind != "lognormal":
            break
        out[low] = ticks(draw(dist, rng, len(low)))
    raise RiskConfigError(
        f"{where}: notionals below one size tick (1e-6 base units at {format_units(price)}) "
        "keep being drawn; raise the size"
    )


class _Config(Protocol):
    """What :func:`generate_pairs` reads of a ``backstop.risk.spec.RiskConfig``."""

    population: PopulationSpec
    collateral_decimals: int
    markets: tuple[MarketConfig, ...]


def generate_pairs(cfg: _Config, rng: np.random.Generator) -> tuple[Pair, ...]:
    """The population of ``cfg`` (``population.accounts / 2`` pairs) drawn from ``rng``; a
    market's total size above its ``open_interest_cap`` is a ``RiskConfigError``."""
    spec = cfg.population
    scale = 10 ** (18 - cfg.collateral_decimals)
    counts = allocate(spec.shares, spec.pairs)
    pairs: list[Pair] = []
    for m, (market, n) in enumerate(zip(cfg.markets, counts, strict=True)):
        if not n:
            continue
        price = market.mock_price
        sizes = _sizes(spec.size, price, rng, n, "population.size")
        max_leverage = WAD / market.im_ratio
        lev_long = np.minimum(draw(spec.leverage, rng, n), max_leverage)
        lev_short = np.minimum(draw(spec.leverage, rng, n), max_leverage)
        oi = sum(sizes)
        if oi > market.open_interest_cap:
            raise RiskConfigError(
                f"population: the pairs' open interest in {market.name} ({format_units(oi)}) exceeds "
                f"markets.{market.name}.open_interest_cap ({format_units(market.open_interest_cap)})"
            )
        for size, lev_l, lev_s in zip(sizes, lev_long.tolist(), lev_short.tolist(), strict=True):
            floor = opening_margin(market, size, price, scale)
            notional_tokens = mul_wad_up(size, price) / scale

            def margin(leverage: float, floor: int = floor, notional_tokens: float = notional_tokens) -> int:
                return max(floor, int(np.ceil(notional_tokens / leverage)))

            pairs.append(Pair(market=m, size=size, long_margin=margin(lev_l), short_margin=margin(lev_s)))
    return tuple(pairs)
