"""A dead or wrong RPC is an error, never a new node (issue #17): with ``APE_FOUNDRY_HOST`` on a
port where nothing answers, Ape's foundry provider would start an anvil of its own there, and a
deploy meant for a long-lived chain would land on an empty one. The commands check the RPC first
(``backstop.chain.node``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from backstop.chain.node import NodeUnavailable, explicit_rpc, probe
from tests.support.anvil import ROOT, anvil, ape_run, block_number, free_port, listening


@pytest.mark.parametrize(
    "args",
    [["deploy"], ["keeper", "--once"], ["stress", "--scenario", "scenarios/flash_crash.yaml"]],
    ids=["deploy", "keeper", "stress"],
)
def test_a_dead_rpc_is_an_error_and_no_node_is_started(args, tmp_path):
    port = free_port()
    manifests = sorted((ROOT / "deployments").glob("*.json")) if (ROOT / "deployments").exists() else []
    if args[0] == "stress":
        args = [*args, "--out", str(tmp_path)]
    result = ape_run(args, f"http://127.0.0.1:{port}")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        f"{args[0]}: no node answers at http://127.0.0.1:{port} ([Errno 111] Connection refused); "
        "refusing to start a node in its place" in result.stderr
    )
    assert "Starting 'anvil'" not in result.stdout + result.stderr
    assert not listening(port)
    after = sorted((ROOT / "deployments").glob("*.json")) if (ROOT / "deployments").exists() else []
    assert after == manifests
    assert list(tmp_path.iterdir()) == []


def test_a_live_rpc_given_by_host_is_used_and_not_replaced(tmp_path):
    """The same host with an anvil listening: the stress run deploys onto that node (its block
    number grows) and Ape starts none of its own."""
    with anvil("--hardfork", "cancun") as url:
        assert probe(url) == 31337
        result = ape_run(["stress", "--scenario", "scenarios/flash_crash.yaml", "--out", str(tmp_path)], url)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Starting 'anvil'" not in result.stdout + result.stderr
        assert (tmp_path / "flash_crash.json").is_file()
        assert block_number(url) > 10  # the suite was deployed and the scenario played there


def fake_provider(host, kind="FoundryProvider"):
    provider = type(kind, (), {})()  # the class name is what explicit_rpc checks
    provider.settings = SimpleNamespace(host=host)
    return provider


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("auto", None),
        (None, None),
        ("127.0.0.1", "http://127.0.0.1:8545"),
        ("localhost:9000", "http://localhost:9000"),
        ("http://127.0.0.1:8546", "http://127.0.0.1:8546"),
        ("rpc.example.org", "https://rpc.example.org"),
    ],
)
def test_the_rpc_a_provider_was_pointed_at(monkeypatch, host, url):
    monkeypatch.delenv("APE_FOUNDRY_HOST", raising=False)
    assert explicit_rpc(fake_provider(host)) == url


def test_a_fork_provider_has_the_same_host_setting(monkeypatch):
    """ape-foundry's fork provider reads the same ``host``: auto forks on a free port, an explicit
    host is an existing node that must answer (tests/integration/test_fork.py)."""
    monkeypatch.delenv("APE_FOUNDRY_HOST", raising=False)
    assert explicit_rpc(fake_provider("auto", "FoundryForkProvider")) is None
    assert explicit_rpc(fake_provider("127.0.0.1:8546", "FoundryForkProvider")) == "http://127.0.0.1:8546"


def test_the_environment_host_wins_and_other_providers_are_left_alone(monkeypatch):
    monkeypatch.setenv("APE_FOUNDRY_HOST", "127.0.0.1:7777")
    assert explicit_rpc(fake_provider("auto")) == "http://127.0.0.1:7777"
    assert explicit_rpc(SimpleNamespace(settings=SimpleNamespace(host="x"))) is None


def test_probe_names_a_dead_port():
    port = free_port()
    with pytest.raises(NodeUnavailable, match=f"no node answers at http://127.0.0.1:{port}"):
        probe(f"http://127.0.0.1:{port}", timeout=2)
