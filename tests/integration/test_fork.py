"""Rehearsing on a fork, offline (issue #17): an "upstream" anvil with chain id 1 stands in for
mainnet, with proxies over a MockAggregator that refuse its setters at Chainlink's ETH/USD and
BTC/USD proxy addresses and a proxy over a MockERC20 that refuses ``mint`` at USDC's address; a
second anvil forks it. The suite is deployed on the fork with ``config/mainnet-fork.yaml`` (``ape
run deploy --network ethereum:mainnet-fork:foundry``), accounts are funded through the node
(``fund_token``: a holder's transfer and the storage probe through the proxy), a crash is written
into the real feed address (``set_feed_answer``) and ``ape run keeper --once`` liquidates. The
upstream must be unchanged by all of it. ``ape run populate`` does the same on a fork of its own:
funds through the balance slots, trades, replaces the feed on ``--move`` and moves the replaced
feed again. Also: the stress runner on a fork Ape starts itself, and a dead, unset or wrong-chain
upstream refused in one line before any anvil starts.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import solcx
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError
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
from backstop.chain.populate import PopulateError, execute, plan
from backstop.chain.suite import CONTRACTS, open_suite
from backstop.config import load_config
from backstop.orders import FAR_EXPIRY, Order, sign_order, to_tuple
from tests.integration.test_populate import table_rows
from tests.support.anvil import ANVIL, APE, ROOT, free_port

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
#: What mainnet's contracts do not let a test account call: USDC's mint (minters only) and the
#: setters of MockAggregator (a Chainlink aggregator proxy has none).
TOKEN_SETTERS = ("mint(address,uint256)",)
FEED_SETTERS = (
    "setAnswer(int256)",
    "setAnswerAt(int256,uint256,uint256)",
    "setRoundId(uint80)",
    "setDecimals(uint8)",
)


def refusing(blocked: tuple[str, ...], body: Callable[[int], bytes]) -> bytes:
    """Runtime code that reverts (empty data) on a call to one of the ``blocked`` signatures and
    otherwise runs ``body(start)``, the code assembled to begin at byte ``start``."""
    if not blocked:
        return body(0)
    guard = "".join(f"80 63{keccak(text=sig)[:4].hex()} 14 61{{revert:04x}} 57 " for sig in blocked)
    head = f"5f35 60e0 1c {guard}50"  # selector; for each blocked one: dup, eq, jumpi revert; pop
    start = len(bytes.fromhex(head.format(revert=0)))
    code = body(start)
    return bytes.fromhex(head.format(revert=start + len(code))) + code + bytes.fromhex("5b5f5ffd")


def proxy_code(blocked: tuple[str, ...] = ()) -> bytes:
    """The proxy's runtime, refusing the ``blocked`` signatures before anything is delegated."""
    return refusing(
        blocked,
        lambda start: bytes.fromhex(
            f"365f5f37 5f5f365f 7f{IMPLEMENTATION_SLOT:064x} 545af4 3d5f5f3e 60{start + 0x36:02x}57 3d5ffd 5b3d5ff3"
        ),
    )


PROXY_CODE = proxy_code()


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
        "implementation": {
            a: rpc(w3, "eth_getStorageAt", a, hex(IMPLEMENTATION_SLOT), "latest") for a in (*FEEDS, USDC)
        },
        "holder": usdc.functions.balanceOf(HOLDER).call(),
        "supply": usdc.functions.totalSupply().call(),
    }


@pytest.fixture(scope="module")
def artifacts() -> Artifacts:
    return Artifacts.load()


