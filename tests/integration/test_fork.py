"""Rehearsing on a fork, offline (issue #17): an "upstream" anvil with chain id 1 stands in for
mainnet, with MockAggregator code at Chainlink's ETH/USD and BTC/USD proxy addresses and a
delegating proxy over a MockERC20 at USDC's address; a second anvil forks it. The suite is deployed
on the fork with ``config/mainnet-fork.yaml`` (``ape run deploy --network
ethereum:mainnet-fork:foundry``), accounts are funded through the node (``fund_token``: a
holder's transfer and the storage probe through the proxy), a crash is written into the real feed
address (``set_feed_answer``) and ``ape run keeper --once`` liquidates. The upstream must be
unchanged by all of it. Also: the stress runner on a fork Ape starts itself, and a dead, unset or
wrong-chain upstream refused in one line before any anvil starts.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import solcx
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from web3 import HTTPProvider, Web3
from web3.providers.base import BaseProvider

from backstop.chain.abi import Artifacts
from backstop.chain.fork import (
    SLOT_ANSWER,
    SLOT_DECIMALS,
    SLOT_DESCRIPTION,
    SLOT_ROUND_ID,
    SLOT_STARTED_AT,
    SLOT_UPDATED_AT,
    ForkError,
    balance_slots,
    find_balance_slot,
    fund_token,
    mock_aggregator_storage,
    set_feed_answer,
)
from backstop.config import load_config
from backstop.orders import FAR_EXPIRY, Order, sign_order, to_tuple

ROOT = Path(__file__).resolve().parents[2]
APE = Path(sys.executable).parent / "ape"
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"
NETWORK = "ethereum:mainnet-fork:foundry"
MNEMONIC = "test test test test test test test test test test test junk"

ETH_USD = "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419"
BTC_USD = "0xF4030086522a5bEEa4988F8cA5B36dbC97BeE88c"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
#: Stands in for a large USDC holder on mainnet.
HOLDER = "0x28C6c06298d514Db089934071355E5743bf21d60"
HOLDER_BALANCE = 50_000_000 * 10**6
# Chainlink-style round ids (phase << 64 | round) and 8-decimal answers.
FEEDS = {
    ETH_USD: ("ETH / USD", (6 << 64) + 1234, 3_456_78000000),
    BTC_USD: ("BTC / USD", (7 << 64) + 99, 65_432_10000000),
}
WAD = 10**18
USD = 10**6
CRASH = 3_100_00000000  # ETH at 3,100: the 2-ETH long below maintenance, not bankrupt

# EIP-1967 implementation slot, and a minimal proxy that delegates every call to the address there:
# calldatacopy; delegatecall(gas, sload(slot), 0, cds, 0, 0); returndatacopy; return or revert.
IMPLEMENTATION_SLOT = int.from_bytes(keccak(text="eip1967.proxy.implementation"), "big") - 1
PROXY_CODE = (
    bytes.fromhex("365f5f37" "5f5f365f" "7f")
    + IMPLEMENTATION_SLOT.to_bytes(32, "big")
    + bytes.fromhex("545af4" "3d5f5f3e" "603657" "3d5ffd" "5b3d5ff3")
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rpc(w3: Web3, method: str, *params):
    response = w3.provider.make_request(method, list(params))
    assert "error" not in response, (method, response)
    return response["result"]


def start_anvil(*args: str) -> tuple[subprocess.Popen, str, Web3]:
    port = free_port()
    node = subprocess.Popen([str(ANVIL), "--port", str(port), "--silent", *args])
    url = f"http://127.0.0.1:{port}"
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 30}))
    deadline = time.monotonic() + 30
    while True:
        try:
            if w3.eth.block_number >= 0:
                return node, url, w3
        except Exception:
            assert time.monotonic() < deadline, f"anvil {args} did not start"
            assert node.poll() is None, f"anvil {args} exited with {node.returncode}"
            time.sleep(0.1)


def stop(node: subprocess.Popen) -> None:
    node.terminate()
    node.wait(timeout=30)


def send(w3: Web3, sender: str, to: str | None, data: bytes) -> dict:
    tx = {"from": sender, "data": "0x" + data.hex()}
    if to is not None:
        tx["to"] = to
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(tx), timeout=60)
    assert receipt["status"] == 1, receipt
    return receipt


def transact(w3: Web3, sender: str, fn) -> dict:
    receipt = w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}), timeout=60)
    assert receipt["status"] == 1, receipt
    return receipt


def contract(w3: Web3, artifacts: Artifacts, name: str, address: str):
    return w3.eth.contract(address=to_checksum_address(address), abi=artifacts.abi(name))


def upstream_state(w3: Web3) -> dict:
    """Everything the fork could conceivably have written to on the upstream."""
    words = {
        feed: [rpc(w3, "eth_getStorageAt", feed, hex(slot), "latest") for slot in range(6)] for feed in FEEDS
    }
    usdc = contract(w3, Artifacts.load(), "MockERC20", USDC)
    return {
        "block": w3.eth.block_number,
        "code": {a: rpc(w3, "eth_getCode", a, "latest") for a in (*FEEDS, USDC)},
        "feeds": words,
        "implementation": rpc(w3, "eth_getStorageAt", USDC, hex(IMPLEMENTATION_SLOT), "latest"),
        "holder": usdc.functions.balanceOf(HOLDER).call(),
        "supply": usdc.functions.totalSupply().call(),
    }


@pytest.fixture(scope="module")
def artifacts() -> Artifacts:
    return Artifacts.load()


def stand_in_for_mainnet(w3: Web3, artifacts: Artifacts) -> str:
    """Writes Chainlink's two feeds (MockAggregator code and storage) and USDC (a delegating proxy
    over a 6-decimal MockERC20, ``HOLDER_BALANCE`` minted to ``HOLDER``) at their mainnet addresses
    of the node ``w3``; returns the implementation's address."""
    dev = w3.eth.accounts[0]
    now = w3.eth.get_block("latest")["timestamp"]
    for feed, (description, round_id, answer) in FEEDS.items():
        rpc(w3, "anvil_setCode", feed, "0x" + artifacts.runtime_bytecode("MockAggregator").hex())
        for slot, word in mock_aggregator_storage(8, description, round_id, answer, now, now).items():
            rpc(w3, "anvil_setStorageAt", feed, hex(slot), "0x" + word.to_bytes(32, "big").hex())
    init = artifacts.initcode("MockERC20", None, "USD Coin", "USDC", 6)
    implementation = send(w3, dev, None, init)["contractAddress"]
    rpc(w3, "anvil_setCode", USDC, "0x" + PROXY_CODE.hex())
    rpc(w3, "anvil_setStorageAt", USDC, hex(IMPLEMENTATION_SLOT), "0x" + bytes(12).hex() + implementation[2:])
    transact(w3, dev, contract(w3, artifacts, "MockERC20", USDC).functions.mint(HOLDER, HOLDER_BALANCE))
    rpc(w3, "evm_mine")
    return implementation


