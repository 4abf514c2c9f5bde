"""The keeper as a Silverback bot (docs/keeper.md §"How it runs: Silverback").

:class:`KeeperService` is the glue between a :class:`~backstop.keeper.Keeper` and the outside:
it polls the head, runs one pass at a time under a lock, publishes a
:class:`~backstop.keeper.metrics.Status` after each, keeps the totals the metrics export and
writes the ``stop`` line. :func:`make_bot` registers it with a ``SilverbackBot``: a block handler
(one pass per new head, run in a worker thread so the event loop stays free to receive a signal)
and a shutdown handler. :class:`HeadRunner` is the Silverback runner that feeds the bot heads
read through the keeper's own connection — the failover set of RPC URLs
(:mod:`backstop.keeper.endpoints`), not Ape's single provider — one at a time, never the same head
twice, backing off (at most ``max_backoff`` seconds) while every endpoint is down.

On SIGTERM or SIGINT the keeper is told to stop at once (the pass in progress sends nothing more
and awaits its receipts), Silverback's runner shuts down, and the shutdown handler waits for the
pass, persists the cursor and writes ``keeper signal`` and ``keeper stop``. A second signal
interrupts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from ape import chain
from ape.api import ProviderContextManager
from silverback import SilverbackBot
from silverback.exceptions import Halt
from silverback.runner import BaseRunner
from silverback.settings import Settings
from silverback.utils import clean_hexbytes_dict
from web3.exceptions import Web3RPCError

from backstop.chain.rpc import RpcUnavailable, rpc_message
from backstop.keeper.loop import DEFAULT_MAX_BACKOFF, Keeper, backoff_delay
from backstop.keeper.metrics import Monitor, own_values
from backstop.keeper.state import PassReport

BOT_NAME = "backstop-keeper"


class KeeperService:
    """One keeper, its monitor and its totals; every method may be called from a worker thread."""

    def __init__(self, keeper: Keeper, monitor: Monitor, wall: Callable[[], float] = time.time) -> None:
        self.keeper = keeper
        self.monitor = monitor
        self._wall = wall
        self._pass_lock = threading.Lock()
        self.totals = {"liquidated": 0, "partial_steps": 0}
        self.signal_name: str | None = None
        self.finished = False
        self.monitor.update(
            accounts_indexed=len(keeper.accounts), markets=tuple(keeper.market_names.values())
        )

    @property
    def stopping(self) -> bool:
        return self.keeper.stopping

    def poll_head(self) -> dict[str, Any] | None:
        """The newest block (a JSON-able dict), or None while the node is down (logged)."""
        k = self.keeper
        try:
            block = k.rpc.call("eth_getBlockByNumber", lambda: k._w3.eth.get_block("latest"))
        except (RpcUnavailable, Web3RPCError) as err:
            error = rpc_message(err) if isinstance(err, Web3RPCError) else str(err)
            self.monitor.update(node_up=False, node_error=error)
            return None
        self.monitor.update(
            node_up=True, node_error=None, head=block["number"], head_timestamp=block["timestamp"]
        )
        return clean_hexbytes_dict(dict(block))

    def run_pass(self) -> PassReport | None:
        """One pass (None when stopping or when the node went down mid-pass, which is logged)."""
        with self._pass_lock:
            if self.keeper.stopping:
                return None
            try:
                report = self.keeper.run_once()
            except RpcUnavailable as err:
                self.keeper._event(logging.ERROR, "pass_failed", error=str(err))
                self.monitor.update(node_up=False, node_error=str(err))
                return None
            except Exception as err:  # a bug, not an outage: logged, then counted by Silverback
                self.keeper._event(logging.ERROR, "pass_error", error=f"{type(err).__name__}: {err}")
                raise
            self.record(report)
            return report

    def record(self, report: PassReport) -> None:
        """Publishes the pass's results to the monitor."""
        k = self.keeper
        self.totals["liquidated"] += len(report.liquidated)
        self.totals["partial_steps"] += report.partial_steps
        self.monitor.update(
            node_up=True,
            node_error=None,
            accounts_indexed=len(k.accounts),
            last_scanned=report.scanned,
            last_liquidatable=report.liquidatable,
            lag_blocks=report.lag_blocks,
            last_pass_at=self._wall(),
            counters={**k.counters, **self.totals},
            stale_markets=dict(report.stale_markets),
            own=own_values(k.own_risk),
            own_buffer_low=k.own_buffer_low,
        )

    def on_signal(self, name: str) -> None:
        """A stop signal: the keeper stops sending now; the runner's shutdown calls :meth:`finish`."""
        self.signal_name = name
        self.keeper.request_stop()

    def finish(self) -> None:
        """Waits for the pass in progress, persists the state, writes the ``signal`` and ``stop``
        lines (once)."""
        self.keeper.request_stop()
        with self._pass_lock:
            if self.finished:
                return
            self.finished = True
            k = self.keeper
            try:
                k.persist()
            except Exception as err:  # the stop line must still be written
                k.log.error("keeper persist_failed error=%s", err)
            if self.signal_name is not None:
                k._event(logging.INFO, "signal", name=self.signal_name)
            k._event(logging.INFO, "stop", **{**k.counters, **self.totals})


