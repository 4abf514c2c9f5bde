"""Raw JSON-RPC driver for the benchmarks: deterministic funded accounts, locally signed
transactions, batched sends, snapshots, traces, and a deployed suite with helpers.

Ape deploys the contracts (``backstop.chain.deploy.deploy_suite``); everything after that goes through
plain JSON-RPC with transactions signed in Python: roughly three times the throughput of sending
through Ape, which matters when a benchmark needs thousands of funded traders.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.logs import DISCARD

from backstop.chain.abi import compiled_manifest_path
from backstop.chain.tx import dynamic_fee_fields, fee_caps
from backstop.orders import FAR_EXPIRY, Order, order_digest, sign_order, to_tuple
from backstop.units import WAD

ROOT = Path(__file__).resolve().parent.parent
GAS_LIMIT = 10_000_000  # per transaction; gasUsed does not depend on it
ETH_BALANCE = 10**22  # wei given to every bench account with anvil_setBalance


class TxFailed(RuntimeError):
    """A benchmark transaction reverted (the benchmark set-up is wrong, not the contracts)."""


def load_abis() -> dict[str, list[dict[str, Any]]]:
    """Contract name → ABI, from Ape's compiled artifact."""
    data = json.loads(compiled_manifest_path().read_text())
    return {name: ct.get("abi", []) for name, ct in data["contractTypes"].items()}


@dataclass(frozen=True)
class Actor:
    """A locally held key. ``label`` only documents what the account is for."""

    key: bytes
    address: str
    label: str = ""


def make_actor(label: str) -> Actor:
    """A deterministic account: ``keccak(b"bench" + label)``."""
    key = keccak(b"bench" + label.encode())
    return Actor(key, Account.from_key(key).address, label)


