"""The liquidation keeper (docs/design.md §4, §11): read, decide, act.

Reading and acting are split (CONVENTIONS 11). The plan is pure and lives in ``backstop.decisions``
(``plan_liquidations``: the ordered accounts to liquidate, the keeper itself skipped); ``Keeper`` is
the thin loop around it, with the engine's ABI in :mod:`backstop.keeper.engine_abi`, the persisted
index in :mod:`backstop.keeper.state` and nonces, fees and sending in :mod:`backstop.keeper.sender`:

1. **sync** — extend the account index from the persisted cursor to the head with ``eth_getLogs``
   over block ranges (``PositionChanged`` names every account that ever held a position);
2. **scan** — read every indexed account's health through ``healthOf(address[])``, one call per
   batch, all batches pinned to the same block;
3. **decide** — liquidatable accounts, most negative ``E − MMR`` first, ties by address;
4. **act** (:mod:`backstop.keeper.act`) — read the targets' and the keeper's own books, plan with
   the keeper's capital (``liquidateMany`` batches under ``gas_budget``, ``liquidatePosition``
   steps, the rest logged ``unabsorbable`` with the capital it needs), then dry-run, estimate,
   sign with the keeper's own nonce and EIP-1559 fees and send, in windows of ``max_in_flight``
   transactions whose receipts are awaited before the next window's dry runs. A batch whose dry
   run fails is split in halves, down to single accounts.

After acting, the keeper values its own book (``own_risk``: equity, IMR, MMR, free collateral,
gross notional, leverage, buffer, in human units; :mod:`backstop.keeper.risk`), warns while its
buffer is under ``min_buffer`` (``own_buffer_low``), and the ``pass`` line names the markets whose
oracle price was stale or unreadable (``stale_markets``). ``request_stop()`` (the script's SIGTERM
and SIGINT handler) ends the loop after the in-flight receipts are awaited.

A competitor that liquidates first is a *lost race*, counted apart from failures: the engine
skips the account in a batch (``LiquidationSkipped``), a batch's dry run liquidates nobody, or a
partial step's dry run reverts ``NotLiquidatable``. Transport failures are retried with backoff
(``backstop.chain.rpc``); a transaction whose dry-run failed is never sent. Every event is one
structured log line (``keeper <event> key=value ...``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from backstop.chain.abi import error_name
from backstop.chain.rpc import Retrier, RpcUnavailable, rpc_message
from backstop.chain.tx import DEFAULT_FEE_BUMP_PCT, DEFAULT_GAS_MARGIN_PCT, DEFAULT_REPRICE_AFTER, FeePolicy
from backstop.decisions import AccountHealth, GasModel, plan_liquidations
from backstop.decisions.fallback import (
    DEFAULT_BUFFER_RATIO,
    DEFAULT_GAS_BUDGET,
    DEFAULT_MAX_INHERIT_NOTIONAL,
    DEFAULT_MIN_STEP_NOTIONAL,
)
from backstop.keeper.act import Acting
from backstop.keeper.books import BookReader
from backstop.keeper.engine_abi import EngineAbi, load_engine_abis
from backstop.keeper.index import AccountIndex
from backstop.keeper.logs import emit
from backstop.keeper.risk import DEFAULT_MIN_BUFFER, OwnRisk, human, ratio
from backstop.keeper.sender import Sent, TxSender
from backstop.keeper.signer import Signer
from backstop.keeper.state import COUNTER_NAMES, KeeperConfigError, PassReport
from backstop.units import WAD

#: The longest wait between passes while the node is down (seconds).
DEFAULT_MAX_BACKOFF = 5.0


def backoff_delay(poll_interval: float, failures: int, max_backoff: float = DEFAULT_MAX_BACKOFF) -> float:
    """Seconds to wait after ``failures`` passes in a row found the node down: doubling from twice
    the poll interval, at most ``max_backoff``."""
    return min(poll_interval * 2**failures, max_backoff)


class Keeper(Acting, AccountIndex):
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
    waits for each receipt before the next dry-run), ``receipt_timeout`` (seconds), and the
    capital plan's ``gas_budget`` (gas per ``liquidateMany``), ``buffer_ratio`` (WAD: free
    collateral kept above that share of the keeper's IMR after each takeover),
    ``min_step_notional`` (WAD: the smallest partial step worth a transaction) and
    ``max_inherit_notional`` (WAD, the inherit ceiling: the keeper's gross notional after the
    plan, None for none); ``min_buffer`` (WAD: ``own_buffer_low`` while free collateral < that
    share of the keeper's IMR), ``market_names`` (market id → name, for the log lines) and
    ``max_backoff`` (seconds: the longest wait while the node is down). Fees
    (:mod:`backstop.keeper.fees`): ``max_fee`` (wei, the cap on ``maxFeePerGas``; None for none),
    ``priority_fee`` (wei, instead of ``eth_maxPriorityFeePerGas``), ``reprice_after`` (seconds
    without a receipt before a transaction is re-signed with fees raised by ``fee_bump_pct``
    percent, ≥ 10; None: never) and ``eth_price`` (WAD, the quote value of 1 ETH for the
    profitability floor; None: the price of the market named ``ETH`` in ``market_names``).

    After each pass ``last_pass`` (the :class:`PassReport`), ``own_risk``
    (:class:`~backstop.keeper.risk.OwnRisk`), ``own_buffer_low`` and ``stale_markets`` (name →
    revert) hold the pass's figures; ``stale_passes`` counts, per market name, the passes in
    which its price was stale or unreadable.
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
        gas_margin_pct: int = DEFAULT_GAS_MARGIN_PCT,
        gas_budget: int = DEFAULT_GAS_BUDGET,
        buffer_ratio: int = DEFAULT_BUFFER_RATIO,
        min_step_notional: int = DEFAULT_MIN_STEP_NOTIONAL,
        max_inherit_notional: int | None = DEFAULT_MAX_INHERIT_NOTIONAL,
        min_buffer: int = DEFAULT_MIN_BUFFER,
        market_names: Mapping[int, str] | None = None,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        max_fee: int | None = None,
        priority_fee: int | None = None,
        reprice_after: float | None = DEFAULT_REPRICE_AFTER,
        fee_bump_pct: int = DEFAULT_FEE_BUMP_PCT,
        eth_price: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if batch_size < 1 or log_range < 1 or max_in_flight < 1 or reorg_depth < 0:
            raise KeeperConfigError("batch_size, log_range and max_in_flight must be ≥ 1, reorg_depth ≥ 0")
        if gas_budget < 100_000 or buffer_ratio < 0 or min_step_notional < 0:
            raise KeeperConfigError("gas_budget must be ≥ 100,000; buffer_ratio and min_step_notional ≥ 0")
        if (
            (max_inherit_notional is not None and max_inherit_notional < 0)
            or min_buffer < 0
            or max_backoff <= 0
        ):
            raise KeeperConfigError("max_inherit_notional and min_buffer must be ≥ 0, max_backoff > 0")
        try:
            self.fee_policy = FeePolicy(max_fee, priority_fee, fee_bump_pct, reprice_after)
        except ValueError as err:
            raise KeeperConfigError(str(err)) from None
        if eth_price is not None and eth_price <= 0:
            raise KeeperConfigError(f"eth_price must be > 0 (WAD, the quote value of 1 ETH), not {eth_price}")
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
        self.gas_model = GasModel(budget=gas_budget)
        self.buffer_ratio = buffer_ratio
        self.min_step_notional = min_step_notional
        self.max_inherit_notional = max_inherit_notional
        self.min_buffer = min_buffer
        self.market_names = dict(market_names or {})
        self.max_backoff = max_backoff
        self.eth_price = eth_price
        self._eth_warned, self._pass_eth_price = False, None
        self._clock = clock
        self._stop_requested = False
        # Retries and receipt polls sleep plainly; the loop's waits (``_pause``) end early on a stop.
        self._sleep = sleep if sleep is not None else time.sleep
        self._pause = sleep if sleep is not None else self._nap
        self.rpc = Retrier(max_retries=max_retries, logger=self.log, sleep=self._sleep)
        self.last_pass: PassReport | None = None
        self.own_risk: OwnRisk | None = None
        self.own_buffer_low = False
        self.stale_markets: dict[str, str] = {}
        self.stale_passes: dict[str, int] = {}
        self._own_book: tuple[int, Any, Any] | None = None  # (block, Book, terms) from the plan

        if abi is None:
            abi, other_abis = load_engine_abis()
            self.engine_abi = EngineAbi.from_abi(abi, other_abis)
        else:
            self.engine_abi = EngineAbi.from_abi(abi)

        self._connect()
        self.books = BookReader(self._w3, self.engine_address, self.engine_abi, self.rpc)

    def _connect(self) -> None:
        """Startup reads: the chain id, the persisted state (checked against this chain), the
        keeper's own margin; then the ``start`` line."""
        self.chain_id: int = self.rpc.call("eth_chainId", lambda: self._w3.eth.chain_id)
        self.sender = TxSender(
            self._w3, self.signer, self.chain_id, self.rpc, self._event, self._clock,
            policy=self.fee_policy, receipt_timeout=self.receipt_timeout, sleep=self._sleep,
        )  # fmt: skip
        self._accounts: dict[str, str] = {}  # lower-case → checksum
        self.cursor: int = self.start_block - 1
        self._cursor_hash: str | None = None
        self._load_state()
        self._synced_to = self.cursor
        self._last_persist = 0.0

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
        if own is not None and own.margin <= 0:
            # The liquidator takes the positions over and must end with E ≥ IMR (docs/design.md §4).
            self._event(logging.WARNING, "no_margin", keeper=self.address, margin=human(own.margin))

    # --- stopping ----------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the keeper to stop (safe from a signal handler): the pass in progress sends nothing
        more, awaits the receipts in flight and ends; ``run_forever`` then returns."""
        self._stop_requested = True

    @property
    def stopping(self) -> bool:
        return self._stop_requested

    def _nap(self, seconds: float) -> None:
        """The default sleep: in slices of at most 0.1 s, cut short by :meth:`request_stop`."""
        deadline = time.monotonic() + seconds
        while not self._stop_requested:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

    def persist(self) -> None:
        """Saves the cursor and the account index now (at stop)."""
        if self.state_path is not None:
            self._persist(self._synced_to, force=True)

    # --- logging -----------------------------------------------------------------------------------

    def _event(self, level: int, event: str, *, word: str | None = None, **fields: Any) -> None:
        """One structured line (:func:`backstop.keeper.logs.emit`)."""
        emit(self.log, level, event, word=word, **fields)

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
        call = {"to": self.engine_address, "data": HexBytes(self.engine_abi.health_call(batch))}
        try:
            raw = self.rpc.call("healthOf", lambda: self._w3.eth.call(call, block))
        except (ContractLogicError, Web3RPCError) as err:
            if len(batch) == 1:
                self._event(logging.WARNING, "health_unreadable", account=batch[0], error=self._why(err))
                return []
            half = len(batch) // 2
            return self._health(batch[:half], block) + self._health(batch[half:], block)
        return self.engine_abi.decode_health(batch, bytes(raw))

    # --- 4. act ------------------------------------------------------------------------------------

    def run_once(self) -> PassReport:
        """One pass: sync, read every market's price, scan, decide, act on every decided account,
        value the keeper's own book (see the module docstring). Raises ``RpcUnavailable`` only if
        the node stays down while syncing or scanning; a failure while acting on one account is
        counted and the pass moves on."""
        started = self._clock()
        report = PassReport()
        head = self.sync_accounts()
        prices = self.books.prices(head)
        report.stale_markets = {self.market_name(m): p for m, p in prices.items() if isinstance(p, str)}
        for m, error in prices.items():
            if isinstance(error, str):
                self._event(
                    logging.WARNING, "price_unreadable", market=self.market_name(m), id=m, error=error
                )
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
            self._event(logging.WARNING, "skip_self", account=health.account, buffer=human(health.buffer))
        by_address = {h.account: h for h in snapshot}
        # The keeper's own health: from the scan when it is indexed (it ever held a position).
        own = by_address.get(self.address)
        if own is None and self.address.lower() not in self._accounts:
            [own] = self._health([self.address], head) or [None]
        self._own_book = None
        try:
            self.act([by_address[a] for a in plan.targets], head, report, own)
        except (RpcUnavailable, Web3RPCError) as err:
            report.failed += len(plan.targets) - len(report.liquidated)
            error = rpc_message(err) if isinstance(err, Web3RPCError) else str(err)
            self._event(logging.ERROR, "failed", stage="act", error=error)

        end_head = self.rpc.call("eth_blockNumber", lambda: self._w3.eth.block_number)
        report.lag_blocks = max(end_head - head, 0)
        self._own_risk(own, head, end_head, report)
        for name in COUNTER_NAMES:
            if name != "lag":
                self.counters[name] += getattr(report, name)
        self.counters["lag"] = report.lag_blocks
        self.counters["passes"] += 1
        self.counters["rpc_retries"] = self.rpc.retries
        self.stale_markets = dict(report.stale_markets)
        for name in report.stale_markets:
            self.stale_passes[name] = self.stale_passes.get(name, 0) + 1
        self.last_pass = report
        self._event(
            logging.INFO,
            "pass",
            block=head,
            scanned=report.scanned,
            liquidatable=report.liquidatable,
            sent=report.sent,
            confirmed=report.confirmed,
            liquidated=len(report.liquidated),
            partial_steps=report.partial_steps,
            unabsorbable=len(report.unabsorbable),
            failed=report.failed,
            lost_races=report.lost_races,
            unprofitable=report.unprofitable,
            lag=report.lag_blocks,
            rpc_retries=self.rpc.retries,
            stale_markets=",".join(report.stale_markets) or "-",
            elapsed_ms=int((self._clock() - started) * 1000),
        )
        return report

    def market_name(self, market_id: int) -> str:
        """The market's name from ``market_names`` (its id when unnamed)."""
        return self.market_names.get(market_id, str(market_id))

    # --- the keeper's own risk ---------------------------------------------------------------------

    def _own_risk(self, own: AccountHealth | None, head: int, end_head: int, report: PassReport) -> None:
        """Values the keeper's book after the pass: the plan's reading when the pass mined nothing,
        else one more ``healthOf`` and book read at ``end_head``; logs ``own_risk`` and, while the
        buffer is under ``min_buffer``, ``own_buffer_low``."""
        try:
            if report.confirmed == 0 and self._own_book is not None and self._own_book[0] == head:
                _, book, terms = self._own_book
                block = head
            else:
                block = end_head if report.confirmed else head
                if report.confirmed:
                    [own] = self._health([self.address], block) or [None]
                if own is None:  # logged (health_unreadable) when it was read
                    raise ValueError("its health is unreadable")
                [book] = self.books.books([own], block)
                terms = self.books.terms(set(book.positions), block)
            risk = OwnRisk.of(book, terms, block)
        except ValueError as err:
            self.own_risk = None
            self._event(logging.WARNING, "own_risk_unreadable", keeper=self.address, error=str(err))
            return
        except (RpcUnavailable, Web3RPCError) as err:
            self.own_risk = None
            error = rpc_message(err) if isinstance(err, Web3RPCError) else str(err)
            self._event(logging.WARNING, "own_risk_unreadable", keeper=self.address, error=error)
            return
        report.own_risk = self.own_risk = risk
        self._event(logging.INFO, "own_risk", block=block, **risk.fields())
        low = risk.buffer_low(self.min_buffer)
        if low:
            self._event(
                logging.WARNING,
                "own_buffer_low",
                buffer=ratio(risk.free, risk.imr),
                min_buffer=ratio(self.min_buffer, WAD),
                free=human(risk.free),
                imr=human(risk.imr),
            )
        elif self.own_buffer_low:
            self._event(
                logging.INFO,
                "own_buffer_recovered",
                buffer=ratio(risk.free, risk.imr),
                min_buffer=ratio(self.min_buffer, WAD),
            )
        report.own_buffer_low = self.own_buffer_low = low

    def _why(self, err: Exception) -> str:
        """A revert's custom error name (or its raw selector / message)."""
        data = getattr(err, "data", None)
        if isinstance(data, str | bytes) and data:
            raw = bytes(HexBytes(data))
            if len(raw) >= 4:
                return error_name(raw, self.engine_abi.errors)
        return rpc_message(err) if isinstance(err, Web3RPCError) else type(err).__name__

    def _wait_receipt(self, sent: Sent) -> Any:
        """The receipt of ``sent`` (any hash signed for its nonce), re-pricing it while it waits
        (:meth:`TxSender.wait`)."""
        return self.sender.wait(sent)

    # --- the loop ----------------------------------------------------------------------------------

    def run_forever(self, poll_interval: float = 1.0, max_passes: int | None = None) -> None:
        """One pass per new block (polling the head every ``poll_interval`` s) until
        ``max_passes`` passes ran (forever if None) or :meth:`request_stop` was called. A node
        that stays down is logged and waited out with doubling delays, at most ``max_backoff``
        (5 s); a pass never starts twice on the same head."""
        passes = 0
        failures = 0
        last_head: int | None = None
        while (max_passes is None or passes < max_passes) and not self._stop_requested:
            try:
                head = self.rpc.call("eth_blockNumber", lambda: self._w3.eth.block_number)
                if head == last_head:
                    self._pause(poll_interval)
                    continue
                self.run_once()
                last_head = head
                failures = 0
            except RpcUnavailable as err:
                failures += 1
                wait = backoff_delay(poll_interval, failures, self.max_backoff)
                self._event(logging.ERROR, "pass_failed", error=str(err), retry_in_s=wait)
                self._pause(wait)
            passes += 1
