"""The liquidation keeper (DESIGN §4, §11): read, decide, act.

Reading and acting are split (CONVENTIONS 11). ``decide`` is a pure function from a health
snapshot to the ordered list of accounts to liquidate; ``Keeper`` is the thin loop around it:

1. **sync** — extend the account index from the persisted cursor to the head with ``eth_getLogs``
   over block ranges (``PositionChanged`` names every account that ever held a position);
2. **scan** — read every indexed account's health through ``healthOf(address[])``, one call per
   batch, all batches pinned to the same block;
3. **decide** — liquidatable accounts, most negative ``E − MMR`` first, ties by address;
4. **act** — in windows of ``max_in_flight`` accounts: re-check the window's health (one
   ``healthOf`` call), then for each account dry-run ``liquidate`` with ``eth_call``, estimate
   gas, sign with the keeper's own nonce and EIP-1559 fees and send; then await the window's
   receipts, so the next window's dry-runs see every earlier liquidation mined.

A competitor that liquidates first is a *lost race*, counted apart from failures: the re-check
finds the account healthy or flat, the dry-run reverts ``NotLiquidatable``, or the mined
transaction reverts and a ``Liquidated`` event by another liquidator explains why. Transport
failures are retried with backoff (``backstop.chain.rpc``); a transaction whose dry-run failed is never
sent. Every event is one structured log line (``keeper <event> key=value ...``).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import RPCEndpoint

from backstop.chain.rpc import Retrier, RpcUnavailable, rpc_message
from backstop.decisions import AccountHealth, plan_liquidations

GWEI = 10**9
DEFAULT_PRIORITY_FEE = 1 * GWEI
ARTIFACT = Path(".build") / "__local__.json"
COUNTER_NAMES = ("scanned", "liquidatable", "sent", "confirmed", "failed", "lost_races", "lag")

__all__ = [
    "Keeper",
    "KeeperConfigError",
    "KeeperStateError",
    "LocalSigner",
    "PassReport",
    "RpcUnavailable",
    "load_engine_abi",
]


# --- signing -------------------------------------------------------------------------------------


class Signer(Protocol):
    address: str

    def sign_transaction(self, tx: dict) -> bytes: ...


class LocalSigner:
    """Signs transactions with a private key held in memory (an eth-account ``LocalAccount``)."""

    def __init__(self, private_key: str | bytes) -> None:
        self._account = Account.from_key(private_key)
        self.address: str = self._account.address

    def sign_transaction(self, tx: dict) -> bytes:
        """The raw signed transaction, ready for ``eth_sendRawTransaction``."""
        return bytes(self._account.sign_transaction(tx).raw_transaction)

    def __repr__(self) -> str:  # never show the key
        return f"LocalSigner({self.address})"


# --- reports and state -----------------------------------------------------------------------------


@dataclass
class PassReport:
    """What one pass did. ``lag_blocks``: blocks the chain advanced past the pass's snapshot
    block by the time the pass ended."""

    scanned: int = 0
    liquidatable: int = 0
    sent: int = 0
    confirmed: int = 0
    failed: int = 0
    lost_races: int = 0
    lag_blocks: int = 0
    liquidated: list[str] = field(default_factory=list)
    tx_hashes: list[str] = field(default_factory=list)


class KeeperStateError(Exception):
    """The state file cannot be used with this chain and engine."""


class KeeperConfigError(Exception):
    """The keeper cannot be built (missing ABI, engine without the expected functions)."""


class SendError(Exception):
    """The node kept rejecting a transaction after nonce and fee resyncs."""


@dataclass
class KeeperState:
    """The persisted index: every log up to ``cursor_block`` (inclusive) is reflected in
    ``accounts``; ``cursor_hash`` identifies that block, so a restarted local chain that reuses
    the chain id and the engine address is detected."""

    chain_id: int
    engine: str
    cursor_block: int
    accounts: list[str]
    cursor_hash: str | None = None

    @classmethod
    def load(cls, path: Path) -> KeeperState:
        try:
            raw = json.loads(path.read_text())
            return cls(
                chain_id=int(raw["chain_id"]),
                engine=str(raw["engine"]),
                cursor_block=int(raw["cursor_block"]),
                accounts=[str(a) for a in raw["accounts"]],
                cursor_hash=raw.get("cursor_hash"),
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise KeeperStateError(f"{path}: unreadable keeper state ({err})") from err

    def save(self, path: Path) -> None:
        """Atomically (write a temporary file, then rename it over the old one)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "chain_id": self.chain_id,
            "engine": self.engine,
            "cursor_block": self.cursor_block,
            "cursor_hash": self.cursor_hash,
            "accounts": self.accounts,
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(body, f, indent=1)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


