"""Keeper wall times on a local anvil: scanning 1,000 accounts, and liquidating every
liquidatable account after a crash of 1,000 accounts.

One ETH market with the local parameters (fees on). Each of N traders deposits 205–330 tokens
(spread deterministically) and buys 1 ETH at 2,000 from one of four whales; the insurance fund
holds a 5,000-token stake; the keeper's account holds 1,000,000 tokens of margin. The keeper runs
with its own defaults (those of ``ape run keeper``), recorded in the results.

- ``scan``: with every account healthy, an index already synced, the time of one
  ``Keeper.run_once()`` in dry-run mode (sync of the new blocks, ``healthOf`` over every account in
  batches of 500, decide: nothing to do). The scan alone (``Keeper.scan()``) and the initial log
  sync of a fresh keeper are reported too. Each is the median of 3 runs.
- ``liquidate all``: ETH falls to 1,750, which makes every account liquidatable (about half
  solvent, half bankrupt: the fund covers the first deficits, the rest is socialized). A keeper
  that is running (index synced before the crash) runs passes until a pass finds nothing to do;
  the time is from the start of the first pass to the end of the last pass that liquidated
  something. Every account is then checked flat on chain. The keeper sends ``liquidateMany``
  batches cut to its gas budget; ``liquidation_gas_mean`` / ``_max`` are per liquidated account
  (a transaction's gas shared out over the accounts it liquidated), ``transaction_gas_*`` per
  transaction.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

from eth_utils import keccak
from web3 import HTTPProvider, Web3

from backstop.units import WAD
from bench import suites
from bench.chain import Chain, Suite, make_actor

PRICE = 2_000 * WAD
CRASH = 1_750 * WAD
LIQUIDATED = "Liquidated(address,address,uint256,uint256,uint256,uint256,uint256,uint256)"
WHALES = 4


class _PassLines(logging.Filter):
    """Lets through the keeper's per-pass lines and anything at WARNING or above."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or getattr(record, "keeper_event", "") in ("pass",)