@pytest.fixture(scope="module")
def upstream(artifacts):
    """Mainnet's stand-in: chain id 1, Chainlink's feed addresses, USDC's address behind a proxy."""
    node, url, w3 = start_anvil("--chain-id", "1")
    try:
        implementation = stand_in_for_mainnet(w3, artifacts)
        yield SimpleNamespace(url=url, w3=w3, implementation=implementation, state=upstream_state(w3))
    finally:
        stop(node)


@pytest.fixture(scope="module")
def fork(upstream):
    node, url, w3 = start_anvil("--fork-url", upstream.url, "--hardfork", "cancun", "--mnemonic", MNEMONIC)
    try:
        yield SimpleNamespace(url=url, w3=w3)
    finally:
        stop(node)


def ape_run(args: list[str], **env: str | None) -> subprocess.CompletedProcess:
    environ = {**os.environ, **{k: v for k, v in env.items() if v is not None}}
    for k, v in env.items():
        if v is None:
            environ.pop(k, None)
    return subprocess.run(
        [str(APE), "run", *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300
    )


def key(index: int):
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


# --- the storage layout set_feed_answer writes ------------------------------------------------------


def test_mock_aggregator_slots_are_solcs():
    root = ROOT / "contracts"
    sources = {
        p: {"content": (root / p).read_text()}
        for p in ("mocks/MockAggregator.sol", "interfaces/AggregatorV3Interface.sol")
    }
    out = solcx.compile_standard(
        {
            "language": "Solidity",
            "sources": sources,
            "settings": {
                "outputSelection": {"mocks/MockAggregator.sol": {"MockAggregator": ["storageLayout"]}}
            },
        },
        solc_version="0.8.28",
    )
    layout = out["contracts"]["mocks/MockAggregator.sol"]["MockAggregator"]["storageLayout"]["storage"]
    assert [(s["label"], int(s["slot"]), s["offset"]) for s in layout] == [
        ("decimals", SLOT_DECIMALS, 0),
        ("description", SLOT_DESCRIPTION, 0),
        ("roundId", SLOT_ROUND_ID, 0),
        ("answer", SLOT_ANSWER, 0),
        ("startedAt", SLOT_STARTED_AT, 0),
        ("updatedAt", SLOT_UPDATED_AT, 0),
    ]


def test_the_upstream_feeds_read_back_through_mock_aggregator(upstream, artifacts):
    """The storage written at the feed addresses is what MockAggregator's getters return."""
    for feed, (description, round_id, answer) in FEEDS.items():
        agg = contract(upstream.w3, artifacts, "MockAggregator", feed)
        assert agg.functions.decimals().call() == 8
        assert agg.functions.description().call() == description
        rid, got, _, updated, answered = agg.functions.latestRoundData().call()
        assert (rid, got, answered) == (round_id, answer, round_id)
        assert updated > 0


def test_a_long_description_is_preserved(fork, artifacts):
    """A description of more than 31 bytes takes the long string layout (data at keccak(slot))."""
    w3 = fork.w3
    feed = send(w3, w3.eth.accounts[0], None, artifacts.initcode("MockAggregator", None, 18, 5, "x" * 70))[
        "contractAddress"
    ]
    result = set_feed_answer(w3, feed, -7)
    agg = contract(w3, artifacts, "MockAggregator", feed)
    assert agg.functions.description().call() == "x" * 70
    assert agg.functions.decimals().call() == 18
    assert result["before"]["answer"] == 5 and result["after"]["answer"] == -7
    assert result["after"]["roundId"] == result["before"]["roundId"] + 1 == 2


# --- the rehearsal ------------------------------------------------------------------------------------


def test_the_fork_config_names_mainnets_contracts():
    config = load_config(ROOT / "config" / "mainnet-fork.yaml")
    assert config.collateral_token == USDC and config.collateral_decimals == 6
    assert {m.name: (m.feed, m.heartbeat) for m in config.markets} == {
        "ETH": (ETH_USD, 3600),
        "BTC": (BTC_USD, 3600),
    }
    docs = (ROOT / "docs" / "deploy.md").read_text()
    assert all(address in docs for address in (ETH_USD, BTC_USD, USDC))


def test_rehearsal_deploy_fund_crash_liquidate(upstream, fork, artifacts, tmp_path):
    env = {"APE_FOUNDRY_HOST": fork.url, "BACKSTOP_MAINNET_RPC": upstream.url}
    manifest_path = tmp_path / "manifest.json"
    deployed = ape_run(
        [
            "deploy",
            "--network",
            NETWORK,
            "--config",
            "config/mainnet-fork.yaml",
            "--manifest",
            str(manifest_path),
        ],
        **env,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "Starting 'anvil'" not in deployed.stdout + deployed.stderr
    manifest = json.loads(manifest_path.read_text())
    assert manifest["chain_id"] == 1
    assert manifest["contracts"]["CollateralToken"]["address"] == USDC
    assert manifest["feeds"] == {"ETH": ETH_USD, "BTC": BTC_USD}

    w3 = fork.w3
    address = {name: c["address"] for name, c in manifest["contracts"].items()}
    oracle = contract(w3, artifacts, "OracleAdapter", address["OracleAdapter"])
    engine = contract(w3, artifacts, "MarginEngine", address["MarginEngine"])
    vault = contract(w3, artifacts, "CollateralVault", address["CollateralVault"])
    usdc = contract(w3, artifacts, "MockERC20", USDC)
    eth_id, btc_id = manifest["markets"]["ETH"]["id"], manifest["markets"]["BTC"]["id"]
    # The engine prices from the upstream's feeds, 8 decimals scaled to WAD.
    assert oracle.functions.priceOf(eth_id).call() == FEEDS[ETH_USD][2] * 10**10
    assert oracle.functions.priceOf(btc_id).call() == FEEDS[BTC_USD][2] * 10**10

    keeper, long, short = key(0), key(1), key(2)
    assert fund_token(w3, USDC, long.address, 1_000 * USD, holder=HOLDER) == "impersonate"
    assert fund_token(w3, USDC, keeper.address, 1_000_000 * USD, holder=HOLDER) == "impersonate"
    assert fund_token(w3, USDC, short.address, 100_000 * USD) == "storage"
    assert find_balance_slot(w3, USDC, short.address)[:2] == ("solidity", 0)  # OpenZeppelin's _balances
    # The holder's tokens are the upstream's, less the two transfers; the upstream keeps its own.
    assert usdc.functions.balanceOf(HOLDER).call() == HOLDER_BALANCE - 1_001_000 * USD
    assert usdc.functions.balanceOf(long.address).call() == 1_000 * USD
    assert usdc.functions.balanceOf(short.address).call() == 100_000 * USD
    assert usdc.functions.balanceOf(HOLDER).call(block_identifier=upstream.state["block"]) == HOLDER_BALANCE
    assert (
        contract(upstream.w3, artifacts, "MockERC20", USDC).functions.balanceOf(HOLDER).call()
        == HOLDER_BALANCE
    )

    for account, amount in ((long, 1_000 * USD), (short, 100_000 * USD), (keeper, 1_000_000 * USD)):
        transact(w3, account.address, usdc.functions.approve(vault.address, amount))
        transact(w3, account.address, vault.functions.deposit(amount))

    price = FEEDS[ETH_USD][2] * 10**10
    size = 2 * WAD
    maker = Order(short.address, eth_id, False, size, price, 1, FAR_EXPIRY)
    taker = Order(long.address, eth_id, True, size, price, 1, FAR_EXPIRY)
    match = engine.functions.matchOrders(
        to_tuple(maker),
        sign_order(maker, short.key, 1, engine.address),
        to_tuple(taker),
        sign_order(taker, long.key, 1, engine.address),
        size,
    )
    transact(w3, keeper.address, match)
    assert engine.functions.positionOf(long.address, eth_id).call()[0] == size
    assert (
        engine.functions.equityOf(long.address).call()
        > engine.functions.maintenanceMarginOf(long.address).call()
    )

    crash = set_feed_answer(w3, ETH_USD, CRASH)
    description, round_id, answer = FEEDS[ETH_USD]
    assert crash["decimals"] == 8 and crash["description"] == description
    assert crash["before"]["roundId"] == round_id and crash["before"]["answer"] == answer
    assert crash["after"]["roundId"] == round_id + 1 and crash["after"]["answer"] == CRASH
    assert crash["after"]["updatedAt"] == w3.eth.get_block("latest")["timestamp"]
    assert oracle.functions.priceOf(eth_id).call() == CRASH * 10**10
    assert oracle.functions.priceOf(btc_id).call() == FEEDS[BTC_USD][2] * 10**10
    assert (
        engine.functions.equityOf(long.address).call()
        < engine.functions.maintenanceMarginOf(long.address).call()
    )

    head = w3.eth.block_number
    liquidated = ape_run(
        [
            "keeper",
            "--once",
            "--network",
            NETWORK,
            "--deployment",
            str(manifest_path),
            "--state",
            str(tmp_path / "keeper.json"),
        ],
        **env,
    )
    assert liquidated.returncode == 0, liquidated.stdout + liquidated.stderr
    logs = engine.events.Liquidated().get_logs(from_block=head + 1)
    assert [log["args"]["account"] for log in logs] == [long.address]
    assert engine.functions.positionOf(long.address, eth_id).call()[0] == 0
    assert engine.functions.positionOf(short.address, eth_id).call()[0] == -size

    assert upstream_state(upstream.w3) == upstream.state


def balance_only_token(layout: str, slot: int) -> bytes:
    """Runtime code answering every call with the word at the ``layout`` key of ``calldata[4:36]``
    in a mapping at ``slot`` (Solidity: keccak(account ‖ slot), Vyper: keccak(slot ‖ account))."""
    account_at, slot_at = ("5f", "6020") if layout == "solidity" else ("6020", "5f")
    return bytes.fromhex(
        f"600435{account_at}52"  # mstore(account_at, calldataload(4))
        f"60{slot:02x}{slot_at}52"  # mstore(slot_at, slot)
        "60405f2054"  # sload(keccak(0, 64))
        "5f5260205ff3"  # return the word
    )


@pytest.mark.parametrize(("layout", "slot"), [("solidity", 9), ("vyper", 3), ("vyper", 0)])
def test_the_storage_probe_finds_either_layout(fork, layout, slot):
    w3 = fork.w3
    token = to_checksum_address(keccak(text=f"token {layout} {slot}")[:20])
    rpc(w3, "anvil_setCode", token, "0x" + balance_only_token(layout, slot).hex())
    account = key(7).address
    assert fund_token(w3, token, account, 123) == "storage"
    assert fund_token(w3, token, account, 7) == "storage"
    found = find_balance_slot(w3, token, account)
    assert found[:2] == (layout, slot)
    assert int(rpc(w3, "eth_getStorageAt", token, hex(found[2]), "latest"), 16) == 130
    # every probe before the hit was restored: those words are empty again
    for _, _, probed in itertools.takewhile(lambda c: c[2] != found[2], balance_slots(account)):
        assert int(rpc(w3, "eth_getStorageAt", token, hex(probed), "latest"), 16) == 0


def test_a_balance_mapping_beyond_the_probe_is_an_error(fork):
    w3 = fork.w3
    token = to_checksum_address(keccak(text="token at slot 70")[:20])
    rpc(w3, "anvil_setCode", token, "0x" + balance_only_token("solidity", 70).hex())
    with pytest.raises(
        ForkError, match=f"token {token}: no balance mapping found in slots 0..63 .* pass holder="
    ):
        fund_token(w3, token, key(7).address, 1)
    assert all(
        int(rpc(w3, "eth_getStorageAt", token, hex(k), "latest"), 16) == 0
        for _, _, k in balance_slots(key(7).address)
    )


def test_fund_token_refusals(fork, artifacts):
    w3 = fork.w3
    account = key(5).address
    with pytest.raises(ForkError, match=f"token {HOLDER}: no contract at this address"):
        fund_token(w3, HOLDER, account, 1)
    with pytest.raises(ForkError, match=rf"token {USDC}: holder {key(6).address} has 0 base units, 5 asked"):
        fund_token(w3, USDC, account, 5, holder=key(6).address)
    with pytest.raises(ForkError, match=f"token {ETH_USD}: balanceOf"):
        fund_token(w3, ETH_USD, account, 1)
    with pytest.raises(ForkError, match="amount must be a positive whole number"):
        fund_token(w3, USDC, account, 0)
    with pytest.raises(ForkError, match="account: not an address"):
        fund_token(w3, USDC, "0x1234", 1)
    assert w3.eth.get_balance(HOLDER) == 0  # the ether lent to the holder for gas was taken back


class NotAnvil(BaseProvider):
    """A node that is not a dev chain: records every method it is asked."""

    def __init__(self):
        super().__init__()
        self.methods: list[str] = []

    def make_request(self, method, params):
        self.methods.append(method)
        if method == "web3_clientVersion":
            return {"jsonrpc": "2.0", "id": 1, "result": "Geth/v1.14.11-stable/linux-amd64/go1.23.2"}
        return {
            "jsonrpc": "2.0",
            "id": 1,
            "error": {"code": -32601, "message": f"the method {method} does not exist"},
        }


def test_set_feed_answer_refuses_a_live_node():
    provider = NotAnvil()
    with pytest.raises(
        ForkError,
        match=f"feed {ETH_USD}: refusing to rewrite a feed: not a dev chain: the node is 'Geth/v1.14.11",
    ):
        set_feed_answer(Web3(provider), ETH_USD, CRASH)
    assert provider.methods == ["web3_clientVersion", "anvil_nodeInfo"]


def test_set_feed_answer_refuses_what_is_not_a_feed(fork):
    with pytest.raises(ForkError, match=f"feed {HOLDER}: no contract"):
        set_feed_answer(fork.w3, HOLDER, 1)
    with pytest.raises(ForkError, match=f"feed {USDC}: not a Chainlink AggregatorV3 feed"):
        set_feed_answer(fork.w3, USDC, 1)


# --- Ape's fork networks ----------------------------------------------------------------------------


def test_stress_on_a_fork_ape_starts(upstream, tmp_path):
    """Host auto: Ape starts its own anvil forking the upstream, the runner deploys its mocks there."""
    result = ape_run(
        ["stress", "--scenario", "scenarios/flash_crash.yaml", "--network", NETWORK, "--out", str(tmp_path)],
        APE_FOUNDRY_HOST=None,
        BACKSTOP_MAINNET_RPC=upstream.url,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Starting 'anvil' process" in result.stdout + result.stderr
    report = json.loads((tmp_path / "flash_crash.json").read_text())
    assert report["ok"] is True
    assert upstream_state(upstream.w3) == upstream.state


@pytest.mark.parametrize(
    ("args"),
    [
        ["deploy", "--config", "config/mainnet-fork.yaml"],
        ["keeper", "--once"],
        ["stress", "--scenario", "scenarios/flash_crash.yaml"],
    ],
    ids=["deploy", "keeper", "stress"],
)
def test_a_dead_upstream_is_one_line_and_no_fork(args, tmp_path):
    port = free_port()
    result = ape_run(
        [*args, "--network", NETWORK], APE_FOUNDRY_HOST=None, BACKSTOP_MAINNET_RPC=f"http://127.0.0.1:{port}"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        f"{args[0]}: cannot fork: no node answers at http://127.0.0.1:{port} ([Errno 111] Connection refused); "
        "no fork started"
    ]
    assert "Starting 'anvil'" not in result.stdout + result.stderr


def test_an_unset_upstream_is_named():
    result = ape_run(
        ["deploy", "--config", "config/mainnet-fork.yaml", "--network", NETWORK],
        APE_FOUNDRY_HOST=None,
        BACKSTOP_MAINNET_RPC=None,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == (
        "deploy: cannot fork: the upstream ethereum:mainnet has no usable RPC (BACKSTOP_MAINNET_RPC is not set); "
        "set BACKSTOP_MAINNET_RPC to the URL of an ethereum:mainnet node, or name an Ape provider in "
        "foundry.fork.ethereum.mainnet.upstream_provider; no fork started"
    )


def test_an_upstream_of_another_chain_is_refused(upstream):
    result = ape_run(
        ["deploy", "--network", "ethereum:sepolia-fork:foundry"],
        APE_FOUNDRY_HOST=None,
        BACKSTOP_SEPOLIA_RPC=upstream.url,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"deploy: cannot fork: the upstream at {upstream.url} reports chain 1, but sepolia-fork forks "
        "ethereum:sepolia (chain 11155111); no fork started"
    )


def test_an_explicit_host_on_a_fork_network_must_be_that_chain(upstream):
    """APE_FOUNDRY_HOST at a node of chain 31337 (not a fork of mainnet): refused, nothing sent."""
    node, url, w3 = start_anvil()
    try:
        result = ape_run(
            ["deploy", "--network", NETWORK], APE_FOUNDRY_HOST=url, BACKSTOP_MAINNET_RPC=upstream.url
        )
        assert result.returncode == 1, result.stdout + result.stderr
        assert (
            result.stderr.strip()
            == f"deploy: the node at {url} reports chain 31337, not 1: it is not a fork of ethereum:mainnet"
        )
        assert w3.eth.block_number == 0
    finally:
        stop(node)