def stand_in_for_mainnet(w3: Web3, artifacts: Artifacts) -> str:
    """Writes Chainlink's two feeds and USDC at their mainnet addresses of the node ``w3``, as
    contracts a test account can only read and transfer, like mainnet's: each feed a proxy over a
    ``MockAggregator`` that refuses its setters (``FEED_SETTERS``), with the feed's state in the
    proxy's storage; USDC a proxy over a 6-decimal ``MockERC20`` that refuses ``mint``, after
    ``HOLDER_BALANCE`` was minted to ``HOLDER``. Returns the token implementation's address."""
    dev = w3.eth.accounts[0]
    now = w3.eth.get_block("latest")["timestamp"]
    aggregator = send(w3, dev, None, artifacts.initcode("MockAggregator", None, 8, 1, "implementation"))[
        "contractAddress"
    ]
    for feed, (description, round_id, answer) in FEEDS.items():
        rpc(w3, "anvil_setCode", feed, "0x" + proxy_code(FEED_SETTERS).hex())
        words = {
            IMPLEMENTATION_SLOT: int(aggregator, 16),
            **mock_aggregator_storage(8, description, round_id, answer, now, now),
        }
        for slot, word in words.items():
            rpc(w3, "anvil_setStorageAt", feed, hex(slot), "0x" + word.to_bytes(32, "big").hex())
    init = artifacts.initcode("MockERC20", None, "USD Coin", "USDC", 6)
    implementation = send(w3, dev, None, init)["contractAddress"]
    rpc(w3, "anvil_setCode", USDC, "0x" + PROXY_CODE.hex())
    rpc(w3, "anvil_setStorageAt", USDC, hex(IMPLEMENTATION_SLOT), "0x" + bytes(12).hex() + implementation[2:])
    transact(w3, dev, contract(w3, artifacts, "MockERC20", USDC).functions.mint(HOLDER, HOLDER_BALANCE))
    rpc(w3, "anvil_setCode", USDC, "0x" + proxy_code(TOKEN_SETTERS).hex())
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


@contextmanager
def forking(upstream) -> Iterator[SimpleNamespace]:
    node, url, w3 = start_anvil("--fork-url", upstream.url, "--hardfork", "cancun", "--mnemonic", MNEMONIC)
    try:
        yield SimpleNamespace(url=url, w3=w3)
    finally:
        stop(node)


@pytest.fixture(scope="module")
def fork(upstream):
    with forking(upstream) as node:
        yield node


@pytest.fixture
def fresh_fork(upstream):
    """A fork of the upstream as it is, for a test that must not see what others did on ``fork``."""
    with forking(upstream) as node:
        yield node


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
        # Like mainnet's, the feed takes no answer from a test account, and USDC mints nothing.
        with pytest.raises(ContractLogicError):
            agg.functions.setAnswer(1).estimate_gas({"from": key(1).address})
    usdc = contract(upstream.w3, artifacts, "MockERC20", USDC)
    with pytest.raises(ContractLogicError):
        usdc.functions.mint(key(1).address, 1).estimate_gas({"from": key(1).address})
    assert usdc.functions.balanceOf(HOLDER).call() == usdc.functions.totalSupply().call() == HOLDER_BALANCE


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


def deploy_on_fork(manifest_path, env):
    """``ape run deploy`` of config/mainnet-fork.yaml on the fork ``env`` points at; must succeed."""
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
    return deployed


