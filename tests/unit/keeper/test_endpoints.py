"""FailoverProvider (backstop.keeper.endpoints) against small local JSON-RPC servers: failover on
transport failures, health checks (down, lagging, wrong chain, recovery), answers that are not
failures, and no secret of a URL in any event. Pure: no anvil, a fake clock."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from web3 import Web3
from web3.exceptions import ContractLogicError

from backstop.chain.rpc import Retrier, RpcUnavailable
from backstop.keeper.endpoints import (
    AllEndpointsExcluded,
    FailoverProvider,
    endpoint_label,
    is_endpoint_failure,
)
from tests.support.anvil import free_port


class Node:
    """A fake node: ``mode`` is ``up``, ``503``, ``slow`` (answers after ``delay`` s), ``garbage``
    (HTTP 200 with HTML) or ``401``; every request's methods are recorded in ``calls``."""

    def __init__(self, chain_id: int = 1, head: int = 100) -> None:
        self.chain_id = chain_id
        self.head = head
        self.mode = "up"
        self.delay = 0.0
        self.calls: list[str] = []
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                batch = body if isinstance(body, list) else [body]
                node.calls.extend(r["method"] for r in batch)
                if node.mode == "slow":
                    time.sleep(node.delay)
                if node.mode in ("503", "401"):
                    self._reply(int(node.mode), b"unavailable")
                elif node.mode == "garbage":
                    self._reply(200, b"<html>bad gateway</html>")
                else:
                    answers = [node.answer(r) for r in batch]
                    self._reply(200, json.dumps(answers if isinstance(body, list) else answers[0]).encode())

            def _reply(self, status: int, data: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # a client that timed out (the "slow" mode) is gone

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        method, rid = request["method"], request["id"]
        if method == "eth_chainId":
            return {"jsonrpc": "2.0", "id": rid, "result": hex(self.chain_id)}
        if method == "eth_blockNumber":
            return {"jsonrpc": "2.0", "id": rid, "result": hex(self.head)}
        if method == "eth_call":
            return {
                "jsonrpc": "2.0",
                "id": rid,
                "error": {"code": 3, "message": "execution reverted", "data": "0x12345678"},
            }
        if method == "eth_sendRawTransaction":
            return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32000, "message": "nonce too low"}}
        return {"jsonrpc": "2.0", "id": rid, "result": "0x0"}

    def served(self, method: str) -> int:
        return self.calls.count(method)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def nodes() -> Iterator[Any]:
    made: list[Node] = []

    def make(**kwargs: Any) -> Node:
        made.append(Node(**kwargs))
        return made[-1]

    yield make
    for node in made:
        node.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def provider(urls: list[str], **kwargs: Any) -> tuple[FailoverProvider, list[tuple[int, str, dict]], Clock]:
    events: list[tuple[int, str, dict]] = []
    clock = Clock()
    p = FailoverProvider(
        urls,
        on_event=lambda level, event, **fields: events.append((level, event, fields)),
        clock=clock,
        timeout=kwargs.pop("timeout", 2.0),
        **kwargs,
    )
    return p, events, clock


def names(events: list[tuple[int, str, dict]]) -> list[str]:
    return [e[1] for e in events]


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


# -- configuration --


@pytest.mark.parametrize(
    ("urls", "message"),
    [
        ([], "at least one RPC URL"),
        (["ws://127.0.0.1:8546"], "ws://127.0.0.1:8546 is not an http(s) URL"),
        (["127.0.0.1:8545"], "'127.0.0.1:8545' is not an http(s) URL"),
        (["http://a.example", "ftp://u:pw@b.example/k"], "ftp://b.example/[hidden] is not an http(s) URL"),
        (["http://a.example:8545", "http://a.example:8545/"], "http://a.example:8545 is given twice"),
    ],
)
def test_bad_url_lists_are_refused_naming_the_url(urls, message):
    with pytest.raises(ValueError, match="RPC URL" if urls else "at least") as err:
        FailoverProvider(urls)
    assert message in str(err.value)
    assert "pw" not in str(err.value)


