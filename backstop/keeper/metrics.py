"""The keeper's Prometheus metrics and health endpoint (docs/keeper.md §"Metrics and health").

The keeper's thread publishes a :class:`Status` after every pass and every head poll
(:meth:`Monitor.update`); the HTTP thread only reads the latest one, so a scrape never sees a
pass half done. :class:`KeeperCollector` turns it into metric families at scrape time (so
counters are the keeper's own cumulative counts, never a second tally), and :func:`health`
decides ``/health``:

- **live**: the loop is turning: a head poll or a pass ended less than ``live_timeout`` seconds
  ago (a wedged process fails it; an orchestrator restarts it);
- **ready**: live, the node answers, at least one pass completed, the newest block is at most
  ``max_head_age`` seconds old (0: not checked) and no market's oracle price is stale or
  unreadable.

``/metrics`` is prometheus-client's exposition; ``/health`` and ``/health/ready`` answer 200 when
ready and 503 otherwise, ``/health/live`` 200 when live; each with a JSON body naming every check.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from http.server import ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import MetricsHandler

from backstop.units import WAD

#: Seconds without a head poll or a finished pass after which ``/health/live`` fails.
DEFAULT_LIVE_TIMEOUT = 300.0

#: Cumulative counters of ``Keeper.counters`` exported as ``backstop_keeper_<name>_total``.
COUNTERS = {
    "passes": "Passes completed.",
    "scanned": "Account health reads, summed over passes.",
    "liquidatable": "Liquidatable accounts seen, summed over passes.",
    "sent": "Transactions sent.",
    "confirmed": "Transactions mined successfully.",
    "liquidated": "Accounts liquidated whole by this keeper.",
    "partial_steps": "Partial liquidation steps mined.",
    "failed": "Liquidations that failed (dry run, send, receipt or revert).",
    "lost_races": "Accounts a competitor (or a price move) took first.",
    "unprofitable": "Liquidations skipped because the reward was below the gas cost at the fee cap.",
    "rpc_retries": "JSON-RPC calls retried after a transport failure.",
}


@dataclass(frozen=True)
class Status:
    """What the keeper last knew, as plain values (WAD amounts for the book)."""

    started: float = 0.0  # clock() at start
    heartbeat: float = 0.0  # clock() of the last head poll or pass end
    node_up: bool = False
    node_error: str | None = None
    head: int | None = None
    head_timestamp: int | None = None  # the head block's timestamp (unix seconds)
    accounts_indexed: int = 0
    last_scanned: int = 0
    last_liquidatable: int = 0
    lag_blocks: int = 0
    last_pass_at: float | None = None  # wall time (unix seconds) of the last completed pass
    counters: dict[str, int] = field(default_factory=dict)
    stale_markets: dict[str, str] = field(default_factory=dict)
    markets: tuple[str, ...] = ()
    own: dict[str, int] | None = None  # equity, imr, mmr, free, notional (WAD)
    own_buffer_low: bool = False


def own_values(risk: Any) -> dict[str, int] | None:
    """The exported fields of a ``backstop.keeper.risk.OwnRisk`` (None stays None)."""
    if risk is None:
        return None
    return {k: getattr(risk, k) for k in ("equity", "imr", "mmr", "free", "notional")}


class Monitor:
    """The latest :class:`Status`, swapped whole under a lock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        self._status = Status(started=now, heartbeat=now)

    @property
    def status(self) -> Status:
        with self._lock:
            return self._status

    def update(self, **changes: Any) -> Status:
        """A new status with ``changes`` and a fresh heartbeat."""
        with self._lock:
            self._status = replace(self._status, heartbeat=self._clock(), **changes)
            return self._status

    def clock(self) -> float:
        return self._clock()


def health(
    status: Status,
    *,
    now: float,
    wall: float,
    max_head_age: float,
    live_timeout: float = DEFAULT_LIVE_TIMEOUT,
) -> dict[str, Any]:
    """``{"live", "ready", "checks", "problems"}`` at monotonic ``now`` and unix time ``wall``."""
    problems: list[str] = []
    since = now - status.heartbeat
    live = since <= live_timeout
    if not live:
        problems.append(f"no head poll or pass for {since:.0f} s (> {live_timeout:.0f} s)")
    if not status.node_up:
        problems.append(f"node down: {status.node_error or 'not reached yet'}")
    if status.last_pass_at is None:
        problems.append("no pass completed yet")
    head_age = None if status.head_timestamp is None else max(wall - status.head_timestamp, 0.0)
    if max_head_age > 0 and head_age is not None and head_age > max_head_age:
        problems.append(f"head {status.head} is {head_age:.0f} s old (> {max_head_age:.0f} s)")
    if status.stale_markets:
        problems.append("stale oracle: " + ",".join(sorted(status.stale_markets)))
    checks = {
        "node": "up" if status.node_up else "down",
        "head": status.head,
        "head_age_s": None if head_age is None else round(head_age, 1),
        "last_pass_age_s": None if status.last_pass_at is None else round(wall - status.last_pass_at, 1),
        "stale_markets": sorted(status.stale_markets),
        "own_buffer_low": status.own_buffer_low,
    }
    return {"live": live, "ready": live and not problems, "checks": checks, "problems": problems}