def keeper_once_on_fork(manifest_path, state_path, env):
    """``ape run keeper --once`` on the fork ``env`` points at, with its own state file; must succeed."""
    ran = ape_run(
        [
            "keeper",
            "--once",
            "--network",
            NETWORK,
            "--deployment",
            str(manifest_path),
            "--state",
            str(state_path),
        ],
        **env,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran


def test_rehearsal_deploy_fund_crash_liquidate(upstream, fork, artifacts, tmp_path):
    env = {"APE_FOUNDRY_HOST": fork.url, "BACKSTOP_MAINNET_RPC": upstream.url}
    manifest_path = tmp_path / "manifest.json"
    deployed = deploy_on_fork(manifest_path, env)
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
    keeper_once_on_fork(manifest_path, tmp_path / "keeper.json", env)
    logs = engine.events.Liquidated().get_logs(from_block=head + 1)
    assert [log["args"]["account"] for log in logs] == [long.address]
    assert engine.functions.positionOf(long.address, eth_id).call()[0] == 0
    assert engine.functions.positionOf(short.address, eth_id).call()[0] == -size

    assert upstream_state(upstream.w3) == upstream.state


def populate_here(w3: Web3, manifest: Path, artifacts: Artifacts, **options) -> list[str]:
    """What ``ape run populate`` does, in this process: plan, then send; the lines it says."""
    suite = open_suite(w3, manifest, {name: artifacts.abi(name) for name in CONTRACTS})
    keys = [key(i).key.hex() for i in range(10)]
    said: list[str] = []
    execute(suite, plan(suite, keys, **options), keys, say=said.append)
    return said


def populate(manifest: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = ape_run(["populate", "--network", NETWORK, "--manifest", str(manifest), *args], **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Starting 'anvil'" not in result.stdout + result.stderr
    return result


def test_populate_on_a_fork_funds_through_the_node_replaces_the_feed_and_the_keeper_liquidates(
    upstream, fresh_fork, artifacts, tmp_path
):
    """``ape run populate`` on a fork whose token refuses ``mint`` and whose feeds refuse
    ``setAnswer``: tokens through the balance slot, the crash by replacing the feed, and a second
    move through the replaced (now mock) feed."""
    env = {"APE_FOUNDRY_HOST": fresh_fork.url, "BACKSTOP_MAINNET_RPC": upstream.url}
    manifest_path = tmp_path / "manifest.json"
    deploy_on_fork(manifest_path, env)
    manifest = json.loads(manifest_path.read_text())
    w3 = fresh_fork.w3
    address = {name: c["address"] for name, c in manifest["contracts"].items()}
    oracle = contract(w3, artifacts, "OracleAdapter", address["OracleAdapter"])
    engine = contract(w3, artifacts, "MarginEngine", address["MarginEngine"])
    vault = contract(w3, artifacts, "CollateralVault", address["CollateralVault"])
    usdc = contract(w3, artifacts, "MockERC20", USDC)
    eth_id, btc_id = manifest["markets"]["ETH"]["id"], manifest["markets"]["BTC"]["id"]
    keeper, long, short = key(0).address, key(1).address, key(2).address

    funded = populate(manifest_path, "--accounts", "2", "--keeper-collateral", "50000", env=env)
    lines = funded.stdout.splitlines()
    for index, amount in ((0, "50000"), (1, "10000"), (2, "10000")):
        assert (
            f"account {index}: {amount} tokens put in its balance slot through the node (the token has no mint)"
            in lines
        )
    size = 14_464_328 * 10**12  # 5 x 10,000 / 3,456.78, rounded down to 10^-6 ETH
    price = FEEDS[ETH_USD][2] * 10**10
    assert "accounts 1 long / 2 short: 14.464328 ETH at 3456.78" in lines
    # Every token came from the balance slots: nothing minted, nothing from the holder.
    assert usdc.functions.totalSupply().call() == usdc.functions.balanceOf(HOLDER).call() == HOLDER_BALANCE
    for account in (keeper, long, short):
        assert usdc.functions.balanceOf(account).call() == 0  # all deposited
    # Notional 49,999.99974384: taker fee 0.05 % and maker fee 0.02 %, rounded up to USDC's unit.
    assert vault.functions.marginOf(keeper).call() == 50_000 * WAD
    assert vault.functions.marginOf(long).call() == 9_975 * WAD
    assert vault.functions.marginOf(short).call() == 9_990 * WAD
    # The fees are the fund's credit, kept in the vault until sweepToFund (docs/design.md §6).
    assert usdc.functions.balanceOf(vault.address).call() == 70_000 * USD
    assert vault.functions.fundCredit().call() == 35 * USD
    assert usdc.functions.balanceOf(address["InsuranceFund"]).call() == 0
    assert engine.functions.positionOf(long, eth_id).call() == [size, size * price // WAD]
    assert engine.functions.positionOf(short, eth_id).call()[0] == -size
    rows = table_rows(funded.stdout)
    assert [r[:2] + r[3:] for r in rows] == [
        ["0", "keeper", "50,000.00", "50,000.00", "-", "50,000.00", "0.00", "no"],
        ["1", "long", "10,000.00", "9,975.00", "ETH 14.464328", "9,975.00", "2,500.00", "no"],
        ["2", "short", "10,000.00", "9,990.00", "ETH -14.464328", "9,990.00", "2,500.00", "no"],
    ]
    assert upstream_state(upstream.w3) == upstream.state

    # -18 %: below maintenance (MMR 5 %), short of bankruptcy (-1/leverage = -20 %).
    crash = populate(manifest_path, "--move", "ETH=-18%", env=env)
    assert (
        "moved ETH: 3456.78 -> 2834.5596 (the feed's code replaced by MockAggregator on the fork)"
        in crash.stdout
    )
    crashed = 2_834_5596 * 10**4
    assert oracle.functions.priceOf(eth_id).call() == crashed * 10**10
    assert oracle.functions.priceOf(btc_id).call() == FEEDS[BTC_USD][2] * 10**10
    assert (
        rpc(w3, "eth_getCode", ETH_USD, "latest") == "0x" + artifacts.runtime_bytecode("MockAggregator").hex()
    )
    feed = contract(w3, artifacts, "MockAggregator", ETH_USD)
    description, round_id, answer = FEEDS[ETH_USD]
    assert feed.functions.latestRoundData().call()[:2] == [round_id + 1, crashed]
    assert feed.functions.description().call() == description
    upstream_feed = contract(upstream.w3, artifacts, "MockAggregator", ETH_USD)
    assert upstream_feed.functions.latestRoundData().call()[:2] == [round_id, answer]
    # E = 9,975 + 14.464328 x (2,834.5596 - 3,456.78) = 975.0000461088 < MMR = 5 % of 40,999.9998...
    equity = 9_975 * WAD + size * crashed // 10**8 - size * answer // 10**8
    assert engine.functions.equityOf(long).call() == equity == 975_0000461088 * 10**8
    assert engine.functions.maintenanceMarginOf(long).call() == size * crashed // 10**8 // 20
    assert table_rows(crash.stdout)[1][6:] == ["975.00", "2,050.00", "yes"]
    assert upstream_state(upstream.w3) == upstream.state

    head = w3.eth.block_number
    keeper_once_on_fork(manifest_path, tmp_path / "k.json", env)
    logs = engine.events.Liquidated().get_logs(from_block=head + 1)
    assert [log["args"]["account"] for log in logs] == [long]
    assert engine.functions.marketsOf(long).call() == []
    assert engine.functions.positionOf(keeper, eth_id).call()[0] == size  # the keeper took the long
    assert engine.functions.positionOf(short, eth_id).call()[0] == -size

    # The replaced ETH feed is a MockAggregator now: its setAnswer moves it; BTC's is replaced.
    # From here on populate runs in this process (backstop.chain.populate, what the command calls).
    again = populate_here(w3, manifest_path, artifacts, moves=["ETH=-10%", "BTC=+5%"])
    assert "moved ETH: 2834.5596 -> 2551.10364" in again
    assert "moved BTC: 65432.1 -> 68703.705 (the feed's code replaced by MockAggregator on the fork)" in again
    assert oracle.functions.priceOf(eth_id).call() == 2_551_10364 * 10**13
    assert oracle.functions.priceOf(btc_id).call() == 68_703_705 * 10**15
    assert feed.functions.latestRoundData().call()[:2] == [round_id + 2, 2_551_10364 * 10**3]
    btc_round = FEEDS[BTC_USD][1]
    btc_feed = contract(w3, artifacts, "MockAggregator", BTC_USD)
    assert btc_feed.functions.latestRoundData().call()[:2] == [btc_round + 1, 68_703_705 * 10**5]
    assert upstream_state(upstream.w3) == upstream.state

    # A token without mint whose balances are not in the probed slots: refused, nothing sent.
    rpc(
        w3,
        "anvil_setCode",
        USDC,
        "0x" + refusing(TOKEN_SETTERS, lambda _: balance_only_token("solidity", 70)).hex(),
    )
    # First the manifest, which recorded USDC's code, refuses the swapped code; then, with the
    # manifest rewritten for it (as a deploy with such a token would have written it), populate
    # refuses the token itself.
    head = w3.eth.block_number
    with pytest.raises(PopulateError, match=f"CollateralToken at {USDC}: runtime code hash 0x"):
        populate_here(w3, manifest_path, artifacts, accounts=0)
    rewritten = json.loads(manifest_path.read_text())
    rewritten["contracts"]["CollateralToken"]["code_hash"] = "0x" + keccak(w3.eth.get_code(USDC)).hex()
    manifest_path.write_text(json.dumps(rewritten))
    with pytest.raises(PopulateError) as refused:
        populate_here(w3, manifest_path, artifacts, accounts=4, collateral="1")
    assert str(refused.value) == (
        f"the collateral token {USDC} is not a mock (no mint), and no balance mapping of it was "
        "found in slots 0..63 to fund the accounts through"
    )
    assert w3.eth.block_number == head
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