class Chain:
    """A JSON-RPC client with a local nonce cache (cleared on every snapshot revert)."""

    def __init__(self, uri: str):
        self.uri = uri
        self.session = requests.Session()
        self.w3 = Web3(HTTPProvider(uri, request_kwargs={"timeout": 300}), middleware=[])
        self.chain_id = self.w3.eth.chain_id
        self._nonces: dict[str, int] = {}
        self._ids = itertools.count(1)
        self.abis = load_abis()
        self.sent = 0
        # The tooling's one fee policy over the base fee at connection (the bench node runs at 0).
        self.fees = fee_caps(self.w3.eth.get_block("latest").get("baseFeePerGas") or 0)

    # --- raw JSON-RPC ------------------------------------------------------------------------------

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []}
        reply = self.session.post(self.uri, json=body, timeout=300).json()
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Many JSON-RPC calls in one HTTP request; results in call order; raises on any error."""
        if not calls:
            return []
        body = [
            {"jsonrpc": "2.0", "id": i, "method": method, "params": params}
            for i, (method, params) in enumerate(calls)
        ]
        replies = sorted(self.session.post(self.uri, json=body, timeout=600).json(), key=lambda r: r["id"])
        errors = [(calls[r["id"]][0], r["error"]) for r in replies if "error" in r]
        if errors:
            raise RuntimeError(f"batch: {len(errors)} errors, first: {errors[0]}")
        return [r["result"] for r in replies]

    def snapshot(self) -> str:
        return self.rpc("evm_snapshot")

    def revert(self, snapshot_id: str) -> None:
        assert self.rpc("evm_revert", [snapshot_id]) is True, "evm_revert failed"
        self._nonces.clear()

    def head(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def quiesce(self, quiet_s: float = 1.0, limit_s: float = 60.0) -> None:
        """Waits until no block has been mined for ``quiet_s`` (anvil may still be mining blocks
        queued by a burst of batched transactions), so that timings start on an idle node."""
        started = time.monotonic()
        head, since = self.head(), time.monotonic()
        while time.monotonic() - since < quiet_s and time.monotonic() - started < limit_s:
            time.sleep(0.1)
            now = self.head()
            if now != head:
                head, since = now, time.monotonic()

    def timestamp(self) -> int:
        return int(self.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    # --- accounts ----------------------------------------------------------------------------------

    def fund(self, actors: Iterable[Actor]) -> None:
        """Gives every actor ETH for gas (``anvil_setBalance``), in batches of 500."""
        calls = [("anvil_setBalance", [a.address, hex(ETH_BALANCE)]) for a in actors]
        for i in range(0, len(calls), 500):
            self.batch(calls[i : i + 500])

    def _nonce(self, address: str) -> int:
        if address not in self._nonces:
            self._nonces[address] = int(self.rpc("eth_getTransactionCount", [address, "pending"]), 16)
        return self._nonces[address]

    def sign(self, actor: Actor, to: str, data: bytes | str, gas: int = GAS_LIMIT) -> str:
        """A signed EIP-1559 transaction (hex), with the next local nonce of ``actor``."""
        nonce = self._nonce(actor.address)
        tx = {
            "to": to,
            "data": HexBytes(data),
            "value": 0,
            "gas": gas,
            **dynamic_fee_fields(self.chain_id, nonce, self.fees),
        }
        raw = Account.sign_transaction(tx, actor.key).raw_transaction
        self._nonces[actor.address] = nonce + 1
        return "0x" + bytes(raw).hex()

    def send(self, actor: Actor, to: str, data: bytes | str, *, what: str = "") -> dict[str, Any]:
        """Sends one transaction and returns its receipt (automine: mined on return)."""
        tx_hash = self.rpc("eth_sendRawTransaction", [self.sign(actor, to, data)])
        self.sent += 1
        receipt = self.receipt(tx_hash)
        if int(receipt["status"], 16) != 1:
            raise TxFailed(
                f"{what or 'transaction'} from {actor.label} reverted: {self.why(actor, to, data)}"
            )
        return receipt

    def send_many(
        self, txs: Sequence[tuple[Actor, str, bytes | str]], *, chunk: int = 250, what: str = ""
    ) -> None:
        """Sends many transactions in batched HTTP requests and checks every receipt.

        anvil handles a batch concurrently, so a batch holds at most one transaction per sender:
        ``txs`` is split into waves (the k-th transaction of every sender goes in wave k), which
        keeps each sender's order and never leaves a nonce gap inside a batch. Across senders
        nothing is ordered: put dependent transactions of different senders in separate calls."""
        waves: list[list[tuple[Actor, str, bytes | str]]] = []
        count: dict[str, int] = {}
        for tx in txs:
            k = count.get(tx[0].address, 0)
            count[tx[0].address] = k + 1
            if k == len(waves):
                waves.append([])
            waves[k].append(tx)
        for wave in waves:
            for i in range(0, len(wave), chunk):
                self._send_batch(wave[i : i + chunk], what)

    def _send_batch(self, part: Sequence[tuple[Actor, str, bytes | str]], what: str) -> None:
        raws = [self.sign(a, to, data) for a, to, data in part]
        hashes = self.batch([("eth_sendRawTransaction", [r]) for r in raws])
        self.sent += len(hashes)
        receipts = self.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        started = time.monotonic()
        last_mine = started
        while any(r is None for r in receipts):
            # The batch is handled concurrently: some transactions may still be mining, and one
            # that arrived while a block was being mined can stay pending until the next
            # transaction comes; after two seconds, mine a block to flush the pool.
            now = time.monotonic()
            if now - started > 120:
                raise TxFailed(f"{what}: no receipt after 120 s for {receipts.count(None)} transactions")
            if now - last_mine > 2.0:
                self.rpc("evm_mine")
                last_mine = now
            time.sleep(0.02)
            missing = [i for i, r in enumerate(receipts) if r is None]
            got = self.batch([("eth_getTransactionReceipt", [hashes[i]]) for i in missing])
            for i, r in zip(missing, got, strict=True):
                receipts[i] = r
        for (actor, to, data), receipt in zip(part, receipts, strict=True):
            if int(receipt["status"], 16) != 1:
                raise TxFailed(
                    f"{what}: a transaction of {actor.label} reverted: {self.why(actor, to, data)}"
                )

    def receipt(self, tx_hash: str) -> dict[str, Any]:
        """Waits for the receipt (mining a block to flush the pool if it takes over 2 s)."""
        started = last_mine = time.monotonic()
        while (receipt := self.rpc("eth_getTransactionReceipt", [tx_hash])) is None:
            now = time.monotonic()
            if now - started > 120:
                raise TxFailed(f"no receipt for {tx_hash} after 120 s")
            if now - last_mine > 2.0:
                self.rpc("evm_mine")
                last_mine = now
            time.sleep(0.005)
        return receipt

    def why(self, actor: Actor, to: str, data: bytes | str) -> str:
        """The revert of a call, replayed with ``eth_call`` at the head (best effort)."""
        body = {"from": actor.address, "to": to, "data": HexBytes(data).to_0x_hex()}
        try:
            self.rpc("eth_call", [body, "latest"])
        except RuntimeError as err:
            return str(err)
        return "no revert when replayed"

    def call(self, to: str, data: bytes | str, block: str = "latest") -> bytes:
        return bytes(HexBytes(self.rpc("eth_call", [{"to": to, "data": HexBytes(data).to_0x_hex()}, block])))

    def contract(self, name: str, address: str):
        return self.w3.eth.contract(address=to_checksum_address(address), abi=self.abis[name])

    # --- traces ------------------------------------------------------------------------------------

    def call_trace(self, tx_hash: str) -> dict[str, Any]:
        return self.rpc("debug_traceTransaction", [tx_hash, {"tracer": "callTracer"}])

    def struct_logs(self, tx_hash: str, *, stack: bool = False) -> list[dict[str, Any]]:
        opts = {"disableStorage": True, "disableMemory": True, "disableStack": not stack}
        return self.rpc("debug_traceTransaction", [tx_hash, opts]).get("structLogs", [])


def gas_used(receipt: dict[str, Any]) -> int:
    return int(receipt["gasUsed"], 16)


# --- a deployed suite --------------------------------------------------------------------------------


@dataclass
class Suite:
    """A deployed suite addressed through raw JSON-RPC. ``markets``: name → (id, feed contract,
    feed decimals)."""

    chain: Chain
    token: Any
    vault: Any
    fund: Any
    engine: Any
    oracle: Any
    decimals: int
    markets: dict[str, tuple[int, Any, int]]
    engine_block: int
    nonces: dict[str, int] = field(default_factory=dict)
    recent_orders: list[bytes] = field(default_factory=list)  # digests of the last orders signed

    @classmethod
    def from_deployment(cls, chain: Chain, deployment, decimals: int) -> Suite:
        markets = {}
        for name, ape_feed in deployment.feeds.items():
            feed = chain.contract("MockAggregator", ape_feed.address)
            markets[name] = (deployment.market_ids[name], feed, feed.functions.decimals().call())
        return cls(
            chain=chain,
            token=chain.contract("MockERC20", deployment.token.address),
            vault=chain.contract("CollateralVault", deployment.vault.address),
            fund=chain.contract("InsuranceFund", deployment.fund.address),
            engine=chain.contract("MarginEngine", deployment.engine.address),
            oracle=chain.contract("OracleAdapter", deployment.oracle.address),
            decimals=decimals,
            markets=markets,
            engine_block=deployment.blocks.get("MarginEngine", 0),
        )

    # --- encoding ----------------------------------------------------------------------------------

    @staticmethod
    def data(contract, fn: str, *args) -> str:
        return contract.encode_abi(fn, args=list(args))

    def tokens(self, whole: int | float) -> int:
        return int(whole * 10**self.decimals)

    def market_id(self, market: str) -> int:
        return self.markets[market][0]

    # --- money -------------------------------------------------------------------------------------

    def deposit_txs(self, actor: Actor, tokens: int, *, mint_extra: int = 0) -> list[tuple[Actor, str, str]]:
        """mint (to itself, with ``mint_extra`` left over), infinite approval, deposit."""
        return [
            (actor, self.token.address, self.data(self.token, "mint", actor.address, tokens + mint_extra)),
            (actor, self.token.address, self.data(self.token, "approve", self.vault.address, 2**256 - 1)),
            (actor, self.vault.address, self.data(self.vault, "deposit", tokens)),
        ]

    def deposit(self, actor: Actor, tokens: int) -> dict[str, Any]:
        """Mints, approves and deposits; returns the deposit's receipt."""
        *prep, dep = self.deposit_txs(actor, tokens)
        for tx in prep:
            self.chain.send(*tx, what="mint/approve")
        return self.chain.send(*dep, what="deposit")

    def stake(self, actor: Actor, tokens: int) -> dict[str, Any]:
        self.chain.send(
            actor, self.token.address, self.data(self.token, "mint", actor.address, tokens), what="mint"
        )
        self.chain.send(
            actor,
            self.token.address,
            self.data(self.token, "approve", self.fund.address, 2**256 - 1),
            what="approve",
        )
        return self.chain.send(
            actor, self.fund.address, self.data(self.fund, "deposit", tokens, actor.address), what="stake"
        )

    def withdraw(self, actor: Actor, tokens: int) -> dict[str, Any]:
        return self.chain.send(
            actor, self.vault.address, self.data(self.vault, "withdraw", tokens), what="withdraw"
        )

    # --- prices ------------------------------------------------------------------------------------

    def price_tx(self, operator: Actor, market: str, price_wad: int) -> tuple[Actor, str, str]:
        _mid, feed, feed_decimals = self.markets[market]
        answer = price_wad * 10**feed_decimals // WAD
        assert answer * WAD == price_wad * 10**feed_decimals, "price not representable by the feed"
        return (operator, feed.address, self.data(feed, "setAnswer", answer))

    def set_price(self, operator: Actor, market: str, price_wad: int) -> None:
        self.chain.send(*self.price_tx(operator, market, price_wad), what=f"setAnswer {market}")

    # --- orders and trades -------------------------------------------------------------------------

    def order(self, actor: Actor, market: str, is_buy: bool, size: int, price: int) -> tuple[tuple, bytes]:
        nonce = self.nonces.get(actor.address, 0)
        self.nonces[actor.address] = nonce + 1
        order = Order(actor.address, self.market_id(market), is_buy, size, price, nonce, FAR_EXPIRY)
        self.recent_orders = [
            *self.recent_orders[-1:],
            order_digest(order, self.chain.chain_id, self.engine.address),
        ]
        return to_tuple(order), sign_order(order, actor.key, self.chain.chain_id, self.engine.address)

    def match_data(self, maker: tuple[tuple, bytes], taker: tuple[tuple, bytes], fill: int) -> str:
        return self.data(self.engine, "matchOrders", maker[0], maker[1], taker[0], taker[1], fill)

    def trade_data(
        self, buyer: Actor, seller: Actor, market: str, size: int, price: int, maker: str = "seller"
    ) -> str:
        buy = self.order(buyer, market, True, size, price)
        sell = self.order(seller, market, False, size, price)
        return self.match_data(sell, buy, size) if maker == "seller" else self.match_data(buy, sell, size)

    def trade(
        self,
        relayer: Actor,
        buyer: Actor,
        seller: Actor,
        market: str,
        size: int,
        price: int,
        maker: str = "seller",
    ) -> dict[str, Any]:
        """Both sides sign; the relayer submits the match (maker: the seller by default)."""
        data = self.trade_data(buyer, seller, market, size, price, maker)
        return self.chain.send(relayer, self.engine.address, data, what=f"trade {market}")

    def fill(
        self, maker: Actor, taker: Actor, market: str, size: int, price: int, *, maker_buys: bool = False
    ) -> dict[str, Any]:
        """The maker signs (a sell by default); the taker sends ``fillOrder`` itself."""
        order = self.order(maker, market, maker_buys, size, price)
        data = self.data(self.engine, "fillOrder", order[0], order[1], size)
        return self.chain.send(taker, self.engine.address, data, what=f"fillOrder {market}")

    # --- engine ------------------------------------------------------------------------------------

    def liquidate(self, liquidator: Actor, account: Actor) -> dict[str, Any]:
        return self.chain.send(
            liquidator,
            self.engine.address,
            self.data(self.engine, "liquidate", account.address),
            what="liquidate",
        )

    def liquidate_many(self, liquidator: Actor, accounts: list[Actor]) -> dict[str, Any]:
        return self.chain.send(
            liquidator,
            self.engine.address,
            self.data(self.engine, "liquidateMany", [a.address for a in accounts]),
            what="liquidateMany",
        )

    def liquidate_position(self, liquidator: Actor, account: Actor, market: str, size: int) -> dict[str, Any]:
        return self.chain.send(
            liquidator,
            self.engine.address,
            self.data(self.engine, "liquidatePosition", account.address, self.markets[market][0], size),
            what="liquidatePosition",
        )

    def settle(self, sender: Actor, account: Actor) -> dict[str, Any]:
        return self.chain.send(
            sender, self.engine.address, self.data(self.engine, "settle", account.address), what="settle"
        )

    def events(self, receipt: dict[str, Any], name: str, contract=None) -> list[Any]:
        contract = contract or self.engine
        normalized = {
            **receipt,
            "logs": [
                {
                    **log,
                    "topics": [HexBytes(t) for t in log["topics"]],
                    "data": HexBytes(log["data"]),
                    "logIndex": int(log["logIndex"], 16),
                    "transactionIndex": int(log["transactionIndex"], 16),
                    "blockNumber": int(log["blockNumber"], 16),
                    "address": to_checksum_address(log["address"]),
                }
                for log in receipt["logs"]
            ],
        }
        return list(getattr(contract.events, name)().process_receipt(normalized, errors=DISCARD))

    def view(self, contract, fn: str, *args):
        return getattr(contract.functions, fn)(*args).call()
