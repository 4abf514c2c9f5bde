"""The parameter tables of the generated actions: price moves, time steps, tipping targets, the
admin's market-parameter variants, and the common parameter ranges (actor, market)."""

from __future__ import annotations

from collections.abc import Callable

from backstop.model import MarketParams
from backstop.units import WAD
from tests.fuzz.dsl import R
from tests.fuzz.world import MARKETS, N_ACTORS

#: Price moves in basis points: crashes and spikes, and the mid-size moves that take a position
#: opened near its initial margin to just under maintenance (where the insurance fee is capped by
#: the equity left) rather than straight to bankruptcy.
MOVES_BPS = (
    -9_000,
    -6_000,
    -4_500,
    -2_500,
    -1_800,
    -1_400,
    -1_100,
    -900,
    -800,
    -700,
    -600,
    -300,
    -100,
    -20,
    20,
    100,
    300,
    600,
    700,
    800,
    900,
    1_100,
    1_400,
    1_800,
    2_500,
    6_000,
    15_000,
)
#: Time steps in seconds: around every heartbeat (1,800 / 3,600 / 7,200 s), the fund's cooldown
#: (3 h) and window (1 h), their edges, and whole days.
TIME_STEPS = (
    1,
    13,
    600,
    1_799,
    1_800,
    1_801,
    3_600,
    3_601,
    7_201,
    10_799,
    10_800,
    10_801,
    12_000,
    14_401,
    86_400,
)
#: Resting orders kept for later fills and cancellations (the oldest is dropped beyond this).
BOOK_LIMIT = 48
#: Where a ``tip`` puts an account (see ``OracleRules.tip``).
TIP_TARGETS = ("edge", "safe", "fee", "bankrupt")


def _with(**changes: int) -> Callable[[MarketParams], MarketParams]:
    return lambda p: MarketParams(**{**p.__dict__, **changes})


def _scaled(num: int, den: int) -> Callable[[MarketParams], MarketParams]:
    """Every ratio scaled by ``num/den`` (bounds permitting), the cap unchanged."""

    def scale(p: MarketParams) -> MarketParams:
        fixed = ("oi_cap", "keeper_reward_cap")
        ratios = {k: v * num // den for k, v in p.__dict__.items() if k not in fixed}
        ratios["im_ratio"] = min(ratios["im_ratio"], WAD)
        return MarketParams(**ratios, oi_cap=p.oi_cap, keeper_reward_cap=p.keeper_reward_cap)

    return scale


#: Parameter changes the admin may try: valid ones, then ones outside the hard bounds.
PARAM_VARIANTS: tuple[Callable[[MarketParams], MarketParams], ...] = (
    lambda p: p,  # back to the listing values
    _scaled(3, 2),  # tighter requirements, higher fees, wider band
    _scaled(2, 3),  # looser
    _with(maker_fee_ratio=0, taker_fee_ratio=0),
    _with(oi_cap=1),  # existing open interest above the cap: only reductions trade
    lambda p: MarketParams(**{**p.__dict__, "im_ratio": p.mm_ratio}),  # im = mm: invalid
    # reward = mm with a fee on top: reward + fee > mm, invalid (insuranceFeeRatio)
    lambda p: MarketParams(**{**p.__dict__, "keeper_reward_ratio": p.mm_ratio}),
    _with(price_band_ratio=0),  # invalid
    _with(oi_cap=0),  # invalid
    _with(keeper_reward_cap=WAD),  # a one-token keeper reward cap: binds on every liquidation
    _with(keeper_reward_cap=0),  # invalid
)
#: Any actor, by index.
ACTOR = R(0, N_ACTORS - 1)
#: Any market, by id.
MARKET = R(0, len(MARKETS) - 1)