class _ConnectedSettings(Settings):
    """Silverback settings that reuse the provider Ape already connected (``ape run keeper``
    connects through :class:`backstop.chain.node.NoNewNodeCommand`, which never starts a node)."""

    def get_provider_context(self) -> ProviderContextManager:
        return ProviderContextManager(provider=self.provider)


def make_bot(service: KeeperService) -> SilverbackBot:
    """A ``SilverbackBot`` whose block handler runs one keeper pass per head."""
    bot = SilverbackBot(_ConnectedSettings(BOT_NAME=BOT_NAME))

    @bot.on_(chain.blocks)
    async def liquidate(block: Any) -> None:
        await asyncio.to_thread(service.run_pass)

    @bot.on_shutdown()
    async def stop() -> None:
        await asyncio.to_thread(service.finish)

    return bot


class HeadRunner(BaseRunner):
    """Feeds the bot's block handler the heads :meth:`KeeperService.poll_head` reads, polling every
    ``poll_interval`` seconds; a pass never overlaps another nor runs twice on one head."""

    def __init__(
        self,
        bot: SilverbackBot,
        service: KeeperService,
        *,
        poll_interval: float,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        max_exceptions: int = 3,
    ) -> None:
        super().__init__(bot, max_exceptions=max_exceptions)
        self.service = service
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        #: Silverback halted the bot: more than ``max_exceptions`` passes in a row raised.
        self.halted = False

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.shutdown_event.wait(), timeout=seconds)

    def _chain_signals(self) -> None:
        """Our handler before Silverback's: the keeper stops sending at once, even while a pass
        keeps the worker thread busy; a second signal interrupts."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)

            def handler(signum: int, frame: Any, previous: Any = previous) -> None:
                if self.service.signal_name is not None:
                    raise KeyboardInterrupt
                self.service.on_signal(signal.Signals(signum).name)
                if callable(previous):
                    previous(signum, frame)

            signal.signal(sig, handler)

    async def _block_task(self, task_data: Any) -> None:
        self._chain_signals()  # Silverback installed its handlers just before the tasks start
        last: int | None = None
        failures = 0
        while not self.shutdown_event.is_set() and not self.service.stopping:
            block = await asyncio.to_thread(self.service.poll_head)
            if block is None:
                failures += 1
                wait = backoff_delay(self.poll_interval, failures, self.max_backoff)
                self.service.keeper._event(
                    logging.ERROR,
                    "pass_failed",
                    error=self.service.monitor.status.node_error or "node down",
                    retry_in_s=wait,
                )
                await self._sleep(wait)
                continue
            failures = 0
            if block["number"] != last:
                try:
                    await self.run_task(task_data, block)
                except Halt:
                    self.halted = True
                    self.service.keeper._event(
                        logging.ERROR,
                        "halted",
                        errors=self.max_exceptions + 1,
                        reason="handler errors in a row",
                    )
                    raise
                last = block["number"]
            await self._sleep(self.poll_interval)

    async def _event_task(self, task_data: Any) -> None:  # the keeper registers no event handlers
        raise NotImplementedError("HeadRunner feeds block handlers only")


def run_bot(
    service: KeeperService, *, poll_interval: float, max_backoff: float = DEFAULT_MAX_BACKOFF
) -> bool:
    """Runs the keeper under Silverback until a signal stops it (True) or Silverback halts it after
    more than 3 failed passes in a row (False: a supervisor should restart it)."""
    runner = HeadRunner(make_bot(service), service, poll_interval=poll_interval, max_backoff=max_backoff)
    asyncio.run(runner.run())
    service.finish()  # no-op when the shutdown handler ran
    return not runner.halted