class KeeperCollector:
    """A prometheus-client collector over the monitor's status and the RPC endpoints
    (``endpoints()``: objects with ``label``, ``errors``, ``healthy``)."""

    def __init__(self, monitor: Monitor, endpoints: Callable[[], Sequence[Any]] = list) -> None:
        self.monitor = monitor
        self.endpoints = endpoints

    def collect(self) -> Iterable[Any]:
        s = self.monitor.status
        for name, help_text in COUNTERS.items():
            c = CounterMetricFamily(f"backstop_keeper_{name}", help_text)
            c.add_metric([], s.counters.get(name, 0))
            yield c
        yield _gauge("accounts_indexed", "Accounts in the keeper's index.", s.accounts_indexed)
        yield _gauge("accounts_scanned", "Accounts scanned in the last pass.", s.last_scanned)
        yield _gauge("accounts_liquidatable", "Liquidatable accounts in the last pass.", s.last_liquidatable)
        yield _gauge("head_lag_blocks", "Blocks the chain moved on while the last pass ran.", s.lag_blocks)
        yield _gauge("head_block", "The newest block the keeper saw.", s.head or 0)
        yield _gauge("node_up", "1 while an RPC endpoint answers.", int(s.node_up))
        yield _gauge(
            "last_success_timestamp_seconds", "Unix time of the last completed pass.", s.last_pass_at or 0
        )
        stale = GaugeMetricFamily(
            "backstop_keeper_oracle_stale",
            "1 while a market's price is stale or unreadable.",
            labels=["market"],
        )
        for market in sorted(set(s.markets) | set(s.stale_markets)):
            stale.add_metric([market], int(market in s.stale_markets))
        yield stale
        yield _gauge("stale_markets", "Markets whose price was stale or unreadable.", len(s.stale_markets))
        if s.own is not None:
            for key, help_text in (
                ("equity", "The keeper's equity (quote units)."),
                ("imr", "The keeper's initial margin requirement (quote units)."),
                ("mmr", "The keeper's maintenance margin requirement (quote units)."),
                ("free", "The keeper's free collateral (quote units)."),
                ("notional", "The keeper's gross notional (quote units)."),
            ):
                yield _gauge(f"own_{key}", help_text, s.own[key] / WAD)
            equity, imr = s.own["equity"], s.own["imr"]
            # NaN-free: 0 leverage without equity would read as "safe", so +Inf, as Prometheus allows.
            yield _gauge(
                "own_leverage",
                "Gross notional / equity.",
                s.own["notional"] / equity if equity > 0 else float("inf"),
            )
            yield _gauge(
                "own_buffer", "Free collateral / IMR.", s.own["free"] / imr if imr > 0 else float("inf")
            )
        yield _gauge("own_buffer_low", "1 while free collateral < min_buffer × IMR.", int(s.own_buffer_low))
        errors = CounterMetricFamily(
            "backstop_keeper_rpc_errors", "Transport failures per RPC endpoint.", labels=["endpoint"]
        )
        up = GaugeMetricFamily(
            "backstop_keeper_rpc_endpoint_up", "1 while the endpoint is healthy.", labels=["endpoint"]
        )
        for e in self.endpoints():
            errors.add_metric([e.label], e.errors)
            up.add_metric([e.label], int(e.healthy))
        yield errors
        yield up


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"backstop_keeper_{name}", help_text, value=value)


class MetricsServer:
    """``/metrics``, ``/health``, ``/health/live`` and ``/health/ready`` on ``host:port`` (port 0: a
    free one, see :attr:`port`), served by a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        monitor: Monitor,
        host: str,
        port: int,
        *,
        max_head_age: float,
        endpoints: Callable[[], Sequence[Any]] = list,
        live_timeout: float = DEFAULT_LIVE_TIMEOUT,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(KeeperCollector(monitor, endpoints))
        server = self

        class Handler(MetricsHandler.factory(self.registry)):  # type: ignore[misc]
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0].rstrip("/")
                if path == "/metrics":
                    return super().do_GET()
                if path in ("/health", "/health/ready", "/health/live"):
                    report = server.health()
                    ok = report["live"] if path == "/health/live" else report["ready"]
                    body = json.dumps({"status": "ok" if ok else "fail", **report}).encode()
                    self.send_response(200 if ok else 503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return None
                self.send_error(404, "try /metrics, /health, /health/live or /health/ready")
                return None

            def log_message(self, *args: Any) -> None:  # scrapes are not keeper events
                return None

        self.monitor = monitor
        self.max_head_age = max_head_age
        self.live_timeout = live_timeout
        self._wall = wall
        try:
            self._httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as err:
            raise OSError(f"cannot serve metrics on {host}:{port}: {err.strerror or err}") from err
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="keeper-metrics", daemon=True)
        self._thread.start()

    def health(self) -> dict[str, Any]:
        return health(
            self.monitor.status,
            now=self.monitor.clock(),
            wall=self._wall(),
            max_head_age=self.max_head_age,
            live_timeout=self.live_timeout,
        )

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
