"""``ape run keeper`` as an operator runs it, on a long-lived anvil of its own (docs/keeper.md
§"Rehearse a crash on a long-lived chain"): deployed and populated once (ten traders, the keeper
with 100,000 of margin), each test starting from an ``evm_snapshot`` of that state.

- ``--once`` exits 1 when a market's price is stale, and says which in the pass line;
- SIGTERM mid-run: the transaction in flight is awaited, nothing more is sent, the ``stop`` line
  is written and the state persisted; a restart liquidates the rest, each account exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from prometheus_client.parser import text_string_to_metric_families
from web3 import HTTPProvider, Web3

from backstop.chain.populate import execute, plan
from backstop.chain.suite import abis_of, open_suite
from tests.support.anvil import APE, ROOT, anvil, free_port, listening, rpc
from tests.support.proxy import Proxy

Account.enable_unaudited_hdwallet_features()
MNEMONIC = "test test test test test test test test test test test junk"
LIQUIDATED = keccak(text="Liquidated(address,address,uint256,uint256,uint256,uint256,uint256,uint256)")


def key_of(i: int) -> str:
    return Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key.hex()


def address_of(i: int) -> str:
    return Account.from_key(key_of(i)).address


def env_for(url: str) -> dict[str, str]:
    return {**os.environ, "APE_FOUNDRY_HOST": url}


def ape_run(args: list[str], url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(APE), "run", *args], cwd=ROOT, env=env_for(url), capture_output=True, text=True, timeout=180
    )


class Chain:
    """The long-lived anvil: its URL, the manifest, and a snapshot to go back to."""

    def __init__(self, url: str, manifest: str, abis: dict) -> None:
        self.url = url
        self.manifest = manifest
        self.abis = abis
        self.snapshot = rpc(url, "evm_snapshot")

    def reset(self) -> None:
        assert rpc(self.url, "evm_revert", self.snapshot) is True
        self.snapshot = rpc(self.url, "evm_snapshot")
        rpc(self.url, "evm_setIntervalMining", 0)
        rpc(self.url, "evm_setAutomine", True)

    def crash(self) -> None:
        """What ``ape run populate --refresh --move ETH=-25%`` does (the sigterm test runs that
        command itself), in this process: the five longs become liquidatable."""
        w3 = Web3(HTTPProvider(self.url, request_kwargs={"timeout": 60}))
        suite = open_suite(w3, Path(self.manifest), self.abis)
        keys = [key_of(i) for i in range(11)]
        said: list[str] = []
        execute(suite, plan(suite, keys, moves=["ETH=-25%"], refresh=True), keys, say=said.append)
        assert "moved ETH: 2000 -> 1500" in said, said

    def engine(self) -> str:
        return json.loads(open(self.manifest).read())["contracts"]["MarginEngine"]["address"]

    def liquidations(self) -> list[tuple[str, str]]:
        """``(account, liquidator)`` of every ``Liquidated`` event, in chain order."""
        logs = rpc(
            self.url,
            "eth_getLogs",
            {
                "address": self.engine(),
                "fromBlock": "0x0",
                "toBlock": "latest",
                "topics": ["0x" + LIQUIDATED.hex()],
            },
        )
        return [
            (
                to_checksum_address("0x" + e["topics"][1][-40:]),
                to_checksum_address("0x" + e["topics"][2][-40:]),
            )
            for e in logs
        ]


@pytest.fixture(scope="module")
def long_lived(tmp_path_factory, project):
    with anvil() as url:
        assert int(rpc(url, "eth_chainId"), 16) == 31337
        manifest = str(tmp_path_factory.mktemp("keeper-cli") / "manifest.json")
        deployed = ape_run(["deploy", "--manifest", manifest], url)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        populated = ape_run(
            ["populate", "--manifest", manifest, "--accounts", "10", "--keeper-collateral", "100000"], url
        )
        assert populated.returncode == 0, populated.stdout + populated.stderr
        yield Chain(url, manifest, abis_of(project))


@pytest.fixture
def chain_cli(long_lived):
    long_lived.reset()
    return long_lived


def keeper_lines(output: str) -> list[str]:
    """The keeper's lines, without their timestamp and level."""
    return [line[line.index("keeper ") :] for line in output.splitlines() if " keeper " in line]