def test_labels_hide_credentials_path_and_query_and_keep_two_keys_on_one_host_apart():
    assert endpoint_label("https://user:key@rpc.example/v2/KEY") == "https://rpc.example/[hidden]"
    assert endpoint_label("https://rpc.example?apikey=KEY") == "https://rpc.example/[hidden]"
    assert endpoint_label("http://127.0.0.1:8545") == endpoint_label("http://127.0.0.1:8545/")
    p = FailoverProvider(["https://rpc.example/v2/A", "https://rpc.example/v2/B", "http://127.0.0.1:8545"])
    assert [e.label for e in p.endpoints] == [
        "https://rpc.example/[hidden]#1",
        "https://rpc.example/[hidden]#2",
        "http://127.0.0.1:8545",
    ]
    assert endpoint_label("http://127.0.0.1:8545/") == "http://127.0.0.1:8545"
    assert "v2" not in str(p)


def test_endpoint_failures_are_transport_failures_and_refusals_not_bad_requests():
    def http_error(status: int) -> requests.HTTPError:
        response = requests.Response()
        response.status_code = status
        return requests.HTTPError(str(status), response=response)

    assert all(is_endpoint_failure(http_error(s)) for s in (500, 502, 503, 408, 429, 401, 403, 404))
    assert not is_endpoint_failure(http_error(400))
    assert is_endpoint_failure(requests.ConnectionError()) and is_endpoint_failure(requests.Timeout())
    assert not is_endpoint_failure(TypeError("not serializable"))


# -- failover on requests --


def test_transport_failure_fails_over_and_the_primary_is_preferred_again_once_it_recovers(nodes):
    a, b = nodes(head=100), nodes(head=100)
    p, events, clock = provider([a.url, b.url])
    w3 = Web3(p)
    assert w3.eth.block_number == 100  # the first request runs a check
    assert p.active is p.endpoints[0] and events == []
    assert a.served("eth_blockNumber") == 2 and b.served("eth_blockNumber") == 1  # probes + request

    a.mode = "503"
    b.head = 101
    assert w3.eth.block_number == 101
    assert (p.endpoints[0].errors, p.endpoints[0].healthy, p.endpoints[0].last_error) == (
        1,
        False,
        "HTTP 503",
    )
    assert p.endpoints[1].errors == 0 and p.active is p.endpoints[1]
    assert events == [
        (logging.WARNING, "rpc_endpoint_down", {"url": a.url, "error": "HTTP 503"}),
        (logging.WARNING, "rpc_failover", {"from": a.url, "to": b.url, "reason": "request"}),
    ]
    a_calls = len(a.calls)
    assert w3.eth.block_number == 101
    assert len(a.calls) == a_calls  # an unhealthy endpoint gets nothing while another is healthy

    a.mode, a.head = "up", 101
    clock.now += 4.9
    assert w3.eth.block_number == 101
    assert p.active is p.endpoints[1]  # no check before health_interval
    clock.now += 0.1
    b_requests = b.served("eth_blockNumber")
    assert w3.eth.block_number == 101
    assert names(events)[2:] == ["rpc_endpoint_up", "rpc_failover"]
    assert events[2][2] == {"url": a.url, "head": 101}
    assert events[3][2] == {"from": b.url, "to": a.url, "reason": "check"}
    assert p.active is p.endpoints[0] and p.endpoints[0].healthy
    assert b.served("eth_blockNumber") == b_requests + 1  # the check's probe only
    assert p.endpoints[0].errors == 1  # a recovery does not reset the counter


@pytest.mark.parametrize("failure", ["refused", "garbage", "401", "slow"])
def test_each_kind_of_transport_failure_fails_over(nodes, failure):
    a, b = nodes(), nodes()
    p, events, _ = provider([a.url, b.url], timeout=0.3, probe_timeout=0.3)
    assert p.check() == p.endpoints
    if failure == "refused":
        a.stop()  # nothing listens on its port any more
    else:
        a.mode, a.delay = failure, 1.0
    started = time.monotonic()
    assert Web3(p).eth.get_balance("0x" + "11" * 20) == 0
    assert time.monotonic() - started < 1.0
    expected = {"refused": "connection refused", "garbage": "bad JSON response", "401": "HTTP 401"}
    assert events == [
        (logging.WARNING, "rpc_endpoint_down", {"url": a.url, "error": expected.get(failure, "timeout")}),
        (logging.WARNING, "rpc_failover", {"from": a.url, "to": b.url, "reason": "request"}),
    ]
    assert [e.errors for e in p.endpoints] == [1, 0] and p.active is p.endpoints[1]
    assert b.served("eth_getBalance") == 1


