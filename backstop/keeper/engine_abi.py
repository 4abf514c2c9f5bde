"""The keeper's view of the engine's ABI: what it calls (``healthOf``, ``liquidateMany``,
``liquidatePosition``, the position and market views), the events it reads (``PositionChanged``,
``Liquidated``, ``PositionLiquidated``, ``LiquidationSkipped``) and the names of the errors it may
see. Built from ABI
data, pure: loading the compiled artifact is :func:`load_engine_abis`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak

from backstop.chain.abi import abi_item, canonical, compiled_manifest_path, error_names, signature
from backstop.decisions import AccountHealth
from backstop.keeper.state import KeeperConfigError

ABI = Sequence[dict[str, Any]]


def load_engine_abis(root: Path | None = None) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """``(MarginEngine ABI, every contract's ABI)`` from the compiled artifact (``ape compile``)."""
    path = compiled_manifest_path(root)
    try:
        artifact = json.loads(path.read_text())
    except OSError as err:
        raise KeeperConfigError(f"{path}: no compiled artifact (run `ape compile`) ({err})") from err
    try:
        engine = artifact["contractTypes"]["MarginEngine"]["abi"]
    except KeyError as err:
        raise KeeperConfigError("the artifact has no MarginEngine ABI (run `ape compile`)") from err
    return engine, [ct.get("abi", []) for ct in artifact["contractTypes"].values()]


def load_engine_abi(root: Path | None = None) -> list[dict[str, Any]]:
    """``contractTypes.MarginEngine.abi`` of the compiled artifact."""
    return load_engine_abis(root)[0]


def _item(abi: ABI, kind: str, name: str) -> dict[str, Any]:
    item = abi_item(abi, kind, name)
    if item is None:
        raise KeeperConfigError(f"the engine ABI has no {kind} {name}")
    return item


@dataclass(frozen=True)
class EngineAbi:
    """Selectors, topics, codecs and error names of the engine calls the keeper makes."""

    health_selector: bytes
    health_output: tuple[str, ...]
    health_fields: tuple[str, ...]
    liquidate_selector: bytes
    topic_position: bytes
    topic_liquidated: bytes
    errors: dict[bytes, str]
    liquidate_many_selector: bytes
    liquidate_position_selector: bytes
    markets_of_selector: bytes
    position_of_selector: bytes
    market_params_selector: bytes
    market_params_output: tuple[str, ...]
    market_params_fields: tuple[str, ...]
    market_count_selector: bytes
    oracle_selector: bytes
    topic_position_liquidated: bytes
    topic_skipped: bytes

    @classmethod
    def from_abi(cls, abi: ABI, other_abis: Sequence[ABI] = ()) -> EngineAbi:
        """From the engine's ABI; errors bubbling up from ``other_abis`` (the vault, the fund, the
        oracle adapter) get names too."""
        health_fn = _item(abi, "function", "healthOf")
        liquidate_fn = _item(abi, "function", "liquidate")
        params_fn = _item(abi, "function", "marketParams")

        def selector(name: str) -> bytes:
            return keccak(text=signature(_item(abi, "function", name)))[:4]

        def topic(name: str) -> bytes:
            return keccak(text=signature(_item(abi, "event", name)))

        return cls(
            health_selector=keccak(text=signature(health_fn))[:4],
            health_output=tuple(canonical(o) for o in health_fn["outputs"]),
            health_fields=tuple(c["name"] for c in health_fn["outputs"][0]["components"]),
            liquidate_selector=keccak(text=signature(liquidate_fn))[:4],
            topic_position=keccak(text=signature(_item(abi, "event", "PositionChanged"))),
            topic_liquidated=keccak(text=signature(_item(abi, "event", "Liquidated"))),
            errors=error_names([abi, *other_abis]),
            liquidate_many_selector=selector("liquidateMany"),
            liquidate_position_selector=selector("liquidatePosition"),
            markets_of_selector=selector("marketsOf"),
            position_of_selector=selector("positionOf"),
            market_params_selector=selector("marketParams"),
            market_params_output=tuple(canonical(o) for o in params_fn["outputs"]),
            market_params_fields=tuple(c["name"] for c in params_fn["outputs"][0]["components"]),
            market_count_selector=selector("marketCount"),
            oracle_selector=selector("ORACLE"),
            topic_position_liquidated=topic("PositionLiquidated"),
            topic_skipped=topic("LiquidationSkipped"),
        )

    def health_call(self, batch: Sequence[str]) -> bytes:
        """Calldata of ``healthOf(batch)``."""
        return self.health_selector + abi_encode(["address[]"], [list(batch)])

    def decode_health(self, batch: Sequence[str], raw: bytes) -> list[AccountHealth]:
        """The ``healthOf(batch)`` answer as one :class:`AccountHealth` per account."""
        (rows,) = abi_decode(list(self.health_output), raw)
        out = []
        for account, row in zip(batch, rows, strict=True):
            values = dict(zip(self.health_fields, row, strict=True))
            out.append(
                AccountHealth(
                    account=account,
                    margin=values["margin"],
                    pending_loss=values["pendingLoss"],
                    equity=values["equity"],
                    initial_margin=values["initialMargin"],
                    maintenance_margin=values["maintenanceMargin"],
                    has_positions=values["hasPositions"],
                )
            )
        return out

    def liquidate_call(self, account: str) -> bytes:
        """Calldata of ``liquidate(account)``."""
        return self.liquidate_selector + abi_encode(["address"], [account])

    def liquidate_many_call(self, accounts: Sequence[str]) -> bytes:
        """Calldata of ``liquidateMany(accounts)``."""
        return self.liquidate_many_selector + abi_encode(["address[]"], [list(accounts)])

    def liquidate_position_call(self, account: str, market_id: int, size: int) -> bytes:
        """Calldata of ``liquidatePosition(account, marketId, size)``."""
        return self.liquidate_position_selector + abi_encode(
            ["address", "uint256", "uint256"], [account, market_id, size]
        )

    def markets_of_call(self, account: str) -> bytes:
        """Calldata of ``marketsOf(account)``; :func:`decode_uints` reads the answer."""
        return self.markets_of_selector + abi_encode(["address"], [account])

    def position_of_call(self, account: str, market_id: int) -> bytes:
        """Calldata of ``positionOf(account, marketId)``: ``(size, openNotional)``, both signed."""
        return self.position_of_selector + abi_encode(["address", "uint256"], [account, market_id])

    def market_params_call(self, market_id: int) -> bytes:
        """Calldata of ``marketParams(marketId)``."""
        return self.market_params_selector + abi_encode(["uint256"], [market_id])

    def decode_market_params(self, raw: bytes) -> dict[str, Any]:
        """The ``marketParams`` answer as a mapping of its field names."""
        (row,) = abi_decode(list(self.market_params_output), raw)
        return dict(zip(self.market_params_fields, row, strict=True))