def test_once_exits_non_zero_on_a_stale_oracle(chain_cli, tmp_path):
    state = str(tmp_path / "keeper.json")
    args = ["keeper", "--once", "--deployment", chain_cli.manifest, "--state", state]
    fresh = ape_run(args, chain_cli.url)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    [line] = [m for m in keeper_lines(fresh.stderr) if m.startswith("keeper pass ")]
    assert " stale_markets=- " in line

    # Past the feeds' heartbeat (config/local.yaml: one day), both prices are stale.
    rpc(chain_cli.url, "evm_increaseTime", 86_401)
    rpc(chain_cli.url, "evm_mine")
    stale = ape_run(args, chain_cli.url)

    assert stale.returncode == 1, stale.stdout + stale.stderr
    lines = keeper_lines(stale.stderr)
    [line] = [m for m in lines if m.startswith("keeper pass ")]
    assert " stale_markets=ETH,BTC " in line
    assert "keeper price_unreadable market=ETH id=0 error=StalePrice" in lines
    assert "keeper price_unreadable market=BTC id=1 error=StalePrice" in lines
    assert "Traceback" not in stale.stderr
    assert lines[-1].startswith("keeper stop ")


def test_sigterm_stops_cleanly_with_nothing_lost_or_sent_twice(chain_cli, tmp_path):
    """Five longs liquidatable after ETH −25 %, one account per transaction (gas budget 140,000),
    a block a second: SIGTERM after the first ``sent`` line."""
    url = chain_cli.url
    crash = ape_run(["populate", "--manifest", chain_cli.manifest, "--refresh", "--move", "ETH=-25%"], url)
    assert crash.returncode == 0, crash.stdout + crash.stderr
    longs = {address_of(i) for i in (1, 3, 5, 7, 9)}
    keeper = address_of(0)
    assert chain_cli.liquidations() == []
    rpc(url, "evm_setAutomine", False)
    rpc(url, "evm_setIntervalMining", 1)

    state = tmp_path / "keeper.json"
    args = ["keeper", "--deployment", chain_cli.manifest, "--state", str(state)]
    process = subprocess.Popen(
        [str(APE), "run", *args, "--gas-budget", "140000", "--max-in-flight", "1"],
        cwd=ROOT,
        env=env_for(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    first_send = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if " keeper sent " in line:
                first_send.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert first_send.wait(timeout=120), "".join(output)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, "".join(output)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    reader.join(timeout=10)

    lines = keeper_lines("".join(output))
    sent = [m.split(" tx=")[1].split()[0] for m in lines if m.startswith("keeper sent ")]
    confirmed = [m.split(" tx=")[1].split()[0] for m in lines if m.startswith("keeper confirmed ")]
    assert 1 <= len(sent) < len(longs)  # stopped mid-run
    assert confirmed == sent  # every transaction in flight was awaited
    # The signal is seen before the next send (in_flight: receipts still to await then).
    [stopping] = [m for m in lines if m.startswith("keeper stopping ")]
    assert lines.index(stopping) > max(i for i, m in enumerate(lines) if m.startswith("keeper sent "))
    assert "keeper signal name=SIGTERM" in lines
    assert lines[-1].startswith("keeper stop ") and f" confirmed={len(sent)} " in lines[-1]
    first = chain_cli.liquidations()
    assert len(first) == len(sent)
    persisted = json.loads(state.read_text())
    assert set(persisted["accounts"]) >= longs

    # Restart: the rest, each exactly once, nothing sent for an account already liquidated.
    rpc(url, "evm_setIntervalMining", 0)
    rpc(url, "evm_setAutomine", True)
    restart = ape_run([*args, "--once"], url)
    assert restart.returncode == 0, restart.stdout + restart.stderr
    again = keeper_lines(restart.stderr)
    assert (
        f"keeper resume state={state} cursor={persisted['cursor_block']} accounts={len(persisted['accounts'])}"
        in (again)
    )
    [line] = [m for m in again if m.startswith("keeper pass ")]
    assert f" liquidatable={len(longs) - len(sent)} " in line and " failed=0 lost_races=0 " in line
    events = chain_cli.liquidations()
    assert sorted(a for a, _ in events) == sorted(longs)
    assert {who for _, who in events} == {keeper}


# --- issue #18: failover, metrics and health, config, JSON logs, an engine without code ----------


def metric_values(port: int) -> dict[str, float]:
    """``name{labels}`` → value of every sample at ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def health_of(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


class Running:
    """``ape run keeper ARGS`` in the background, its output collected line by line."""

    def __init__(self, args: list[str], url: str) -> None:
        self.process = subprocess.Popen(
            [str(APE), "run", "keeper", *args],
            cwd=ROOT,
            env=env_for(url),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def count(self, text: str) -> int:
        return sum(text in line for line in self.output)

    def wait_for(self, text: str, count: int = 1, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while sum(text in line for line in self.output) < count:
            assert self.process.poll() is None, "".join(self.output)
            assert time.monotonic() < deadline, f"no {text!r} after {timeout} s:\n" + "".join(self.output)
            time.sleep(0.1)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.reader.join(timeout=10)


def test_the_keeper_fails_over_from_a_dead_url_to_a_live_one_and_never_starts_a_node(chain_cli, tmp_path):
    """Started with a dead URL first: it goes to the live one. Running through a proxy that is then
    cut: it fails over to the direct URL and liquidates the crash. /metrics and /health agree."""
    url = chain_cli.url
    dead_port = free_port()
    dead = f"http://127.0.0.1:{dead_port}"
    state = str(tmp_path / "keeper.json")
    once = ape_run(
        [
            "keeper",
            "--once",
            "--deployment",
            chain_cli.manifest,
            "--state",
            state,
            "--rpc-url",
            dead,
            "--rpc-url",
            url,
        ],
        url,
    )
    assert once.returncode == 0, once.stdout + once.stderr
    lines = keeper_lines(once.stderr)
    assert f'keeper rpc_endpoint_down url={dead} error="connection refused"' in lines
    assert f"keeper rpc_failover from={dead} to={url} reason=check" in lines
    assert not listening(dead_port)  # nothing was started there

    proxy = Proxy(int(url.rsplit(":", 1)[1]))
    port = free_port()
    keeper = Running(
        [
            *("--deployment", chain_cli.manifest, "--state", state, "--poll-interval", "0.2"),
            *("--rpc-url", proxy.url, "--rpc-url", url, "--metrics-port", str(port)),
        ],
        url,
    )
    try:
        keeper.wait_for("keeper pass ")
        assert health_of(port)[0] == 200
        proxy.cut()
        chain_cli.crash()
        keeper.wait_for("keeper confirmed ")
        keeper.wait_for(" liquidated=5 ")
        # One more pass: it indexes the keeper itself from its liquidations' PositionChanged logs.
        keeper.wait_for("keeper pass ", count=keeper.count("keeper pass ") + 1)
        metrics = metric_values(port)
        status, report = health_of(port)
    finally:
        code = keeper.stop()
        proxy.cut()
    lines = keeper_lines("".join(keeper.output))
    assert code == 0, "".join(keeper.output)
    assert any(m.startswith(f"keeper rpc_failover from={proxy.url} to={url} ") for m in lines)
    assert sorted(a for a, _ in chain_cli.liquidations()) == sorted(address_of(i) for i in (1, 3, 5, 7, 9))
    assert metrics["backstop_keeper_liquidated_total"] == 5
    assert metrics["backstop_keeper_failed_total"] == 0
    assert metrics["backstop_keeper_accounts_indexed"] == 11  # the ten traders and the keeper itself
    assert metrics[f'backstop_keeper_rpc_errors_total{{endpoint="{proxy.url}"}}'] >= 1
    assert metrics[f'backstop_keeper_rpc_endpoint_up{{endpoint="{proxy.url}"}}'] == 0
    assert metrics[f'backstop_keeper_rpc_endpoint_up{{endpoint="{url}"}}'] == 1
    assert metrics['backstop_keeper_oracle_stale{market="ETH"}'] == 0
    # The keeper took the five longs: 5 × 25 ETH at 1,500 (ETH 2,000 − 25 %).
    assert metrics["backstop_keeper_own_notional"] == 187_500
    [risk] = [m for m in lines if m.startswith("keeper own_risk ")][-1:]
    assert (
        " notional=187,500.00 " in risk and f" equity={metrics['backstop_keeper_own_equity']:,.2f} " in risk
    )
    assert status == 200 and report["ready"] is True and report["checks"]["node"] == "up"
    assert lines[-1].startswith("keeper stop ") and " liquidated=5 " in lines[-1]


def test_the_keeper_refuses_an_engine_address_without_code(chain_cli, tmp_path):
    manifest = json.loads(Path(chain_cli.manifest).read_text())
    manifest["contracts"]["MarginEngine"]["address"] = "0x000000000000000000000000000000000000dEaD"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    before = rpc(chain_cli.url, "eth_blockNumber")
    run = ape_run(
        ["keeper", "--once", "--deployment", str(path), "--state", str(tmp_path / "k.json")], chain_cli.url
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "MarginEngine 0x000000000000000000000000000000000000dEaD has no code on chain 31337" in run.stderr
    assert "Traceback" not in run.stderr
    assert rpc(chain_cli.url, "eth_blockNumber") == before  # nothing sent
    assert not (tmp_path / "k.json").exists()


def test_config_file_environment_and_flags_with_json_logs(chain_cli, tmp_path):
    url = chain_cli.url
    chain_cli.crash()
    config = tmp_path / "keeper.yaml"
    config.write_text(
        f"deployment: {chain_cli.manifest}\nstate: {tmp_path / 'k.json'}\ndry_run: true\nbatch_size: 100\n"
    )
    run = subprocess.run(
        [str(APE), "run", "keeper", "--once", "--config", str(config), "--log-format", "json"],
        cwd=ROOT,
        env={**env_for(url), "BACKSTOP_KEEPER_BATCH_SIZE": "3"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    events = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    assert events and all(line.startswith("{") for line in run.stderr.splitlines() if "keeper" in line)
    [start] = [e for e in events if e.get("event") == "start"]
    assert start["batch_size"] == 3 and start["dry_run"] is True  # env over file; file's dry_run
    [done] = [e for e in events if e.get("event") == "pass"]
    assert done["liquidatable"] == 5 and done["sent"] == 0
    assert len([e for e in events if e.get("event") == "would_liquidate"]) == 1
    assert chain_cli.liquidations() == []  # dry run: nothing sent

    config.write_text("batch_size: 0\nmax_fee: 3\n")
    bad = ape_run(["keeper", "--once", "--config", str(config)], url)
    assert bad.returncode == 2
    assert f"{config}: unknown key 'max_fee'" in bad.stderr
    assert f"{config}: batch_size: must be ≥ 1, got 0" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_while_the_node_is_down_health_fails_backoff_is_capped_and_the_keeper_recovers(chain_cli, tmp_path):
    """The keeper's only URL goes through a proxy that is cut, then restarted on the same port."""
    url = chain_cli.url
    proxy = Proxy(int(url.rsplit(":", 1)[1]))
    port = free_port()
    keeper = Running(
        [
            *("--deployment", chain_cli.manifest, "--state", str(tmp_path / "k.json")),
            *("--rpc-url", proxy.url, "--poll-interval", "0.2", "--max-backoff", "0.8"),
            *("--metrics-port", str(port)),
        ],
        url,
    )
    try:
        keeper.wait_for("keeper pass ")
        proxy.cut()
        keeper.wait_for("keeper pass_failed ", count=4)
        down_status, down = health_of(port)
        down_metrics = metric_values(port)
        proxy = Proxy(int(url.rsplit(":", 1)[1]), port=proxy.port)
        chain_cli.crash()
        keeper.wait_for(" liquidated=5 ")
        up_status, up = health_of(port)
    finally:
        code = keeper.stop()
        proxy.cut()
    assert code == 0, "".join(keeper.output)
    lines = keeper_lines("".join(keeper.output))
    waits = [
        float(m.split("retry_in_s=")[1].split()[0]) for m in lines if m.startswith("keeper pass_failed ")
    ]
    assert waits[:4] == [0.4, 0.8, 0.8, 0.8]  # doubling from twice the poll interval, capped
    assert down_status == 503 and down["checks"]["node"] == "down"
    assert any(p.startswith("node down: ") for p in down["problems"])
    assert down_metrics["backstop_keeper_node_up"] == 0
    assert down_metrics[f'backstop_keeper_rpc_errors_total{{endpoint="{proxy.url}"}}'] >= 4
    assert up_status == 200 and up["ready"] is True
    assert sorted(a for a, _ in chain_cli.liquidations()) == sorted(address_of(i) for i in (1, 3, 5, 7, 9))
