"""Web3 handles on a suite deployed by ``ape run deploy``, opened from its manifest, with the
views a populate run plans from, and the one send path: a dry run (``eth_estimateGas``), then the
signed transaction and its receipt."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web3.exceptions import ContractLogicError

from backstop.chain.abi import error_name, error_names
from backstop.chain.manifest import code_problems
from backstop.chain.populate_inputs import PopulateError, PopulateFailed
from backstop.chain.tx import dynamic_fee_fields, fee_caps, gas_limit
from backstop.units import mul_wad_floor, mul_wad_up

#: The contracts whose ABIs a suite needs (``abis`` argument).
CONTRACTS = ("MarginEngine", "CollateralVault", "MockERC20", "OracleAdapter", "MockAggregator")


@dataclass
class Market:
    """A listed market as read from chain."""

    name: str
    id: int
    feed: Any  # web3 contract (MockAggregator ABI: the Chainlink views are the same)
    decimals: int
    heartbeat: int
    im_ratio: int
    mm_ratio: int
    maker_fee: int
    taker_fee: int
    oi_cap: int
    answer: int
    updated_at: int

    @property
    def price(self) -> int:
        """The answer in WAD, as the oracle adapter normalizes it."""
        if self.decimals <= 18:
            return self.answer * 10 ** (18 - self.decimals)
        return self.answer // 10 ** (self.decimals - 18)


@dataclass
class Suite:
    """Web3 handles on a deployed suite and its markets."""

    w3: Any
    chain_id: int
    engine: Any
    vault: Any
    token: Any
    oracle: Any
    scale: int
    decimals: int
    markets: dict[str, Market]
    errors: dict[bytes, str]

    def market_of(self, market_id: int) -> Market:
        return next(m for m in self.markets.values() if m.id == market_id)


def abis_of(project: Any) -> dict[str, list[dict[str, Any]]]:
    """The ABIs of :data:`CONTRACTS` from an Ape project (compiling it if needed)."""
    return {
        name: [
            item.model_dump(mode="json", by_alias=True, exclude_none=True)
            for item in getattr(project, name).contract_type.abi
        ]
        for name in CONTRACTS
    }


def open_suite(w3: Any, path: Path, abis: dict[str, list[dict[str, Any]]]) -> Suite:
    """The suite a deploy manifest describes, on the chain ``w3`` is connected to. Raises
    :class:`PopulateError` for a missing or unreadable manifest, one written for another chain,
    or contracts without code (a restarted chain)."""
    if not path.exists():
        raise PopulateError(f"{path}: no deploy manifest; run `ape run deploy` first (or give --manifest)")
    try:
        manifest = json.loads(path.read_text())
        contracts = {name: manifest["contracts"][name]["address"] for name in _ROLES}
        markets = {name: int(entry["id"]) for name, entry in manifest["markets"].items()}
        chain_id = int(manifest["chain_id"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise PopulateError(f"{path}: not a deploy manifest ({err!r})") from None
    connected = w3.eth.chain_id
    if chain_id != connected:
        raise PopulateError(f"{path} describes chain {chain_id}, but the node is chain {connected}")
    missing, changed = code_problems(manifest, w3.eth.get_code, connected)
    if missing:
        raise PopulateError(f"{path}: {missing[0]} (a restarted chain?); run `ape run deploy` again")
    if changed:
        raise PopulateError(f"{path}: {changed[0]}: the manifest does not describe this chain's suite")

    def at(address: str, abi: str) -> Any:
        return w3.eth.contract(address=address, abi=abis[abi])

    engine = at(contracts["MarginEngine"], "MarginEngine")
    vault = at(contracts["CollateralVault"], "CollateralVault")
    token = at(contracts["CollateralToken"], "MockERC20")
    oracle = at(contracts["OracleAdapter"], "OracleAdapter")
    suite = Suite(
        w3, connected, engine, vault, token, oracle, vault.functions.SCALE().call(),
        token.functions.decimals().call(), {}, error_names(abis.values(), standard=True),
    )  # fmt: skip
    for name, market_id in markets.items():
        params = engine.functions.marketParams(market_id).call()
        feed_address, heartbeat, decimals = oracle.functions.feedOf(market_id).call()
        feed = at(feed_address, "MockAggregator")
        _, answer, _, updated_at, _ = feed.functions.latestRoundData().call()
        suite.markets[name] = Market(
            name, market_id, feed, decimals, heartbeat, params[2], params[3], params[7], params[8],
            params[9], answer, updated_at,
        )  # fmt: skip
    return suite


_ROLES = ("CollateralToken", "OracleAdapter", "CollateralVault", "InsuranceFund", "MarginEngine")


def health(suite: Suite, address: str, extra: int = 0) -> tuple[int, int, dict[int, tuple[int, int]]]:
    """``(E, IMR, positions)`` of an account at the feeds' answers (docs/margin-math.md), with
    ``extra`` WAD more margin; computed from the raw views, so a stale price does not stop it."""
    e = suite.vault.functions.marginOf(address).call() + extra
    e -= suite.engine.functions.pendingLossOf(address).call()
    imr, positions = 0, {}
    for market_id in suite.engine.functions.marketsOf(address).call():
        size, open_notional = suite.engine.functions.positionOf(address, market_id).call()
        m = suite.market_of(market_id)
        e += mul_wad_floor(size, m.price) - open_notional
        imr += mul_wad_up(mul_wad_up(abs(size), m.price), m.im_ratio)
        positions[market_id] = (size, open_notional)
    return e, imr, positions


def send(suite: Suite, fn: Any, sender: Any, what: str) -> Any:
    """A dry run (``eth_estimateGas``), then the signed transaction and its receipt."""
    w3 = suite.w3
    call = {"from": sender.address, "to": fn.address, "data": fn._encode_transaction_data(), "value": 0}
    try:
        gas = w3.eth.estimate_gas(call)
    except ContractLogicError as err:
        raise PopulateFailed(
            f"{what}: would revert with {_decode(err.data, suite.errors)}; not sent"
        ) from None
    fees = fee_caps(w3.eth.get_block("latest").get("baseFeePerGas") or 0)
    nonce = w3.eth.get_transaction_count(sender.address, "pending")
    tx = {**call, "gas": gas_limit(gas), **dynamic_fee_fields(suite.chain_id, nonce, fees)}
    tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.01)
    if receipt["status"] != 1:
        raise PopulateFailed(f"{what}: reverted when mined (tx {tx_hash.hex()})")
    return receipt


def _decode(data: Any, names: dict[bytes, str]) -> str:
    raw = bytes.fromhex(data[2:]) if isinstance(data, str) and data.startswith("0x") else bytes(data or b"")
    return error_name(raw, names)