# --- ABI -----------------------------------------------------------------------------------------


def repository_root() -> Path:
    """The Ape project root: the parent of the ``backstop`` package."""
    return Path(__file__).resolve().parent.parent


def load_artifact(root: Path | None = None) -> dict[str, Any]:
    path = (root or repository_root()) / ARTIFACT
    try:
        return json.loads(path.read_text())
    except OSError as err:
        raise KeeperConfigError(f"{path}: no compiled artifact (run `ape compile`) ({err})") from err


def load_engine_abi(root: Path | None = None) -> list[dict[str, Any]]:
    """``contractTypes.MarginEngine.abi`` of the compiled artifact."""
    try:
        return load_artifact(root)["contractTypes"]["MarginEngine"]["abi"]
    except KeyError as err:
        raise KeeperConfigError("the artifact has no MarginEngine ABI (run `ape compile`)") from err


def _canonical(param: dict[str, Any]) -> str:
    kind = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_canonical(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def _signature(item: dict[str, Any]) -> str:
    return f"{item['name']}({','.join(_canonical(i) for i in item.get('inputs', []))})"


def _abi_item(abi: Sequence[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for item in abi:
        if item.get("type") == kind and item.get("name") == name:
            return item
    raise KeeperConfigError(f"the engine ABI has no {kind} {name}")


def _error_names(abis: Iterable[Sequence[dict[str, Any]]]) -> dict[bytes, str]:
    out: dict[bytes, str] = {}
    for abi in abis:
        for item in abi:
            if item.get("type") == "error":
                out.setdefault(keccak(text=_signature(item))[:4], item["name"])
    return out


def _topic_address(topic: Any) -> str:
    return to_checksum_address(bytes(HexBytes(topic))[-20:])


# --- the keeper ----------------------------------------------------------------------------------


@dataclass
class _InFlight:
    account: str
    tx_hash: str
    nonce: int
    since_block: int  # the pass's snapshot block: the account was liquidatable there


class Keeper:
    """Follows the engine and liquidates every liquidatable account it indexes.

    ``web3``: a connected ``Web3``; ``signer``: an object with ``address`` and
    ``sign_transaction(dict) -> bytes`` (``LocalSigner``). The engine ABI comes from ``abi`` or
    the compiled artifact. ``start_block``: the first block to index when there is no state file
    (the engine's deployment block). ``state_path``: where the cursor and the account index are
    persisted (``None``: memory only). Extra knobs, all optional: ``log_range`` (blocks per
    ``eth_getLogs``, halved automatically when a node refuses a range), ``reorg_depth`` (the
    persisted cursor stays that many blocks behind the head, and each pass re-reads them, so a
    shallow reorg never hides an account), ``max_in_flight`` (the window: that many accounts are
    re-checked by one ``healthOf`` call, dry-run and sent before their receipts are awaited; 1
    waits for each receipt before the next dry-run), ``receipt_timeout`` (seconds).
    """

    def __init__(
        self,
        web3: Web3,
        engine_address: str,
        signer: Signer,
        *,
        state_path: Path | None = None,
        start_block: int = 0,
        batch_size: int = 500,
        dry_run: bool = False,
        logger: logging.Logger | None = None,
        max_retries: int = 5,
        abi: Sequence[dict[str, Any]] | None = None,
        log_range: int = 2_000,
        reorg_depth: int = 12,
        max_in_flight: int = 8,
        receipt_timeout: float = 120.0,
        gas_margin_pct: int = 30,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if batch_size < 1 or log_range < 1 or max_in_flight < 1 or reorg_depth < 0:
            raise KeeperConfigError("batch_size, log_range and max_in_flight must be ≥ 1, reorg_depth ≥ 0")
        self.web3 = web3
        # The keeper's own client on the same connection, without web3's default middleware: the
        # validation middleware adds an eth_chainId round trip to every eth_call and estimate,
        # which would double the scan's cost and triple the requests a flaky node can fail.
        self._w3 = Web3(web3.provider, middleware=[])
        self.engine_address = to_checksum_address(engine_address)
        self.signer = signer
        self.address = to_checksum_address(signer.address)
        self.state_path = Path(state_path) if state_path is not None else None
        self.start_block = max(start_block, 0)
        self.batch_size = batch_size
        self.dry_run = dry_run
        self.log = logger or logging.getLogger("backstop.keeper")
        self.log_range = log_range
        self.reorg_depth = reorg_depth
        self.max_in_flight = max_in_flight
        self.receipt_timeout = receipt_timeout
        self.gas_margin_pct = gas_margin_pct
        self._clock = clock
        self._sleep = sleep
        self.rpc = Retrier(max_retries=max_retries, logger=self.log, sleep=sleep)

        other_abis: list[Sequence[dict[str, Any]]] = []
        if abi is None:
            artifact = load_artifact()
            try:
                abi = artifact["contractTypes"]["MarginEngine"]["abi"]
            except KeyError as err:
                raise KeeperConfigError("the artifact has no MarginEngine ABI (run `ape compile`)") from err
            # Errors bubbling up from the vault, the fund or the oracle adapter get names too.
            other_abis = [ct.get("abi", []) for ct in artifact["contractTypes"].values()]
        self._errors = _error_names([abi, *other_abis])
        health_fn = _abi_item(abi, "function", "healthOf")
        liquidate_fn = _abi_item(abi, "function", "liquidate")
        self._health_selector = keccak(text=_signature(health_fn))[:4]
        self._health_output = [_canonical(o) for o in health_fn["outputs"]]
        self._health_fields = [c["name"] for c in health_fn["outputs"][0]["components"]]
        self._liquidate_selector = keccak(text=_signature(liquidate_fn))[:4]
        self._topic_position = keccak(text=_signature(_abi_item(abi, "event", "PositionChanged")))
        self._topic_liquidated = keccak(text=_signature(_abi_item(abi, "event", "Liquidated")))

        self.chain_id: int = self.rpc.call("eth_chainId", lambda: self._w3.eth.chain_id)
        self._accounts: dict[str, str] = {}  # lower-case → checksum
        self.cursor: int = self.start_block - 1
        self._cursor_hash: str | None = None
        self._load_state()
        self._synced_to = self.cursor
        self._last_persist = 0.0

        self._nonce: int | None = None
        self._fees: tuple[int, int] | None = None  # (maxFeePerGas, maxPriorityFeePerGas)
        self._fees_at = 0.0
        self.counters: dict[str, int] = dict.fromkeys((*COUNTER_NAMES, "passes", "rpc_retries"), 0)
        self._event(
            logging.INFO,
            "start",
            chain_id=self.chain_id,
            engine=self.engine_address,
            keeper=self.address,
            cursor=self.cursor,
            accounts=len(self._accounts),
            dry_run=self.dry_run,
            batch_size=self.batch_size,
        )
        [own] = self._health([self.address], "latest") or [None]
        if own is not None and own.margin <= 0 and not self.dry_run:
            # The liquidator takes the positions over and must end with E ≥ IMR (DESIGN §4).
            self._event(logging.WARNING, "no_margin", keeper=self.address, margin=own.margin)

    # --- logging -----------------------------------------------------------------------------------

    def _event(self, level: int, event: str, **fields: Any) -> None:
        """One structured line: ``keeper <event> k=v k=v`` (values with spaces are quoted)."""
        parts = []
        for key, value in fields.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            if not text or any(c.isspace() for c in text) or '"' in text:
                text = json.dumps(text)
            parts.append(f"{key}={text}")
        self.log.log(
            level,
            "keeper %s %s",
            event,
            " ".join(parts),
            extra={"keeper_event": event, "keeper_fields": fields},
        )

    # --- state -------------------------------------------------------------------------------------

    @property
    def accounts(self) -> list[str]:
        """Every indexed account (checksummed, sorted case-insensitively)."""
        return [self._accounts[k] for k in sorted(self._accounts)]

    def _load_state(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        state = KeeperState.load(self.state_path)
        if state.chain_id != self.chain_id:
            raise KeeperStateError(
                f"{self.state_path} was written for chain {state.chain_id}, this is chain {self.chain_id}; "
                "use another --state file"
            )
        if state.engine.lower() != self.engine_address.lower():
            raise KeeperStateError(
                f"{self.state_path} was written for engine {state.engine}, this engine is "
                f"{self.engine_address}; use another --state file"
            )
        if state.cursor_block >= 0:
            head = self.rpc.call("eth_blockNumber", lambda: self._w3.eth.block_number)
            if state.cursor_block > head:
                raise KeeperStateError(
                    f"{self.state_path}: cursor block {state.cursor_block} is beyond the head {head} "
                    "(a restarted chain?); delete the state file to rebuild the index"
                )
            if state.cursor_hash is not None:
                got = self._block_hash(state.cursor_block)
                if got.lower() != state.cursor_hash.lower():
                    raise KeeperStateError(
                        f"{self.state_path}: block {state.cursor_block} is {got} on this chain, the state "
                        f"file recorded {state.cursor_hash} (a restarted chain?); delete it to rebuild"
                    )
        self.cursor = state.cursor_block
        self._cursor_hash = state.cursor_hash
        for account in state.accounts:
            self._accounts[account.lower()] = to_checksum_address(account)
        self._event(
            logging.INFO, "resume", state=self.state_path, cursor=self.cursor, accounts=len(self._accounts)
        )

    def _block_hash(self, number: int) -> str:
        block = self.rpc.call("eth_getBlockByNumber", lambda: self._w3.eth.get_block(number))
        return HexBytes(block["hash"]).to_0x_hex()

    def _persist(self, head: int, force: bool = False) -> None:
        """Moves the persisted cursor to ``min(synced, head − reorg_depth)`` and saves (at most
        every 2 s while catching up, always when ``force``)."""
        target = max(self.cursor, min(self._synced_to, head - self.reorg_depth))
        if target == self.cursor and not force:
            return
        if self.state_path is None:
            self.cursor = target
            return
        if not force and self._clock() - self._last_persist < 2.0:
            return
        if target != self.cursor or self._cursor_hash is None:
            self._cursor_hash = self._block_hash(target) if target >= 0 else None
            self.cursor = target
        KeeperState(self.chain_id, self.engine_address, self.cursor, self.accounts, self._cursor_hash).save(
            self.state_path
        )
        self._last_persist = self._clock()

    # --- 1. sync -----------------------------------------------------------------------------------

    def sync_accounts(self, head: int | None = None) -> int:
        """Indexes ``PositionChanged`` logs from the cursor to ``head`` (default: the chain head)
        in block ranges; returns the head it synced to."""
        if head is None:
            head = self.rpc.call("eth_blockNumber", lambda: self._w3.eth.block_number)
        start = max(self.cursor + 1, self._synced_to + 1 - self.reorg_depth, 0)
        span = self.log_range
        block = start
        before = len(self._accounts)
        ranges = logs = 0
        while block <= head:
            end = min(block + span - 1, head)
            try:
                entries = self._get_logs(block, end, [self._topic_position])
            except Web3RPCError as err:
                if span > 1 and _is_range_error(err):
                    # Remembered: the next passes start from the span this node accepts.
                    span = self.log_range = max(span // 2, 1)
                    self._event(logging.INFO, "log_range_shrunk", from_block=block, span=span)
                    continue
                raise
            for entry in entries:
                account = _topic_address(entry["topics"][1])
                self._accounts.setdefault(account.lower(), account)
            ranges += 1
            logs += len(entries)
            self._synced_to = end
            block = end + 1
            self._persist(head)
        self._synced_to = max(self._synced_to, head)
        self._persist(head, force=ranges > 0)
        self._event(
            logging.DEBUG if ranges == 0 else logging.INFO,
            "sync",
            from_block=start,
            to_block=head,
            ranges=ranges,
            logs=logs,
            new_accounts=len(self._accounts) - before,
            accounts=len(self._accounts),
            cursor=self.cursor,
        )
        return head

    def _get_logs(self, from_block: int, to_block: int, topics: list[Any]) -> list[Any]:
        """Raw ``eth_getLogs`` (topics as hex strings): web3's per-log formatting would cost more
        than the request itself on a long catch-up."""
        params = {
            "address": self.engine_address,
            "fromBlock": hex(from_block),
            "toBlock": hex(to_block),
            "topics": [HexBytes(t).to_0x_hex() for t in topics],
        }

        def fetch() -> list[Any]:
            response = self._w3.provider.make_request(RPCEndpoint("eth_getLogs"), [params])
            if response.get("error"):
                raise Web3RPCError(str(response["error"]), rpc_response=response)
            return response["result"]

        return self.rpc.call("eth_getLogs", fetch)

    # --- 2. scan -----------------------------------------------------------------------------------

    def scan(self, block: int | str = "latest") -> list[AccountHealth]:
        """Health of every indexed account at ``block``, one ``healthOf`` call per batch."""
        accounts = self.accounts
        out: list[AccountHealth] = []
        for i in range(0, len(accounts), self.batch_size):
            out.extend(self._health(accounts[i : i + self.batch_size], block))
        return out

    def _health(self, batch: list[str], block: int | str) -> list[AccountHealth]:
        """``healthOf(batch)``; a batch the node refuses (a stale oracle of one account's market,
        an eth_call gas cap) is split in halves, down to single accounts, which are skipped."""
        data = self._health_selector + abi_encode(["address[]"], [batch])
        call = {"to": self.engine_address, "data": HexBytes(data)}
        try:
            raw = self.rpc.call("healthOf", lambda: self._w3.eth.call(call, block))
        except (ContractLogicError, Web3RPCError) as err:
            if len(batch) == 1:
                self._event(logging.WARNING, "health_unreadable", account=batch[0], error=self._why(err))
                return []
            half = len(batch) // 2
            return self._health(batch[:half], block) + self._health(batch[half:], block)
        (rows,) = abi_decode(self._health_output, bytes(raw))
        out = []
        for account, row in zip(batch, rows, strict=True):
            values = dict(zip(self._health_fields, row, strict=True))
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

    # --- 4. act ------------------------------------------------------------------------------------

    def run_once(self) -> PassReport:
        """One pass: sync, scan, decide, act on every decided account (see the module docstring).
        Raises ``RpcUnavailable`` only if the node stays down while syncing or scanning; a failure
        while acting on one account is counted and the pass moves on."""
        started = self._clock()
        report = PassReport()
        head = self.sync_accounts()
        snapshot = self.scan(head)
        report.scanned = len(snapshot)
        plan = plan_liquidations(snapshot, self.address)
        report.liquidatable = len(plan.targets) + len(plan.skipped_self)
        self._event(
            logging.INFO,
            "scan",
            block=head,
            scanned=report.scanned,
            liquidatable=report.liquidatable,
            elapsed_ms=int((self._clock() - started) * 1000),
        )

        for health in plan.skipped_self:
            self._event(logging.WARNING, "skip_self", account=health.account, buffer=health.buffer)
        targets = plan.targets
        # Windows of `max_in_flight` accounts: one healthOf call re-checks the whole window, then
        # each account is dry-run and sent, then the window's receipts are awaited, so the next
        # window's dry-runs see every earlier liquidation mined.
        for start in range(0, len(targets), self.max_in_flight):
            window = targets[start : start + self.max_in_flight]
            try:
                fresh = {h.account: h for h in self._health(window, "latest")}
            except RpcUnavailable as err:
                report.failed += len(window)
                self._event(logging.ERROR, "failed", accounts=len(window), stage="recheck", error=str(err))
                continue
            in_flight: list[_InFlight] = []
            for account in window:
                try:
                    sent = self._act(account, fresh.get(account), report, head)
                except (RpcUnavailable, Web3RPCError) as err:
                    report.failed += 1
                    error = rpc_message(err) if isinstance(err, Web3RPCError) else str(err)
                    self._event(logging.ERROR, "failed", account=account, stage="rpc", error=error)
                    continue
                if sent is not None:
                    in_flight.append(sent)
            for tx in in_flight:
                self._settle(tx, report)

        end_head = self.rpc.call("eth_blockNumber", lambda: self._w3.eth.block_number)
        report.lag_blocks = max(end_head - head, 0)
        for name in COUNTER_NAMES:
            if name != "lag":
                self.counters[name] += getattr(report, name)
        self.counters["lag"] = report.lag_blocks
        self.counters["passes"] += 1
        self.counters["rpc_retries"] = self.rpc.retries
        self._event(
            logging.INFO,
            "pass",
            block=head,
            scanned=report.scanned,
            liquidatable=report.liquidatable,
            sent=report.sent,
            confirmed=report.confirmed,
            failed=report.failed,
            lost_races=report.lost_races,
            lag=report.lag_blocks,
            rpc_retries=self.rpc.retries,
            elapsed_ms=int((self._clock() - started) * 1000),
        )
        return report

    def _act(
        self, account: str, now: AccountHealth | None, report: PassReport, since_block: int
    ) -> _InFlight | None:
        """Acts on one account given its re-checked health ``now``: dry-run, estimate, send.
        Returns the sent transaction, or None (lost race, failure, dry-run mode)."""
        tag = "latest"
        if now is None:  # its health could not be read (logged by _health)
            report.failed += 1
            return None
        if not now.liquidatable:
            # A competitor (or a price move) got there first.
            report.lost_races += 1
            reason = "flat" if not now.has_positions else "healthy"
            self._event(logging.INFO, "lost_race", account=account, stage="recheck", reason=reason)
            return None

        data = HexBytes(self._liquidate_selector + abi_encode(["address"], [account]))
        call = {"from": self.address, "to": self.engine_address, "data": data}
        try:
            self.rpc.call("eth_call liquidate", lambda: self._w3.eth.call(call, tag))
            gas = self.rpc.call("eth_estimateGas", lambda: self._w3.eth.estimate_gas(call, tag))
        except ContractLogicError as err:
            self._dry_run_failed(account, err, report)
            return None
        if self.dry_run:
            self._event(logging.INFO, "would_liquidate", account=account, buffer=now.buffer, gas=gas)
            return None

        gas_limit = gas * (100 + self.gas_margin_pct) // 100
        try:
            tx_hash, nonce = self._send(
                {"to": self.engine_address, "data": data, "gas": gas_limit, "value": 0}
            )
        except RpcUnavailable:
            self._nonce = None  # the transaction may or may not have reached the node: resync
            raise
        except (Web3RPCError, SendError) as err:
            report.failed += 1
            error = rpc_message(err) if isinstance(err, Web3RPCError) else str(err)
            self._event(logging.ERROR, "failed", account=account, stage="send", error=error)
            return None
        report.sent += 1
        report.tx_hashes.append(tx_hash)
        self._event(
            logging.INFO,
            "sent",
            account=account,
            buffer=now.buffer,
            tx=tx_hash,
            nonce=nonce,
            gas_limit=gas_limit,
        )
        return _InFlight(account, tx_hash, nonce, since_block)

    def _dry_run_failed(self, account: str, err: ContractLogicError, report: PassReport) -> None:
        name = self._why(err)
        if name == "NotLiquidatable":
            report.lost_races += 1
            self._event(logging.INFO, "lost_race", account=account, stage="dry_run", reason=name)
        else:
            report.failed += 1
            self._event(logging.WARNING, "failed", account=account, stage="dry_run", error=name)

    def _why(self, err: Exception) -> str:
        """A revert's custom error name (or its raw selector / message)."""
        data = getattr(err, "data", None)
        if isinstance(data, str | bytes) and data:
            raw = bytes(HexBytes(data))
            if len(raw) >= 4:
                return self._errors.get(raw[:4], "0x" + raw[:4].hex())
        return rpc_message(err) if isinstance(err, Web3RPCError) else type(err).__name__

    def _settle(self, tx: _InFlight, report: PassReport) -> None:
        """Waits for ``tx``'s receipt and counts its outcome."""
        try:
            receipt = self._wait_receipt(tx.tx_hash)
        except (RpcUnavailable, TimeoutError) as err:
            report.failed += 1
            self._event(
                logging.ERROR, "failed", account=tx.account, stage="receipt", tx=tx.tx_hash, error=str(err)
            )
            return
        if receipt["status"] == 1:
            report.confirmed += 1
            report.liquidated.append(tx.account)
            self._event(
                logging.INFO,
                "confirmed",
                account=tx.account,
                tx=tx.tx_hash,
                block=receipt["blockNumber"],
                gas_used=receipt["gasUsed"],
            )
            return
        winner = self._liquidated_by(tx.account, tx.since_block, receipt["blockNumber"])
        if winner is not None and winner.lower() != self.address.lower():
            report.lost_races += 1
            self._event(
                logging.INFO, "lost_race", account=tx.account, stage="mined", tx=tx.tx_hash, winner=winner
            )
        else:
            report.failed += 1
            self._event(logging.ERROR, "failed", account=tx.account, stage="mined", tx=tx.tx_hash)

    def _liquidated_by(self, account: str, from_block: int, to_block: int) -> str | None:
        """The liquidator of ``account`` between the two blocks, from ``Liquidated`` logs."""
        topic = HexBytes(abi_encode(["address"], [account]))
        try:
            entries = self._get_logs(from_block, to_block, [self._topic_liquidated, topic])
        except (RpcUnavailable, Web3RPCError):
            return None
        return _topic_address(entries[-1]["topics"][2]) if entries else None

    def _wait_receipt(self, tx_hash: str) -> Any:
        deadline = self._clock() + self.receipt_timeout
        delay = 0.005  # then ×1.5 up to 1 s: waits at most half again the mining latency
        while True:
            try:
                return self.rpc.call(
                    "eth_getTransactionReceipt", lambda: self._w3.eth.get_transaction_receipt(tx_hash)
                )
            except TransactionNotFound:
                pass
            if self._clock() > deadline:
                raise TimeoutError(f"no receipt for {tx_hash} after {self.receipt_timeout:.0f} s")
            self._sleep(delay)
            delay = min(delay * 1.5, 1.0)

    # --- nonces, fees, sending ---------------------------------------------------------------------

    def _sync_nonce(self) -> int:
        self._nonce = self.rpc.call(
            "eth_getTransactionCount", lambda: self._w3.eth.get_transaction_count(self.address, "pending")
        )
        return self._nonce

    def _fee_caps(self, refresh: bool = False) -> tuple[int, int]:
        """``(maxFeePerGas, maxPriorityFeePerGas)``: priority from ``eth_maxPriorityFeePerGas``
        (1 gwei if the node has none), max fee ``2·baseFee + priority``; cached for 6 s."""
        if self._fees is not None and not refresh and self._clock() - self._fees_at < 6.0:
            return self._fees
        block = self.rpc.call("eth_getBlockByNumber", lambda: self._w3.eth.get_block("latest"))
        base = block.get("baseFeePerGas")
        if base is None:  # a pre-London chain: the legacy gas price stands in for the base fee
            base = self.rpc.call("eth_gasPrice", lambda: self._w3.eth.gas_price)
        try:
            priority = self.rpc.call("eth_maxPriorityFeePerGas", lambda: self._w3.eth.max_priority_fee)
        except (Web3RPCError, RpcUnavailable):
            priority = DEFAULT_PRIORITY_FEE
        self._fees = (2 * base + priority, priority)
        self._fees_at = self._clock()
        return self._fees

    def _send(self, tx: dict[str, Any]) -> tuple[str, int]:
        """Signs with the locally tracked nonce and sends; returns ``(tx hash, nonce)``.

        The transaction hash is computed locally, so a send whose answer was lost is recognised:
        re-sending the same bytes is answered "already known" or "nonce too low", and a lookup by
        hash tells whether the first attempt got through. A nonce or fee error resyncs and
        re-signs (at most 3 times)."""
        refresh_fees = False
        for _ in range(4):
            nonce = self._nonce if self._nonce is not None else self._sync_nonce()
            max_fee, priority = self._fee_caps(refresh_fees)
            raw = self.signer.sign_transaction(
                {
                    **tx,
                    "chainId": self.chain_id,
                    "nonce": nonce,
                    "type": 2,
                    "maxFeePerGas": max_fee,
                    "maxPriorityFeePerGas": priority,
                }
            )
            tx_hash = "0x" + keccak(raw).hex()
            try:
                self.rpc.call(
                    "eth_sendRawTransaction", lambda raw=raw: self._w3.eth.send_raw_transaction(raw)
                )
            except Web3RPCError as err:
                message = rpc_message(err)
                known = any(m in message for m in ("already known", "already exists", "known transaction"))
                if known or ("nonce too low" in message and self._known(tx_hash)):
                    # An earlier attempt with these exact bytes got through; its answer was lost.
                    self._event(logging.INFO, "send_recovered", tx=tx_hash, nonce=nonce, answer=message)
                elif "nonce" in message or "replacement transaction" in message:
                    self._event(logging.WARNING, "nonce_resync", nonce=nonce, error=message)
                    self._nonce = None
                    continue
                elif "fee" in message or "underpriced" in message:
                    self._event(logging.WARNING, "fee_refresh", error=message)
                    refresh_fees = True
                    continue
                else:
                    raise
            self._nonce = nonce + 1
            return tx_hash, nonce
        raise SendError("still rejected after resyncing the nonce and fees 3 times")

    def _known(self, tx_hash: str) -> bool:
        try:
            self.rpc.call("eth_getTransactionByHash", lambda: self._w3.eth.get_transaction(tx_hash))
        except TransactionNotFound:
            return False
        return True

    # --- the loop ----------------------------------------------------------------------------------

    def run_forever(self, poll_interval: float = 1.0, max_passes: int | None = None) -> None:
        """One pass per new block (polling the head every ``poll_interval`` s) until
        ``max_passes`` passes ran (forever if None). A node that stays down is logged and waited
        out with growing delays (up to 60 s); a pass never starts twice on the same head."""
        passes = 0
        failures = 0
        last_head: int | None = None
        while max_passes is None or passes < max_passes:
            try:
                head = self.rpc.call("eth_blockNumber", lambda: self._w3.eth.block_number)
                if head == last_head:
                    self._sleep(poll_interval)
                    continue
                self.run_once()
                last_head = head
                failures = 0
            except RpcUnavailable as err:
                failures += 1
                wait = min(poll_interval * 2**failures, 60.0)
                self._event(logging.ERROR, "pass_failed", error=str(err), retry_in_s=wait)
                self._sleep(wait)
            passes += 1


def _is_range_error(err: Web3RPCError) -> bool:
    message = rpc_message(err)
    return any(
        m in message for m in ("range", "limit", "too many", "exceed", "10000 results", "response size")
    )
