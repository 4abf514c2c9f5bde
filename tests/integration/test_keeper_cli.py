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

import pytest
from eth_account import Account
from eth_utils import keccak, to_checksum_address

from tests.support.anvil import APE, ROOT, anvil, rpc

Account.enable_unaudited_hdwallet_features()
MNEMONIC = "test test test test test test test test test test test junk"
LIQUIDATED = keccak(text="Liquidated(address,address,uint256,uint256,uint256,uint256,uint256,uint256)")


def address_of(i: int) -> str:
    return Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").address


def env_for(url: str) -> dict[str, str]:
    return {**os.environ, "APE_FOUNDRY_HOST": url}


def ape_run(args: list[str], url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(APE), "run", *args], cwd=ROOT, env=env_for(url), capture_output=True, text=True, timeout=180
    )


class Chain:
    """The long-lived anvil: its URL, the manifest, and a snapshot to go back to."""

    def __init__(self, url: str, manifest: str) -> None:
        self.url = url
        self.manifest = manifest
        self.snapshot = rpc(url, "evm_snapshot")

    def reset(self) -> None:
        assert rpc(self.url, "evm_revert", self.snapshot) is True
        self.snapshot = rpc(self.url, "evm_snapshot")
        rpc(self.url, "evm_setIntervalMining", 0)
        rpc(self.url, "evm_setAutomine", True)

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
def long_lived(tmp_path_factory):
    with anvil() as url:
        assert int(rpc(url, "eth_chainId"), 16) == 31337
        manifest = str(tmp_path_factory.mktemp("keeper-cli") / "manifest.json")
        deployed = ape_run(["deploy", "--manifest", manifest], url)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        populated = ape_run(
            ["populate", "--manifest", manifest, "--accounts", "10", "--keeper-collateral", "100000"], url
        )
        assert populated.returncode == 0, populated.stdout + populated.stderr
        yield Chain(url, manifest)


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
