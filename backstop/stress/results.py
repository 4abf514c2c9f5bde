"""What a stress run produces: each step's outcome on a backend, the views read after it, and the
run's result (the report is written from it by :mod:`backstop.stress.report`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from backstop.scenario import Scenario

TOTAL_KEYS = (
    "bad_debt",
    "insurance_covered",
    "socialized",
    "keeper_rewards",
    "insurance_fees",
    "trading_fees",
)
LIQUIDATION_FIELDS = ("notional", "keeper_reward", "insurance_fee", "deficit", "covered", "socialized")


@dataclass
class Outcome:
    """What one step did on a backend. ``liquidations`` hold addresses and WAD integers."""

    reverted: bool = False
    error: str | None = None
    gas_used: int | None = None
    liquidations: list[dict[str, Any]] = field(default_factory=list)
    trading_fees: int = 0  # WAD
    flow: int = 0  # token units into (+) or out of (-) the acting account's wallet
    note: str = ""
    crashed: bool = False  # the runner itself failed (a node error, a bug): never expected


@dataclass(frozen=True)
class AccountView:
    """An account's state read from a backend's views (WAD). ``equity`` / ``free_collateral`` are
    None when a price it needs is unusable (stale). ``positions``: market name -> (size, openNotional),
    non-zero sizes only. ``fund_shares`` in raw share units."""

    margin: int
    equity: int | None
    free_collateral: int | None
    pending_loss: int
    positions: Mapping[str, tuple[int, int]]
    fund_shares: int


@dataclass
class StepRecord:
    index: int
    action: str
    description: str
    ok: bool
    reverted: bool
    gas_used: int | None
    error: str | None
    expect_revert: bool | str
    note: str = ""


@dataclass
class LiquidationRecord:
    step: int
    account: str
    liquidator: str
    notional: int
    keeper_reward: int
    insurance_fee: int
    deficit: int
    covered: int
    socialized: int
    #: A partial liquidation's market name and size taken (WAD); None for a whole account.
    market: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class StepState:
    """The state after setup or after a step, exact: ``time`` in seconds since the start on the
    backend's clock; prices, equities, fund assets, the cumulative socialized loss and each
    staker's fund share value (held plus escrowed in a request) in WAD. An equity is None when a
    price it needs is stale."""

    time: int
    prices: Mapping[str, int]
    equity: Mapping[str, int | None]
    fund_assets: int
    socialized_total: int
    staked_value: Mapping[str, int]


@dataclass
class Series:
    """Values after setup (x = -1) and after every step (x = its index), for the chart. Floats in
    whole tokens / quote units: for plotting only (the exact values: ``RunResult.states``)."""

    x: list[int] = field(default_factory=list)
    time: list[int] = field(default_factory=list)  # seconds since the start
    staked_value: dict[str, list[float]] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    prices: dict[str, list[float]] = field(default_factory=dict)
    equity: dict[str, list[float]] = field(default_factory=dict)
    fund_assets: list[float] = field(default_factory=list)
    socialized: list[float] = field(default_factory=list)


@dataclass
class RunResult:
    scenario: Scenario
    backend: str
    chain_id: int | None
    steps: list[StepRecord]
    accounts: dict[str, AccountView]
    insurance_assets: int  # WAD
    insurance_supply: int  # raw share units
    liquidations: list[LiquidationRecord]
    totals: dict[str, int]
    solvency: tuple[int, int, int]
    failures: list[str]
    series: Series
    flows: dict[str, int] = field(default_factory=dict)  # token units each wallet received (+) or paid (-)
    elapsed: float = 0.0
    #: ``states[0]`` after setup, ``states[i + 1]`` after ``steps[i]``.
    states: list[StepState] = field(default_factory=list)

    def last_readable_equity(self, name: str) -> int | None:
        """The account's equity after the last step where it could be read (None if never)."""
        for state in reversed(self.states):
            value = state.equity.get(name)
            if value is not None:
                return value
        return None

    @property
    def ok(self) -> bool:
        return not self.failures
