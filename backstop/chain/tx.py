"""The one transaction-pricing policy of the tooling (the keeper, the stress runner's chain backend):
EIP-1559 fee caps (under an optional operator cap), the bump that re-prices a stuck transaction,
and the gas limit over an estimate."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

GWEI = 10**9
#: The priority fee (tip) when the node suggests none.
DEFAULT_PRIORITY_FEE = 1 * GWEI
#: Gas limit headroom over ``eth_estimateGas``, in percent.
DEFAULT_GAS_MARGIN_PCT = 30
#: The raise of both fees when a stuck transaction is re-signed, in percent.
DEFAULT_FEE_BUMP_PCT = 12
#: The smallest raise geth and anvil-like pools take for a replacement (same sender and nonce);
#: below it they answer "replacement transaction underpriced".
MIN_FEE_BUMP_PCT = 10
#: Seconds without a receipt before a transaction is re-priced.
DEFAULT_REPRICE_AFTER = 12.0


@dataclass(frozen=True)
class FeePolicy:
    """The operator's fee settings: ``max_fee`` (wei, the cap on ``maxFeePerGas``; None for
    none), ``priority_fee`` (wei, the tip; None: the node's suggestion), and re-pricing: after
    ``reprice_after`` seconds unmined (None: never) both fees are raised by ``fee_bump_pct``
    percent. Raises ``ValueError`` naming the bad setting."""

    max_fee: int | None = None
    priority_fee: int | None = None
    fee_bump_pct: int = DEFAULT_FEE_BUMP_PCT
    reprice_after: float | None = DEFAULT_REPRICE_AFTER

    def __post_init__(self) -> None:
        if self.max_fee is not None and self.max_fee <= 0:
            raise ValueError(f"max_fee must be > 0 wei, not {self.max_fee}")
        if self.priority_fee is not None and self.priority_fee < 0:
            raise ValueError(f"priority_fee must be ≥ 0 wei, not {self.priority_fee}")
        if self.fee_bump_pct < MIN_FEE_BUMP_PCT:
            raise ValueError(
                f"fee_bump_pct must be ≥ {MIN_FEE_BUMP_PCT} (nodes refuse a smaller raise of a "
                f"replacement), not {self.fee_bump_pct}"
            )
        if self.reprice_after is not None and self.reprice_after <= 0:
            raise ValueError(f"reprice_after must be > 0 s, not {self.reprice_after}")


def fee_caps(
    base_fee: int, priority_fee: int = DEFAULT_PRIORITY_FEE, max_fee: int | None = None
) -> tuple[int, int]:
    """``(maxFeePerGas, maxPriorityFeePerGas)``: the tip over twice the base fee, so a transaction
    stays includable while the base fee doubles; at most ``max_fee`` (the operator's cap), and the
    tip never above the max fee. Whether the base fee itself is over the cap is the caller's
    check (:func:`over_cap`)."""
    fee = 2 * base_fee + priority_fee
    if max_fee is not None:
        fee = min(fee, max_fee)
    return fee, min(priority_fee, fee)


def over_cap(base_fee: int, max_fee: int | None) -> bool:
    """Whether a transaction capped at ``max_fee`` cannot be included at ``base_fee``."""
    return max_fee is not None and base_fee > max_fee


def bump_fees(
    fees: tuple[int, int], pct: int = DEFAULT_FEE_BUMP_PCT, max_fee: int | None = None
) -> tuple[int, int] | None:
    """Both fees raised by ``pct`` percent (rounded down, and by at least 1 wei), the max fee at
    most ``max_fee`` and the tip at most the max fee; None when the cap leaves either fee short of
    what geth's pool takes as a replacement: strictly above the old fee and at least
    ``⌊old·(100 + MIN_FEE_BUMP_PCT)/100⌋``."""

    def raised(old: int) -> int:
        return max(old * (100 + pct) // 100, old + 1)

    old_fee, old_tip = fees
    fee = raised(old_fee) if max_fee is None else min(raised(old_fee), max_fee)
    tip = min(raised(old_tip), fee)
    for new, old in ((fee, old_fee), (tip, old_tip)):
        if new <= old or new < old * (100 + MIN_FEE_BUMP_PCT) // 100:
            return None
    return fee, tip


def gwei(wei: int) -> str:
    """``wei`` in gwei, exactly, without trailing zeros: ``gwei(3_500_000_000) == "3.5"``."""
    value = Decimal(wei) / GWEI
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def wei_of_gwei(text: str | float | int) -> int:
    """An operator's gwei amount (``--max-fee-gwei 3.5``) in wei: ``3_500_000_000``. Raises
    ``ValueError`` for a negative, non-numeric or sub-wei amount."""
    try:
        value = Decimal(str(text).strip()) * GWEI
    except InvalidOperation:
        raise ValueError(f"not a gwei amount: {text!r}") from None
    if not value.is_finite() or value < 0 or value != value.to_integral_value():
        raise ValueError(f"not a gwei amount of whole wei ≥ 0: {text!r}")
    return int(value)


def gas_limit(estimate: int, margin_pct: int = DEFAULT_GAS_MARGIN_PCT, headroom: int = 0) -> int:
    """``estimate`` plus ``margin_pct`` percent (rounded down) plus ``headroom`` gas."""
    return estimate * (100 + margin_pct) // 100 + headroom


def dynamic_fee_fields(chain_id: int, nonce: int, fees: tuple[int, int]) -> dict[str, int]:
    """The fields of a type-2 (EIP-1559) transaction besides ``to``, ``data``, ``gas`` and ``value``."""
    max_fee, priority = fees
    return {
        "chainId": chain_id,
        "nonce": nonce,
        "type": 2,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": priority,
    }
