"""What to do, decided from a snapshot: pure functions, no I/O, no clock.

The one copy of the keeper's liquidation policy (docs/design.md §4), used by the keeper, the stress
runner's model backend and the tests.
"""

from backstop.decisions.liquidation import AccountHealth, LiquidationPlan, decide, plan_liquidations

__all__ = ["AccountHealth", "LiquidationPlan", "decide", "plan_liquidations"]