def _logger(log: Callable[[str], None]) -> logging.Logger:
    logger = logging.getLogger("bench.keeper")
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO)

    class _Emit(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            log("keeper: " + record.getMessage())

    handler = _Emit()
    handler.addFilter(_PassLines())
    logger.addHandler(handler)
    return logger


def run(
    project, ape_chain, deployer, chain: Chain, log: Callable[[str], None], n: int = 1000
) -> dict[str, Any]:
    try:
        from backstop.keeper import Keeper, LocalSigner
    except ImportError as err:  # the keeper is optional for the rest of the bench
        return {"keeper": {}, "notes": {"keeper": f"skipped: backstop.keeper unavailable ({err})"}}
    suite = suites.deploy(project, ape_chain, deployer, chain, suites.config(("ETH",)))
    return KeeperBench(chain, suite, log, Keeper, LocalSigner).run(n)


class KeeperBench:
    def __init__(self, chain: Chain, suite: Suite, log: Callable[[str], None], keeper_cls, signer_cls):
        self.chain = chain
        self.s = suite
        self.log = log
        self.Keeper = keeper_cls
        self.LocalSigner = signer_cls

    def _median(self, fn: Callable[[], Any], runs: int = 3) -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    def build(self, n: int) -> list[Any]:
        s, c = self.s, self.chain
        op, staker = make_actor("kb/op"), make_actor("kb/staker")
        whales = [make_actor(f"kb/whale-{i}") for i in range(WHALES)]
        traders = [make_actor(f"kb/trader-{i}") for i in range(n)]
        started = time.monotonic()
        c.fund([op, staker, *whales, *traders])
        for w in whales:
            s.deposit(w, s.tokens(200_000 + 200 * n // WHALES))
        s.stake(staker, s.tokens(5_000))
        txs = []
        for i, t in enumerate(traders):
            txs += s.deposit_txs(t, s.tokens(205 + (i * 37) % 126))
        c.send_many(txs, what="trader deposits")
        self.log(f"keeper: {n} traders funded ({len(txs)} transactions, {time.monotonic() - started:.1f} s)")
        per_whale = -(-n // WHALES)
        asks = [s.order(w, "ETH", False, per_whale * WAD, PRICE) for w in whales]
        matches = []
        for i, t in enumerate(traders):
            buy = s.order(t, "ETH", True, WAD, PRICE)
            matches.append((t, s.engine.address, s.match_data(asks[i % WHALES], buy, WAD)))
        c.send_many(matches, what="traders buy 1 ETH")
        self.log(f"keeper: {n} traders long 1 ETH ({time.monotonic() - started:.1f} s in all)")
        self.op = op
        return traders

    def run(self, n: int) -> dict[str, Any]:
        s, c = self.s, self.chain
        traders = self.build(n)
        bot = make_actor("kb/keeper")
        c.fund([bot])
        s.deposit(bot, s.tokens(1_000_000))
        c.quiesce()
        web3 = Web3(HTTPProvider(c.uri, request_kwargs={"timeout": 120}))
        logger = _logger(self.log)
        common = {"start_block": s.engine_block, "batch_size": 500, "logger": logger}

        # Cold index: a fresh keeper reads every PositionChanged log since the engine's deployment.
        watcher = self.Keeper(web3, s.engine.address, self.LocalSigner(bot.key), dry_run=True, **common)
        started = time.perf_counter()
        watcher.sync_accounts()
        sync_s = time.perf_counter() - started
        indexed = len(watcher.accounts)
        scan_only_s = self._median(watcher.scan)
        reports = []
        scan_pass_s = self._median(lambda: reports.append(watcher.run_once()))
        assert (
            reports[-1].scanned >= n and reports[-1].liquidatable == 0
        ), "accounts unhealthy before the crash"
        self.log(
            f"keeper: index of {indexed} accounts synced in {sync_s:.2f} s; scan {scan_only_s:.3f} s; "
            f"dry-run pass {scan_pass_s:.3f} s"
        )

        live = self.Keeper(web3, s.engine.address, self.LocalSigner(bot.key), **common)
        live.sync_accounts()
        s.set_price(self.op, "ETH", CRASH)
        c.quiesce()
        health = s.view(s.engine, "healthOf", [t.address for t in traders])
        liquidatable = sum(1 for h in health if h[5] and h[2] < h[4])
        bankrupt = sum(1 for h in health if h[5] and h[2] < 0)
        self.log(
            f"keeper: crash to 1,750: {liquidatable} of {n} liquidatable ({bankrupt} bankrupt); liquidating"
        )

        started = time.perf_counter()
        finished = started
        passes, confirmed, failed, lost, batches = 0, 0, 0, 0, 0
        hashes: list[str] = []
        while passes < 20:
            report = live.run_once()
            passes += 1
            confirmed += len(report.liquidated)
            batches += report.batches
            failed += report.failed
            lost += report.lost_races
            hashes += report.tx_hashes
            if report.confirmed:
                finished = time.perf_counter()
            if report.liquidatable == 0 or (report.sent == 0 and report.confirmed == 0):
                break
        liquidate_all_s = finished - started
        still = [
            t.address
            for t, h in zip(traders, s.view(s.engine, "healthOf", [t.address for t in traders]), strict=True)
            if h[5]
        ]
        receipts = [
            r
            for i in range(0, len(hashes), 500)
            for r in c.batch([("eth_getTransactionReceipt", [h]) for h in hashes[i : i + 500]])
        ]
        gas = [int(r["gasUsed"], 16) for r in receipts]
        topic = "0x" + keccak(text=LIQUIDATED).hex()
        # Each transaction's gas shared out over the accounts it liquidated.
        per_account = [
            g / n
            for g, r in zip(gas, receipts, strict=True)
            if (n := sum(1 for log in r["logs"] if log["topics"] and log["topics"][0] == topic))
        ]
        self.log(
            f"keeper: {confirmed} liquidations in {liquidate_all_s:.1f} s over {passes} pass(es), "
            f"{len(hashes)} transactions ({batches} liquidateMany batches); "
            f"{failed} failed, {len(still)} accounts still hold positions"
        )
        return {
            "keeper": {
                "scan_1000_s": round(scan_pass_s, 4),
                "scan_only_1000_s": round(scan_only_s, 4),
                "cold_sync_1000_s": round(sync_s, 4),
                "liquidate_all_1000_s": round(liquidate_all_s, 3),
                "liquidations_per_s": round(confirmed / liquidate_all_s, 2) if liquidate_all_s else None,
                "accounts": n,
                "liquidatable_after_crash": liquidatable,
                "bankrupt_after_crash": bankrupt,
                "liquidated": confirmed,
                "failed": failed,
                "lost_races": lost,
                "passes": passes,
                "left_with_positions": len(still),
                # Per liquidated account (the batch's gas shared out), as before batching.
                "liquidation_gas_mean": round(sum(gas) / confirmed) if gas and confirmed else None,
                "liquidation_gas_max": round(max(per_account)) if per_account else None,
                "batch_size": getattr(live, "batch_size", None),
                "max_in_flight": getattr(live, "max_in_flight", None),
                "transactions": len(hashes),
                "liquidate_many_batches": batches,
                "gas_budget": live.gas_model.budget,
                "transaction_gas_mean": round(statistics.mean(gas)) if gas else None,
                "transaction_gas_max": max(gas) if gas else None,
            }
        }
