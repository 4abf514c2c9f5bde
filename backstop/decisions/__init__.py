"""What to do, decided from a snapshot: pure functions, no I/O, no clock.

The one copy of the keeper's liquidation policy (docs/design.md §4), used by the keeper, the stress
runner's model backend and the tests, and the capital-aware pass plan (:mod:`.capital`: whole and
partial takeovers sized to the keeper's own margin, docs/keeper.md) with its gas-budgeted
batches (:mod:`.batching`).
"""

from backstop.decisions.batching import Batch, GasModel, split_batch
from backstop.decisions.capital import (
    Book,
    MarketTerms,
    PartialStep,
    PassPlan,
    Skip,
    Unabsorbable,
    Valuation,
    gross_notional,
    plan_pass,
    step_size,
    valuation,
)
from backstop.decisions.fallback import play_actions
from backstop.decisions.liquidation import AccountHealth, LiquidationPlan, decide, plan_liquidations

__all__ = [
    "AccountHealth",
    "Batch",
    "Book",
    "GasModel",
    "LiquidationPlan",
    "MarketTerms",
    "PartialStep",
    "PassPlan",
    "Skip",
    "Unabsorbable",
    "Valuation",
    "decide",
    "gross_notional",
    "plan_liquidations",
    "plan_pass",
    "play_actions",
    "split_batch",
    "step_size",
    "valuation",
]
