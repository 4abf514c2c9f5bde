"""A small JSON-RPC proxy for keeper tests: records every request, and fails some on purpose.

``RpcProxy(upstream, fail_every=3)`` answers every third request with a failure, alternating
between an HTTP 502 (the request never reaches the node) and a dropped connection *after* the
node has executed the request (the answer is lost: a sent transaction is on chain, but its sender
does not know). ``drop_after_forward={"eth_sendRawTransaction": {0, 2}}`` additionally loses the
answers of the 1st and 3rd requests of that method. The failure pattern depends only on the
request sequence, so a test is deterministic.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests


@dataclass
class Exchange:
    """One JSON-RPC request through the proxy (batches are recorded per call)."""

    index: int
    method: str
    params: Any
    response: Any = None  # the node's JSON answer (None if it was never forwarded)
    failure: str | None = None  # "502", "drop" or None

    @property
    def error(self) -> Any:
        return self.response.get("error") if isinstance(self.response, dict) else None


@dataclass
class RpcProxy:
    upstream: str
    fail_every: int = 0
    drop_after_forward: dict[str, set[int]] = field(default_factory=dict)
    max_log_range: int | None = None  # refuse eth_getLogs spanning more blocks, as hosted nodes do
    exchanges: list[Exchange] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._failures = 0
        self._per_method: dict[str, int] = {}
        self._local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: without this, Nagle's algorithm and the
                # client's delayed ACK add ~40 ms to every request.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy._handle(self, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> RpcProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- what happened -------------------------------------------------------------------------------

    def calls(self, method: str) -> list[Exchange]:
        with self._lock:
            return [e for e in self.exchanges if e.method == method]

    @property
    def failures(self) -> list[Exchange]:
        with self._lock:
            return [e for e in self.exchanges if e.failure]

    # --- the proxy -----------------------------------------------------------------------------------

    def _too_wide(self, params: Any) -> bool:
        query = params[0]
        start = int(query.get("fromBlock", "0x0"), 16)
        end = query.get("toBlock", "latest")
        return end == "latest" or int(end, 16) - start + 1 > self.max_log_range

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        payload = json.loads(body)
        first = payload[0] if isinstance(payload, list) and payload else payload
        method = first.get("method", "?") if isinstance(first, dict) else "?"
        with self._lock:
            self._count += 1
            occurrence = self._per_method.get(method, 0)
            self._per_method[method] = occurrence + 1
            exchange = Exchange(self._count, method, first.get("params") if isinstance(first, dict) else None)
            self.exchanges.append(exchange)
            failure = None
            if self.fail_every and self._count % self.fail_every == 0:
                self._failures += 1
                failure = "502" if self._failures % 2 else "drop"
            elif occurrence in self.drop_after_forward.get(method, set()):
                failure = "drop"
            exchange.failure = failure

        if method == "eth_getLogs" and self.max_log_range is not None and self._too_wide(exchange.params):
            error = {"code": -32005, "message": f"query exceeds max block range {self.max_log_range}"}
            exchange.response = {"error": error}
            self._reply(handler, 200, {"jsonrpc": "2.0", "id": first.get("id"), "error": error})
            return
        if failure == "502":
            handler.send_response(502)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        try:
            answer = self._session().post(
                self.upstream, data=body, headers={"Content-Type": "application/json"}, timeout=60
            )
        except requests.RequestException:
            handler.send_response(502)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        try:
            exchange.response = answer.json()
        except ValueError:
            exchange.response = None
        if failure == "drop":
            # The node executed the request; its answer is lost with the connection.
            handler.close_connection = True
            return
        handler.send_response(answer.status_code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(answer.content)))
        handler.end_headers()
        handler.wfile.write(answer.content)
