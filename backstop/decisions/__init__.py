"""What to do, decided from a snapshot: pure functions, no I/O, no clock.

The one copy of the keeper's liquidation policy (docs/design.md §4), used by the keeper, the stress
runner's model backend and the tests, and the capital-aware pass plan (:mod:`.capital`: whole and
partial takeovers sized to the keeper's own margin, docs/keeper.md).
"""

# liquidation first: capital imports backstop.model.math, which initialises backstop.model, whose
# base module imports AccountHealth from this package (it must already be bound here).
from backstop.decisions.liquidation import AccountHealth, LiquidationPlan, decide, plan_liquidations

# isort: split
from backstop.decisions.capital import (
    Batch,
    Book,
    GasModel,
    MarketTerms,
    PartialStep,
    PassPlan,
    Skip,
    Unabsorbable,
    Valuation,
    plan_pass,
    split_batch,
    step_size,
    valuation,
)
from backstop.decisions.fallback import play_actions

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
    "plan_liquidations",
    "plan_pass",
    "play_actions",
    "split_batch",
    "step_size",
    "valuation",
]
