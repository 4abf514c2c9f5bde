"""Exact-integer reference model of the collateral vault, the margin engine and the insurance fund.

Read in this order: :mod:`~backstop.model.state` (the data), :mod:`~backstop.model.math` (rounding),
:mod:`~backstop.model.base` (views and the shared reads), the rules :mod:`~backstop.model.trading`,
:mod:`~backstop.model.fund` and :mod:`~backstop.model.liquidation` (the waterfall), and
:mod:`~backstop.model.engine` (``Model`` and its admin hooks). :mod:`~backstop.model.rollback` holds
the transaction machinery (copies and rollback), kept apart from the rules.
"""

from backstop.model.engine import Model
from backstop.model.math import (
    INT256_MAX,
    LONG,
    MAX_VALUE,
    SHORT,
    ceil_div,
    mul_div_ceil,
    mul_wad_ceil,
    mul_wad_down,
    mul_wad_floor,
    mul_wad_up,
    side_of,
)
from backstop.model.rollback import clone, copy_state
from backstop.model.state import (
    AccountState,
    Health,
    Market,
    MarketParams,
    ModelRevert,
    Position,
    RedeemRequest,
)

__all__ = [
    "INT256_MAX",
    "LONG",
    "MAX_VALUE",
    "SHORT",
    "AccountState",
    "Health",
    "Market",
    "MarketParams",
    "Model",
    "ModelRevert",
    "Position",
    "RedeemRequest",
    "ceil_div",
    "clone",
    "copy_state",
    "mul_div_ceil",
    "mul_wad_ceil",
    "mul_wad_down",
    "mul_wad_floor",
    "mul_wad_up",
    "side_of",
]
