"""Several RPC URLs behind one web3.py provider, with failover and health checks (issue #18).

``Web3(FailoverProvider([primary, backup, ...], chain_id=...))`` is used as the keeper's client
instead of ``Web3(HTTPProvider(url))``. The policy:

- **Order is preference.** Requests go to :attr:`FailoverProvider.active`, the first healthy
  endpoint in the configured order. Once the primary is healthy again it is preferred again.
- **Transport failures fail over.** A request that fails on the transport (connection refused or
  dropped, timeout, HTTP 5xx / 408 / 425 / 429, an HTTP 401 / 403 / 404 of an endpoint that
  refuses us, a garbled body) counts ``errors += 1`` on that endpoint, marks it unhealthy and is
  sent again to the next endpoint: the healthy ones in order, then the unhealthy ones in order,
  each at most once per request. When every endpoint failed, ``requests.ConnectionError("every RPC
  endpoint is down: <label>: <error>; ...")`` is raised, which ``backstop.chain.rpc.Retrier``
  treats as transient and backs off from. Sending to unhealthy endpoints when nothing else
  answers is how a recovered node is noticed on the next call rather than at the next check.
- **A JSON-RPC error is an answer.** A revert, "nonce too low" or any other ``error`` object is
  returned untouched, never a failover (a re-sent ``eth_sendRawTransaction`` after a transport
  failure is the sender's business: it recovers "already known" / "nonce too low" by hash).
- **Health checks.** :meth:`FailoverProvider.check` (the keeper calls it at start; requests call
  it every ``health_interval`` seconds of ``clock``, and on the first request if it never ran)
  asks every endpoint ``eth_chainId`` and ``eth_blockNumber`` with ``probe_timeout``. An endpoint
  on another chain than ``chain_id`` (when None: the chain of the first endpoint that answers) is
  excluded for good. One that fails is down; one whose head is more than ``max_lag_blocks`` behind
  the best head of the check is lagging; both are unhealthy until a check finds them well again.
  An endpoint whose chain id was never read (down at every check so far) is asked ``eth_chainId``
  before the first request it gets.
- **Secrets stay out of events.** Every event names an endpoint by its ``label``
  (:func:`backstop.chain.node.hide_secrets`, the query string dropped too), and errors are
  described by their kind (``HTTP 503``, ``timeout``), never by ``str(err)``, which carries the URL.

Events go to ``on_event(level, event, **fields)``: ``rpc_endpoint_excluded url chain_id expected``
(WARNING), ``rpc_endpoint_down url error`` (WARNING), ``rpc_endpoint_lagging url head best``
(WARNING), ``rpc_endpoint_up url head`` (INFO), ``rpc_failover from to reason`` (WARNING, reason
``request`` or ``check``). Down, lagging and up are logged on transitions only. Pure HTTP through
web3's ``HTTPProvider`` (its own retries off: failing over is faster); no threads, and a lock
around the endpoint state so that metrics can be read from another thread.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from web3.providers import HTTPProvider, JSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

from backstop.chain.node import hide_secrets
from backstop.chain.rpc import is_transient

#: HTTP statuses of an endpoint that refuses us (bad key, wrong path): another endpoint may not.
_REFUSED_STATUSES = (401, 403, 404)
_UP, _DOWN, _LAGGING = "up", "down", "lagging"


@dataclass
class Endpoint:
    """One configured RPC URL and what the provider knows of it."""

    url: str  # as configured
    label: str  # the URL without credentials, path or query: the only form that is logged
    healthy: bool = True
    excluded: str | None = None  # permanent reason (wrong chain id): never used again
    errors: int = 0  # transport failures of requests and failed probes on this endpoint
    head: int | None = None  # last eth_blockNumber seen by the health check
    last_error: str | None = None


class AllEndpointsExcluded(Exception):
    """Every endpoint was excluded (another chain): a configuration error, not worth retrying."""


class _BadAnswer(Exception):
    """A probe's answer was a JSON-RPC error or unreadable (the message is safe to log)."""


