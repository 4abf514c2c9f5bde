"""Retrying JSON-RPC calls with exponential backoff, and the classification behind it.

Only failures of the transport or of the node's availability are retried (connection refused or
dropped, timeouts, HTTP 5xx / 429, "rate limit"-style JSON-RPC errors). A revert is an answer, not
a failure: it is never retried. A node that keeps failing past ``max_retries`` raises
``RpcUnavailable``, which the keeper's loop catches and backs off from.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TypeVar

import requests
from web3.exceptions import (
    BadResponseFormat,
    ContractLogicError,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    TooManyRequests,
    Web3RPCError,
)

T = TypeVar("T")

# JSON-RPC error messages of nodes and hosted providers that mean "try again later".
_TRANSIENT_MESSAGES = (
    "rate limit",
    "too many requests",
    "timeout",
    "timed out",
    "temporarily unavailable",
    "header not found",
    "service unavailable",
    "bad gateway",
    "try again",
    "connection reset",
    "upstream",
    "blockoutofrange",  # anvil --prune-history answering for a block it is still writing
)


def _event(event: str, **fields: object) -> dict[str, object]:
    """The ``extra`` of a keeper event record (its name and fields, for JSON log lines)."""
    return {"keeper_event": event, "keeper_fields": fields}


class RpcUnavailable(Exception):
    """The node kept failing after every retry; the last error is chained."""


def rpc_message(err: BaseException) -> str:
    """The node's error message of a JSON-RPC error (or ``str(err)``), lower-cased."""
    if isinstance(err, Web3RPCError) and isinstance(err.rpc_response, dict):
        error = err.rpc_response.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"]).lower()
    return str(err).lower()


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` is a transport or availability failure worth retrying."""
    if isinstance(err, ContractLogicError):
        return False  # a revert is the chain's answer
    if isinstance(err, requests.HTTPError):
        status = err.response.status_code if err.response is not None else 0
        return status >= 500 or status in (408, 425, 429)
    if isinstance(
        err,
        requests.ConnectionError
        | requests.Timeout
        | ConnectionError
        | TimeoutError
        | ProviderConnectionError
        | TooManyRequests
        | RequestTimedOut
        | TimeExhausted,
    ):
        return True
    if isinstance(err, Web3RPCError):
        return any(m in rpc_message(err) for m in _TRANSIENT_MESSAGES)
    # A truncated or garbled response body (a proxy that cut the connection mid-body).
    return isinstance(err, BadResponseFormat | json.JSONDecodeError)


class Retrier:
    """Calls a function, retrying transient RPC failures with exponential backoff.

    The delay before retry ``n`` (1-based) is ``min(base_delay · 2^(n−1), max_delay)``; there are
    at most ``max_retries`` retries. ``retries`` counts every retry made, for the keeper's
    counters.
    """

    def __init__(
        self,
        max_retries: int = 5,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        logger: logging.Logger | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.logger = logger or logging.getLogger("backstop.rpc")
        self.sleep = sleep
        self.retries = 0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return min(self.base_delay * 2 ** (attempt - 1), self.max_delay)

    def call(self, what: str, fn: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as err:
                if not is_transient(err):
                    raise
                attempt += 1
                if attempt > self.max_retries:
                    self.logger.error(
                        "keeper rpc_unavailable call=%s attempts=%d error=%s",
                        what,
                        attempt,
                        type(err).__name__,
                        extra=_event(
                            "rpc_unavailable", call=what, attempts=attempt, error=type(err).__name__
                        ),
                    )
                    raise RpcUnavailable(f"{what}: still failing after {self.max_retries} retries") from err
                self.retries += 1
                wait = self.delay(attempt)
                self.logger.warning(
                    "keeper rpc_retry call=%s attempt=%d delay_ms=%d error=%s",
                    what,
                    attempt,
                    int(wait * 1000),
                    type(err).__name__,
                    extra=_event(
                        "rpc_retry",
                        call=what,
                        attempt=attempt,
                        delay_ms=int(wait * 1000),
                        error=type(err).__name__,
                    ),
                )
                self.sleep(wait)
