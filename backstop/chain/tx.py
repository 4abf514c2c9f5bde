"""The one transaction-pricing policy of the tooling (the keeper, the stress runner's chain backend):
EIP-1559 fee caps and the gas limit over an estimate."""

from __future__ import annotations

GWEI = 10**9
#: The priority fee (tip) when the node suggests none.
DEFAULT_PRIORITY_FEE = 1 * GWEI
#: Gas limit headroom over ``eth_estimateGas``, in percent.
DEFAULT_GAS_MARGIN_PCT = 30


def fee_caps(base_fee: int, priority_fee: int = DEFAULT_PRIORITY_FEE) -> tuple[int, int]:
    """``(maxFeePerGas, maxPriorityFeePerGas)``: the tip over twice the base fee, so a transaction
    stays includable while the base fee doubles."""
    return 2 * base_fee + priority_fee, priority_fee


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
