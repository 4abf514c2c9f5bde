"""The invariant IDs of docs/invariants.md, one constant each, and the failure that carries them.

Every assertion of the fuzz machine goes through :func:`expect` or :func:`fail` with one of these
constants, so its message starts with the ID (``INV-MARGIN-EQ: actor 3: margin … model …``) and
``tools/mutation.py`` can report which invariant caught each deliberate bug. The one-line
descriptions summarize the tables of docs/invariants.md; ``test_harness_tables.py`` checks that the
two list the same IDs.
"""

from __future__ import annotations

from collections.abc import Callable

#: Every invariant ID with its one-line description, in the order of docs/invariants.md.
DESCRIPTIONS: dict[str, str] = {}


def _declare(inv: str, description: str) -> str:
    DESCRIPTIONS[inv] = description
    return inv


# --- agreement with the model, action by action ---------------------------------------------------

INV_REVERT_MATCH = _declare(
    "INV-REVERT-MATCH",
    "The chain accepts an action exactly when the model does, else reverts with its error.",
)
INV_LIQ_EVENT = _declare(
    "INV-LIQ-EVENT",
    "Every Liquidated, PositionLiquidated and LiquidationSkipped event carries the model's figures.",
)
INV_PARTIAL_BUFFER = _declare(
    "INV-PARTIAL-BUFFER", "A partial liquidation never lowers the account's E − MMR by more than 2 wei."
)
INV_FUND_EXIT = _declare(
    "INV-FUND-EXIT",
    "redeem pays, withdraw burns, and a cancel returns and burns exactly what the model computes.",
)
INV_FUND_MAX = _declare(
    "INV-FUND-MAX", "Before every claim, the controller's maxRedeem and maxWithdraw equal the model's."
)
INV_FLAT_WITHDRAW = _declare(
    "INV-FLAT-WITHDRAW", "A flat account can always withdraw its whole positive margin (vault permitting)."
)

# --- agreement with the model, state by state ------------------------------------------------------

INV_TIME = _declare("INV-TIME", "The chain's block time is the machine's clock.")
INV_MARGIN_EQ = _declare("INV-MARGIN-EQ", "Every margin, and the vault's total margin, equal the model's.")
INV_POSITION_EQ = _declare(
    "INV-POSITION-EQ", "Every market list and position, and the net open notional, equal the model's."
)
INV_PENDING_EQ = _declare("INV-PENDING-EQ", "Every pending loss, and the unsettled loss, equal the model's.")
INV_EQUITY_EQ = _declare("INV-EQUITY-EQ", "Every priced account's equity equals the model's.")
INV_REQUIREMENT_EQ = _declare("INV-REQUIREMENT-EQ", "Every priced account's IMR and MMR equal the model's.")
INV_FREE_COLLATERAL_EQ = _declare(
    "INV-FREE-COLLATERAL-EQ", "Every priced account's free collateral equals the model's."
)
INV_ORACLE = _declare(
    "INV-ORACLE", "A price is usable exactly while its feed is fresh, and is the machine's."
)
INV_PAUSE = _declare("INV-PAUSE", "A market reports paused exactly when it or the whole protocol is paused.")
INV_OPEN_INTEREST = _declare("INV-OPEN-INTEREST", "Each market's open interest equals the model's.")
INV_LOSS_INDEX = _declare("INV-LOSS-INDEX", "Each market's two loss indices equal the model's.")
INV_SOLVENCY_EQ = _declare("INV-SOLVENCY-EQ", "engine.solvency() returns the model's triple.")
INV_FUND_ASSETS = _declare(
    "INV-FUND-ASSETS", "The fund's assets, token balance and coverable amount equal the model's."
)
INV_FUND_CREDIT = _declare(
    "INV-FUND-CREDIT", "The vault's credit for the fund equals the model's; totalAssets = tokens + credit."
)
INV_FUND_SHARES = _declare(
    "INV-FUND-SHARES", "Share supply, every account's shares and minted shares equal the model's."
)
INV_FUND_REQUEST = _declare(
    "INV-FUND-REQUEST", "Every fund redeem request (by controller) equals the model's."
)
INV_FUND_ESCROW = _declare(
    "INV-FUND-ESCROW", "The fund's own share balance is Σ escrowed request shares, equal to the model's."
)
INV_NONCE = _declare("INV-NONCE", "Every account's minimum order nonce equals the model's.")

# --- whole-system invariants -----------------------------------------------------------------------

INV_SOLVENCY_DUST = _declare(
    "INV-SOLVENCY-DUST", "One-sided: the solvency dust is within [0, the bound the machine accumulates]."
)
INV_ZERO_SUM = _declare(
    "INV-ZERO-SUM", "Sizes sum to zero in every market; Σ long size is the open interest."
)
INV_LOSS_FUNDED = _declare("INV-LOSS-FUNDED", "One-sided: Σ pending loss ≥ unsettled loss.")
INV_FLAT_NO_HAIRCUT = _declare("INV-FLAT-NO-HAIRCUT", "An account without positions has no pending loss.")
INV_LIQ_MARGIN_ZERO = _declare(
    "INV-LIQ-MARGIN-ZERO", "A liquidated account is flat with margin ≥ 0, and exactly 0 after a deficit."
)
INV_CREDIT_BACKED = _declare(
    "INV-CREDIT-BACKED", "One-sided: the vault holds at least the fund's credit in tokens."
)
INV_TOKENS = _declare(
    "INV-TOKENS", "Wallets, the vault's balance and the tokens in wallets, vault and fund add up."
)


class InvariantViolation(AssertionError):
    """A failed comparison; ``inv`` is the invariant ID of docs/invariants.md."""

    def __init__(self, inv: str, detail: str) -> None:
        super().__init__(f"{inv}: {detail}")
        self.inv = inv


def fail(inv: str, detail: str) -> None:
    """Raises :class:`InvariantViolation` for ``inv``."""
    raise InvariantViolation(inv, detail)


def expect(ok: bool, inv: str, detail: Callable[[], str]) -> None:
    """Raises :class:`InvariantViolation` for ``inv`` unless ``ok`` (``detail`` is only built then)."""
    if not ok:
        raise InvariantViolation(inv, detail())