def test_a_json_rpc_error_is_an_answer_not_a_failover(nodes):
    a, b = nodes(), nodes()
    p, events, _ = provider([a.url, b.url])
    w3 = Web3(p)
    with pytest.raises(ContractLogicError):
        w3.eth.call({"to": "0x" + "22" * 20, "data": "0x"})
    answer = p.make_request("eth_sendRawTransaction", ["0x01"])
    assert answer["error"] == {"code": -32000, "message": "nonce too low"}
    assert a.served("eth_call") == 1 and a.served("eth_sendRawTransaction") == 1
    assert b.served("eth_call") == 0 and b.served("eth_sendRawTransaction") == 0
    assert events == [] and [e.errors for e in p.endpoints] == [0, 0]


def test_every_endpoint_down_raises_a_transient_connection_error_naming_each_and_recovers(nodes):
    a, b = nodes(), nodes()
    c_url = dead_url()
    p, events, _ = provider([a.url, b.url, c_url])
    p.check()
    a.mode = b.mode = "503"
    with pytest.raises(requests.ConnectionError) as err:
        p.make_request("eth_blockNumber", [])
    assert str(err.value) == (
        f"every RPC endpoint is down: {a.url}: HTTP 503; {b.url}: HTTP 503; {c_url}: connection refused"
    )
    assert [e.errors for e in p.endpoints] == [1, 1, 2]  # c: at the check and at the request
    assert not any(e.healthy for e in p.endpoints)

    retrier = Retrier(max_retries=2, sleep=lambda s: None)
    with pytest.raises(RpcUnavailable):
        retrier.call("eth_blockNumber", lambda: p.make_request("eth_blockNumber", []))
    assert retrier.retries == 2
    assert [e.errors for e in p.endpoints] == [4, 4, 5]  # each endpoint once per attempt

    b.mode = "up"  # no check due: the next request still tries the endpoints in order
    assert p.make_request("eth_blockNumber", [])["result"] == hex(100)
    assert names(events)[-2:] == ["rpc_endpoint_up", "rpc_failover"]
    assert p.active is p.endpoints[1] and p.endpoints[1].healthy
    assert [e.errors for e in p.endpoints] == [5, 4, 5]  # c not needed


def test_batches_fail_over_too(nodes):
    a, b = nodes(), nodes(head=7)
    p, _, _ = provider([a.url, b.url])
    p.check()
    a.mode = "503"
    w3 = Web3(p)
    with w3.batch_requests() as batch:
        batch.add(w3.eth.get_block_number())
        batch.add(w3.eth.get_balance("0x" + "11" * 20))
        assert batch.execute() == [7, 0]
    assert p.endpoints[0].errors == 1 and p.active is p.endpoints[1]


# -- health checks --


def test_an_endpoint_on_another_chain_is_excluded_for_good(nodes):
    a, b, c = nodes(chain_id=1), nodes(chain_id=5), nodes(chain_id=1)
    p, events, clock = provider([a.url, b.url, c.url])  # chain id from the first that answers
    assert p.check() == [p.endpoints[0], p.endpoints[2]]
    assert p.chain_id == 1
    assert events == [
        (logging.WARNING, "rpc_endpoint_excluded", {"url": b.url, "chain_id": 5, "expected": 1}),
    ]
    assert p.endpoints[1].excluded == "chain id 5, expected 1" and not p.endpoints[1].healthy
    b.chain_id = 1
    a.mode = "503"
    clock.now += 10
    calls = len(b.calls)
    assert p.make_request("eth_blockNumber", [])["result"] == hex(100)
    assert len(b.calls) == calls  # never asked again, not even by the checks
    assert p.active is p.endpoints[2]
    c.mode = "503"
    with pytest.raises(requests.ConnectionError, match="every RPC endpoint is down") as err:
        p.make_request("eth_blockNumber", [])
    assert b.url not in str(err.value)

    wrong, _, _ = provider([a.url, c.url], chain_id=10)
    a.mode = c.mode = "up"
    assert wrong.check() == []
    with pytest.raises(AllEndpointsExcluded, match="chain id 1, expected 10"):
        wrong.make_request("eth_blockNumber", [])


def test_the_given_chain_id_wins_over_the_first_endpoint(nodes):
    a, b = nodes(chain_id=1), nodes(chain_id=5)
    p, events, _ = provider([a.url, b.url], chain_id=5)
    assert Web3(p).eth.chain_id == 5
    assert p.active is p.endpoints[1] and p.endpoints[0].excluded == "chain id 1, expected 5"
    assert names(events) == ["rpc_endpoint_excluded", "rpc_failover"]


