"""The keeper's /metrics and /health (backstop.keeper.metrics), served on a free port and read
back over HTTP with every value checked; and the JSON log format (backstop.keeper.logs)."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backstop.keeper.logs import JsonFormatter, emit
from backstop.keeper.metrics import MetricsServer, Monitor, Status, health
from backstop.units import WAD


@dataclass
class FakeEndpoint:
    label: str
    errors: int
    healthy: bool


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture
def served():
    clock = Clock()
    monitor = Monitor(clock=clock)
    endpoints = [FakeEndpoint("http://127.0.0.1:1", 3, False), FakeEndpoint("http://127.0.0.1:2", 0, True)]
    server = MetricsServer(
        monitor, "127.0.0.1", 0, max_head_age=60, endpoints=lambda: endpoints, wall=lambda: 1_700_000_100.0
    )
    yield monitor, clock, server, f"http://127.0.0.1:{server.port}"
    server.stop()


def samples(body: bytes) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def after_a_pass(monitor: Monitor, **changes) -> None:
    monitor.update(
        **{
            "node_up": True,
            "head": 120,
            "head_timestamp": 1_700_000_090,
            "accounts_indexed": 11,
            "last_scanned": 11,
            "last_liquidatable": 5,
            "lag_blocks": 2,
            "last_pass_at": 1_700_000_095.0,
            "counters": {"passes": 4, "liquidated": 5, "failed": 1, "unprofitable": 2, "rpc_retries": 7},
            "markets": ("ETH", "BTC"),
            "own": {
                "equity": 100_000 * WAD,
                "imr": 20_000 * WAD,
                "mmr": 10_000 * WAD,
                "free": 80_000 * WAD,
                "notional": 850_000 * WAD,
            },
            **changes,
        }
    )


def test_metrics_export_the_keepers_counts_own_risk_and_endpoints(served):
    monitor, _, _, url = served
    after_a_pass(monitor)
    status, body = get(url + "/metrics")
    assert status == 200
    m = samples(body)
    assert m[("backstop_keeper_passes_total", ())] == 4
    assert m[("backstop_keeper_liquidated_total", ())] == 5
    assert m[("backstop_keeper_failed_total", ())] == 1
    assert m[("backstop_keeper_unprofitable_total", ())] == 2
    assert m[("backstop_keeper_rpc_retries_total", ())] == 7
    assert m[("backstop_keeper_sent_total", ())] == 0  # absent from the counters: zero, not missing
    assert m[("backstop_keeper_accounts_indexed", ())] == 11
    assert m[("backstop_keeper_accounts_liquidatable", ())] == 5
    assert m[("backstop_keeper_head_lag_blocks", ())] == 2
    assert m[("backstop_keeper_last_success_timestamp_seconds", ())] == 1_700_000_095
    assert m[("backstop_keeper_own_equity", ())] == 100_000
    assert m[("backstop_keeper_own_free", ())] == 80_000
    assert m[("backstop_keeper_own_leverage", ())] == 8.5
    assert m[("backstop_keeper_own_buffer", ())] == 4.0
    assert m[("backstop_keeper_own_buffer_low", ())] == 0
    assert m[("backstop_keeper_oracle_stale", (("market", "ETH"),))] == 0
    assert m[("backstop_keeper_rpc_errors_total", (("endpoint", "http://127.0.0.1:1"),))] == 3
    assert m[("backstop_keeper_rpc_errors_total", (("endpoint", "http://127.0.0.1:2"),))] == 0
    assert m[("backstop_keeper_rpc_endpoint_up", (("endpoint", "http://127.0.0.1:1"),))] == 0


def test_health_is_ready_after_a_fresh_pass_and_fails_on_a_stale_oracle(served):
    monitor, _, _, url = served
    status, body = get(url + "/health")
    assert status == 503 and json.loads(body)["problems"] == [
        "node down: not reached yet",
        "no pass completed yet",
    ]
    assert get(url + "/health/live")[0] == 200  # the loop turns, it is just not ready

    after_a_pass(monitor)
    status, body = get(url + "/health")
    report = json.loads(body)
    assert status == 200 and report["status"] == "ok" and report["ready"] is True
    assert report["checks"]["head_age_s"] == 10.0 and report["checks"]["last_pass_age_s"] == 5.0
    assert get(url + "/health/ready")[0] == 200

    after_a_pass(monitor, stale_markets={"BTC": "StalePrice"})
    status, body = get(url + "/health")
    assert status == 503 and json.loads(body)["problems"] == ["stale oracle: BTC"]
    assert samples(get(url + "/metrics")[1])[("backstop_keeper_oracle_stale", (("market", "BTC"),))] == 1


def test_health_fails_when_the_head_is_stale_the_node_down_or_the_loop_wedged(served):
    monitor, clock, _, url = served
    after_a_pass(monitor, head_timestamp=1_700_000_000)  # 100 s old, max 60
    status, body = get(url + "/health")
    assert status == 503 and json.loads(body)["problems"] == ["head 120 is 100 s old (> 60 s)"]

    after_a_pass(monitor, node_up=False, node_error="every RPC endpoint is down")
    assert json.loads(get(url + "/health")[1])["problems"] == ["node down: every RPC endpoint is down"]

    after_a_pass(monitor)
    clock.now += 301  # no head poll for 301 s
    status, body = get(url + "/health/live")
    assert status == 503 and json.loads(body)["live"] is False
    assert get(url + "/nothing")[0] == 404


def test_max_head_age_zero_never_fails_on_an_old_head():
    s = Status(node_up=True, head=5, head_timestamp=0, last_pass_at=10.0, heartbeat=0.0)
    assert health(s, now=1.0, wall=1e9, max_head_age=0)["ready"] is True
    assert health(s, now=1.0, wall=1e9, max_head_age=60)["ready"] is False


def test_a_taken_port_is_one_error_naming_it(served):
    monitor, _, server, _ = served
    with pytest.raises(OSError, match=rf"cannot serve metrics on 127.0.0.1:{server.port}"):
        MetricsServer(monitor, "127.0.0.1", server.port, max_head_age=60)


def test_json_logs_carry_the_event_and_its_fields():
    logger = logging.getLogger("test.keeper.json")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    emit(logger, logging.WARNING, "own_buffer_low", buffer="0.15", free="3,000.00", low=True, n=3)
    emit(logger, logging.INFO, "inherit_ceiling", word="reached", ceiling="100,000.00")
    logger.info("plain line")
    lines = [json.loads(JsonFormatter().format(r)) for r in records]
    assert records[0].getMessage() == "keeper own_buffer_low buffer=0.15 free=3,000.00 low=true n=3"
    assert {k: v for k, v in lines[0].items() if k != "ts"} == {
        "level": "WARNING",
        "event": "own_buffer_low",
        "buffer": "0.15",
        "free": "3,000.00",
        "low": True,
        "n": 3,
    }
    assert lines[0]["ts"].endswith("Z")
    assert (lines[1]["event"], lines[1]["word"], lines[1]["ceiling"]) == (
        "inherit_ceiling",
        "reached",
        "100,000.00",
    )
    assert lines[2]["message"] == "plain line" and lines[2]["logger"] == "test.keeper.json"