def endpoint_label(url: str) -> str:
    """``url`` as it may be logged: :func:`hide_secrets` after dropping the query and fragment
    (hosted RPCs also carry keys as ``?apikey=``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss"):  # hide_secrets leaves those as they are
        host = f"{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
        return f"{parts.scheme}://{host}" + ("/[hidden]" if url.split("://", 1)[1] != host else "")
    path = "" if parts.path == "/" else parts.path
    label = hide_secrets(urlunsplit(parts._replace(path=path, query="", fragment="")))
    if (parts.query or parts.fragment) and not parts.path.strip("/"):
        label = f"{label.rstrip('/')}/[hidden]"
    return label


def short_error(err: BaseException) -> str:
    """A failure's kind, without the URL that ``str(err)`` of requests' errors carries."""
    if isinstance(err, _BadAnswer):
        return str(err)
    if isinstance(err, requests.HTTPError):
        return f"HTTP {err.response.status_code}" if err.response is not None else "HTTP error"
    if isinstance(err, requests.Timeout):
        return "timeout"
    if isinstance(err, requests.ConnectionError):
        return "connection refused" if "refused" in str(err).lower() else "connection error"
    if isinstance(err, json.JSONDecodeError):
        return "bad JSON response"
    return type(err).__name__


def is_endpoint_failure(err: BaseException) -> bool:
    """Whether ``err`` (raised by an endpoint's ``HTTPProvider``) is the endpoint's failure, worth
    another endpoint: transport and availability errors, and HTTP statuses of refusal."""
    if isinstance(err, requests.HTTPError):
        status = err.response.status_code if err.response is not None else 0
        return is_transient(err) or status in _REFUSED_STATUSES
    return is_transient(err) or isinstance(err, requests.RequestException)


def _log_event(level: int, event: str, **fields: Any) -> None:
    """The default ``on_event``: one ``keeper <event> k=v ...`` line, as the keeper's own."""
    parts = []
    for key, value in fields.items():
        text = str(value)
        parts.append(f"{key}={json.dumps(text) if not text or ' ' in text else text}")
    logging.getLogger("backstop.keeper").log(level, "keeper %s %s", event, " ".join(parts))


def _validated(urls: Sequence[str]) -> list[str]:
    if isinstance(urls, str):
        urls = [urls]
    urls = list(urls)
    if not urls:
        raise ValueError("FailoverProvider needs at least one RPC URL")
    seen: set[str] = set()
    for url in urls:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            shown = endpoint_label(url) if isinstance(url, str) and "://" in url else repr(url)
            raise ValueError(f"RPC URL {shown} is not an http(s) URL")
        if url.rstrip("/") in seen:
            raise ValueError(f"RPC URL {endpoint_label(url)} is given twice")
        seen.add(url.rstrip("/"))
    return urls


def _labels(urls: list[str]) -> list[str]:
    """Each URL's label; labels that would collide (two keys on one host) get ``#<position>``."""
    labels = [endpoint_label(url) for url in urls]
    return [f"{lab}#{i + 1}" if labels.count(lab) > 1 else lab for i, lab in enumerate(labels)]


class FailoverProvider(JSONBaseProvider):
    """A web3.py provider over several HTTP(S) RPC URLs (the policy is the module's docstring)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        chain_id: int | None = None,
        timeout: float = 10.0,
        health_interval: float = 5.0,
        max_lag_blocks: int = 5,
        probe_timeout: float | None = None,
        on_event: Callable[..., None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        urls = _validated(urls)
        if timeout <= 0 or health_interval < 0 or max_lag_blocks < 0:
            raise ValueError("timeout must be > 0, health_interval and max_lag_blocks ≥ 0")
        self.chain_id = chain_id
        self.health_interval = health_interval
        self.max_lag_blocks = max_lag_blocks
        self.on_event = on_event or _log_event
        self.clock = clock
        self.endpoints = [Endpoint(url, label) for url, label in zip(urls, _labels(urls), strict=True)]
        probe_timeout = min(timeout, 2.0) if probe_timeout is None else probe_timeout

        def http(url: str, seconds: float) -> HTTPProvider:
            # web3's own retries (5, with backoff) would delay every failover by ~2 s.
            return HTTPProvider(url, request_kwargs={"timeout": seconds}, exception_retry_configuration=None)

        self._http = [http(url, timeout) for url in urls]
        self._probes = [http(url, probe_timeout) for url in urls]
        self._state = [_UP] * len(urls)
        self._chain_read = [False] * len(urls)  # eth_chainId answered and matched
        self._active = 0
        self._checked_at: float | None = None
        self._lock = threading.RLock()

    def __str__(self) -> str:
        return f"FailoverProvider({', '.join(e.label for e in self.endpoints)})"

    __repr__ = __str__

    @property
    def active(self) -> Endpoint:
        """The endpoint requests go to now."""
        with self._lock:
            return self.endpoints[self._active]

    # -- health checks --

    def check(self) -> list[Endpoint]:
        """Probes every endpoint not excluded now (``eth_chainId``, then ``eth_blockNumber``),
        updates their state and :attr:`active`, and returns the healthy endpoints in order."""
        with self._lock:
            self._checked_at = self.clock()
            todo = [i for i, e in enumerate(self.endpoints) if e.excluded is None]
        answers: dict[int, tuple[int, int] | BaseException] = {}
        for i in todo:  # the network outside the lock: metrics readers never wait on it
            answers[i] = self._probe(i)
        with self._lock:
            for i in todo:
                answer = answers[i]
                if isinstance(answer, BaseException):
                    self._failed(i, answer)
                else:
                    self._chain_matches(i, answer[0])
            heads = {
                i: a[1] for i, a in answers.items() if not isinstance(a, BaseException) and self._usable(i)
            }
            best = max(heads.values(), default=0)
            for i, head in heads.items():
                self.endpoints[i].head = head
                if best - head > self.max_lag_blocks:
                    self._lagging(i, head, best)
                else:
                    self._up(i)
            self._choose_active("check")
            return [e for e in self.endpoints if e.healthy]

    def _probe(self, i: int) -> tuple[int, int] | BaseException:
        try:
            chain_id = self._ask(self._probes[i], "eth_chainId")
            return chain_id, self._ask(self._probes[i], "eth_blockNumber")
        except Exception as err:  # any failure of a probe means the endpoint is not usable
            return err

    @staticmethod
    def _ask(http: HTTPProvider, method: str) -> int:
        response = http.make_request(RPCEndpoint(method), [])
        if not isinstance(response, dict) or "result" not in response:
            error = response.get("error") if isinstance(response, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            raise _BadAnswer(f"{method} answered error {code}" if error else f"{method} unreadable answer")
        try:
            return int(response["result"], 16)
        except (TypeError, ValueError):
            raise _BadAnswer(f"{method} unreadable answer") from None

    def _maybe_check(self) -> None:
        with self._lock:
            due = self._checked_at is None or self.clock() - self._checked_at >= self.health_interval
            if due:
                self._checked_at = self.clock()  # another thread will not check at the same time
        if due:
            self.check()

    # -- state transitions (under the lock) --

    def _usable(self, i: int) -> bool:
        return self.endpoints[i].excluded is None

    def _chain_matches(self, i: int, chain_id: int) -> bool:
        """Sets the expected chain id from the first answer, excludes ``i`` if it differs."""
        if self.chain_id is None:
            self.chain_id = chain_id
        endpoint = self.endpoints[i]
        if chain_id == self.chain_id:
            self._chain_read[i] = True
            return True
        endpoint.excluded = f"chain id {chain_id}, expected {self.chain_id}"
        endpoint.healthy = False
        self.on_event(
            logging.WARNING,
            "rpc_endpoint_excluded",
            url=endpoint.label,
            chain_id=chain_id,
            expected=self.chain_id,
        )
        return False

    def _failed(self, i: int, err: BaseException) -> None:
        endpoint = self.endpoints[i]
        endpoint.errors += 1
        endpoint.healthy = False
        endpoint.last_error = short_error(err)
        if self._state[i] != _DOWN:
            self._state[i] = _DOWN
            self.on_event(logging.WARNING, "rpc_endpoint_down", url=endpoint.label, error=endpoint.last_error)

    def _lagging(self, i: int, head: int, best: int) -> None:
        endpoint = self.endpoints[i]
        endpoint.healthy = False
        if self._state[i] != _LAGGING:
            self._state[i] = _LAGGING
            self.on_event(logging.WARNING, "rpc_endpoint_lagging", url=endpoint.label, head=head, best=best)

    def _up(self, i: int) -> None:
        endpoint = self.endpoints[i]
        endpoint.healthy = True
        if self._state[i] != _UP:
            self._state[i] = _UP
            self.on_event(logging.INFO, "rpc_endpoint_up", url=endpoint.label, head=endpoint.head)

    def _choose_active(self, reason: str) -> None:
        """After a check: the first healthy endpoint, else the current one if still usable, else
        the first usable one."""
        healthy = [i for i, e in enumerate(self.endpoints) if e.healthy]
        usable = [i for i in range(len(self.endpoints)) if self._usable(i)]
        if healthy:
            self._switch(healthy[0], reason)
        elif usable and self._active not in usable:
            self._switch(usable[0], reason)

    def _switch(self, i: int, reason: str) -> None:
        if i != self._active:
            previous, self._active = self._active, i
            self.on_event(
                logging.WARNING,
                "rpc_failover",
                **{"from": self.endpoints[previous].label, "to": self.endpoints[i].label, "reason": reason},
            )

    # -- requests --

    def _order(self) -> list[int]:
        """Where a request may go, in turn: the healthy endpoints, then the unhealthy ones."""
        with self._lock:
            usable = [i for i in range(len(self.endpoints)) if self._usable(i)]
            return [i for i in usable if self.endpoints[i].healthy] + [
                i for i in usable if not self.endpoints[i].healthy
            ]

    def _send(self, call: Callable[[HTTPProvider], Any]) -> Any:
        self._maybe_check()
        failures: list[str] = []
        order = self._order()
        if not order:
            raise AllEndpointsExcluded(
                "every RPC endpoint is excluded: "
                + "; ".join(f"{e.label}: {e.excluded}" for e in self.endpoints)
            )
        for i in order:
            label = self.endpoints[i].label
            try:
                if not self._chain_read[i]:  # never probed successfully: its chain first
                    chain_id = self._ask(self._probes[i], "eth_chainId")
                    with self._lock:
                        if not self._chain_matches(i, chain_id):
                            failures.append(f"{label}: excluded ({self.endpoints[i].excluded})")
                            continue
                response = call(self._http[i])
            except Exception as err:
                if not (is_endpoint_failure(err) or isinstance(err, _BadAnswer)):
                    raise  # ours, not the endpoint's (an unserializable parameter...)
                with self._lock:
                    self._failed(i, err)
                failures.append(f"{label}: {short_error(err)}")
                continue
            with self._lock:
                if not self.endpoints[i].healthy:
                    self._up(i)  # it answered: usable again until a check says otherwise
                self._switch(i, "request")
            return response
        with self._lock:
            self._choose_active("request")  # never left on an endpoint excluded meanwhile
        raise requests.ConnectionError(f"every RPC endpoint is down: {'; '.join(failures)}")

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        """``method(params)`` on the active endpoint, failing over on transport failures."""
        return self._send(lambda http: http.make_request(method, params))

    def make_batch_request(
        self, batch_requests: list[tuple[RPCEndpoint, Any]]
    ) -> list[RPCResponse] | RPCResponse:
        """A JSON-RPC batch, with the same failover as :meth:`make_request` (the keeper's book
        reads use batches)."""
        return self._send(lambda http: http.make_batch_request(batch_requests))

    def snapshot(self) -> list[Endpoint]:
        """Copies of the endpoints, consistent with each other (for metrics in another thread)."""
        with self._lock:
            return [Endpoint(**vars(e)) for e in self.endpoints]