def test_an_endpoint_never_probed_is_asked_its_chain_before_its_first_request(nodes):
    a, b = nodes(chain_id=1), nodes(chain_id=5)
    b.mode = "503"
    p, events, _ = provider([a.url, b.url])
    p.check()  # b down: its chain is unknown
    b.mode, a.mode = "up", "503"
    with pytest.raises(requests.ConnectionError) as err:
        p.make_request("eth_blockNumber", [])
    assert f"{b.url}: excluded (chain id 5, expected 1)" in str(err.value)
    assert b.served("eth_blockNumber") == 0  # only eth_chainId was asked
    assert names(events) == ["rpc_endpoint_down", "rpc_endpoint_down", "rpc_endpoint_excluded"]


def test_a_lagging_endpoint_is_skipped_until_it_catches_up(nodes):
    a, b = nodes(head=100), nodes(head=106)
    p, events, clock = provider([a.url, b.url], max_lag_blocks=5)
    assert p.check() == [p.endpoints[1]]
    assert events == [
        (logging.WARNING, "rpc_endpoint_lagging", {"url": a.url, "head": 100, "best": 106}),
        (logging.WARNING, "rpc_failover", {"from": a.url, "to": b.url, "reason": "check"}),
    ]
    assert p.active is p.endpoints[1] and p.endpoints[0].head == 100 and p.endpoints[0].errors == 0
    assert Web3(p).eth.get_balance("0x" + "11" * 20) == 0
    assert a.served("eth_getBalance") == 0 and b.served("eth_getBalance") == 1
    p.check()
    assert len(events) == 2  # still lagging: no new event
    a.head = 101  # 5 behind: within the allowance
    clock.now += 5
    Web3(p).eth.get_balance("0x" + "11" * 20)
    assert names(events)[2:] == ["rpc_endpoint_up", "rpc_failover"]
    assert p.active is p.endpoints[0] and a.served("eth_getBalance") == 1


def test_a_down_endpoint_is_reported_once_and_its_recovery_once(nodes):
    a, b = nodes(), nodes()
    p, events, _ = provider([a.url, b.url])
    p.check()
    b.mode = "503"
    for _ in range(3):
        p.check()
    assert names(events) == ["rpc_endpoint_down"] and p.endpoints[1].errors == 3
    b.mode = "up"
    p.check()
    p.check()
    assert names(events) == ["rpc_endpoint_down", "rpc_endpoint_up"]
    assert p.active is p.endpoints[0]  # the backup's state never moved the primary


def test_credentials_of_a_url_never_appear_in_events_or_errors(nodes):
    a, b = nodes(), nodes()
    secret = f"http://user:s3cretkey@127.0.0.1:{a.port}/v2/PATHKEY?apikey=QUERYKEY"
    p, events, clock = provider([secret, b.url])
    label = p.endpoints[0].label
    assert label == f"http://127.0.0.1:{a.port}/[hidden]"
    p.check()
    a.mode = "503"
    p.make_request("eth_blockNumber", [])
    a.mode, b.mode = "up", "503"
    clock.now += 5
    p.make_request("eth_blockNumber", [])  # a back at the check
    a.mode = "garbage"
    with pytest.raises(requests.ConnectionError) as err:
        p.make_request("eth_blockNumber", [])
    assert len(events) >= 6
    texts = [json.dumps(fields) for _, _, fields in events] + [str(err.value), str(p), repr(p)]
    for text in texts:
        for secret_part in ("user", "s3cretkey", "PATHKEY", "QUERYKEY", "v2"):
            assert secret_part not in text
    assert label in str(err.value)


def test_the_default_event_sink_writes_keeper_lines(nodes, caplog):
    a, b = nodes(), nodes()
    p = FailoverProvider([a.url, b.url], timeout=2)
    a.mode = "503"
    with caplog.at_level(logging.INFO, logger="backstop.keeper"):
        p.check()
    assert f"keeper rpc_endpoint_down url={a.url} error=" + '"HTTP 503"' in caplog.messages
    assert f"keeper rpc_failover from={a.url} to={b.url} reason=check" in caplog.messages
    assert [e.errors for e in p.snapshot()] == [1, 0]
