"""The keeper's fee control against a deployed suite on anvil (Ape's test chain, the lockstep
harness): re-pricing a transaction that sits in the mempool (automine off), and the profitability
floor and fee cap at a high base fee."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from eth_utils import keccak, to_checksum_address
from web3 import HTTPProvider, Web3

from backstop.chain.tx import GWEI
from backstop.keeper import Keeper, LocalSigner
from backstop.keeper.risk import human
from backstop.units import WAD

TOKEN = 10**6
ETH = 2000 * WAD
CRASH = 1700 * WAD
LIQUIDATED_TOPIC = keccak(text="Liquidated(address,address,uint256,uint256,uint256,uint256,uint256,uint256)")


def web3_for(url: str) -> Web3:
    return Web3(HTTPProvider(url, exception_retry_configuration=None))


@pytest.fixture
def crashed(system, chain, accounts):
    """One long (``size`` ETH on ``margin`` tokens) made liquidatable by a crash to 1,700; the
    keeper account funded and never used through Ape. Returns (market, trader, short, keeper,
    first block to index)."""

    def _make(margin: int, size: int):
        start = chain.blocks.head.number
        eth = system.add_market(ETH)
        trader, short, keeper = accounts[10], accounts[30], accounts[40]
        system.deposit(keeper, 1_000_000 * TOKEN)
        system.deposit(short, 5_000_000 * TOKEN)
        system.deposit(trader, margin * TOKEN)
        system.trade(trader, short, eth, size, ETH)
        system.set_price(eth, CRASH)
        assert system.model.liquidatable(trader.address)
        return eth, trader, short, keeper, start

    return _make


def liquidations(web3: Web3, engine: str, since: int) -> list[tuple[str, str]]:
    logs = web3.eth.get_logs(
        {"address": engine, "fromBlock": since, "toBlock": "latest", "topics": [LIQUIDATED_TOPIC.hex()]}
    )
    return [
        (to_checksum_address(bytes(e["topics"][1])[-20:]), to_checksum_address(bytes(e["topics"][2])[-20:]))
        for e in logs
    ]


def events(caplog, name: str) -> list[dict]:
    return [r.keeper_fields for r in list(caplog.records) if getattr(r, "keeper_event", None) == name]


def wait_for(caplog, name: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := events(caplog, name):
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no keeper {name} line within {timeout} s")


def test_it_reprices_a_stuck_transaction_anvil_with_automine_off(system, chain, crashed, caplog):
    caplog.set_level(logging.INFO, logger="backstop.keeper")
    eth, trader, short, k, start = crashed(210, WAD)
    w3 = web3_for(chain.provider.uri)
    assert w3.eth.get_block("latest")["baseFeePerGas"] == 0  # Ape's anvil: the fee is the tip
    # 1 gwei, re-priced once to 1.12 gwei; the cap leaves no second +10 % (reprice_capped).
    keeper = Keeper(
        w3,
        system.engine.address,
        LocalSigner(k.private_key),
        start_block=start,
        priority_fee=GWEI,
        max_fee=1_120_000_000,
        reprice_after=0.5,
    )
    nonce = w3.eth.get_transaction_count(k.address)
    reports: list = []
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        runner = threading.Thread(target=lambda: reports.append(keeper.run_once()), daemon=True)
        runner.start()
        sent = wait_for(caplog, "sent")
        old = w3.eth.get_transaction(sent["tx"])  # before its replacement evicts it
        repriced = wait_for(caplog, "repriced")
        wait_for(caplog, "reprice_capped")
        new = w3.eth.get_transaction(repriced["new_tx"])
        assert (old["nonce"], new["nonce"]) == (nonce, nonce)
        assert (old["maxFeePerGas"], old["maxPriorityFeePerGas"]) == (GWEI, GWEI)
        assert new["maxFeePerGas"] == old["maxFeePerGas"] * 112 // 100 == 1_120_000_000
        assert new["maxPriorityFeePerGas"] == 1_120_000_000
        assert (new["input"], new["gas"], new["to"]) == (old["input"], old["gas"], old["to"])
        assert repriced == {
            "tx": sent["tx"],
            "new_tx": new["hash"].to_0x_hex(),
            "nonce": nonce,
            "max_fee_gwei": "1.12",
            "priority_fee_gwei": "1.12",
        }
        assert reports == []  # still waiting: nothing mined yet
        w3.provider.make_request("evm_mine", [])
        runner.join(60)
        assert not runner.is_alive()
    finally:
        w3.provider.make_request("evm_setAutomine", [True])

    [report] = reports
    [confirmed] = events(caplog, "confirmed")
    assert confirmed["tx"] == repriced["new_tx"] != sent["tx"]
    assert report.tx_hashes == [repriced["new_tx"]]
    assert (report.sent, report.confirmed, report.failed) == (1, 1, 0)
    assert report.liquidated == [trader.address]
    receipt = w3.eth.get_transaction_receipt(repriced["new_tx"])
    assert receipt["status"] == 1
    assert len(events(caplog, "repriced")) == 1 and len(events(caplog, "reprice_capped")) == 1
    assert w3.eth.get_transaction_count(k.address) == nonce + 1
    found = liquidations(w3, system.engine.address, start)
    assert found == [(trader.address, k.address)]  # exactly once
    system.model.liquidate(trader.address, k.address)
    system.check(trader, short, k)


def test_it_skips_an_unprofitable_liquidation_at_a_low_fee_cap_and_counts_it(system, chain, crashed, caplog):
    caplog.set_level(logging.INFO, logger="backstop.keeper")
    eth, trader, short, k, start = crashed(21, WAD // 10)  # 0.1 ETH: K = 1 % of 170 = 1.7
    w3 = web3_for(chain.provider.uri)
    w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(50 * GWEI)])
    w3.provider.make_request("evm_mine", [])
    assert w3.eth.get_block("latest")["baseFeePerGas"] == 50 * GWEI
    nonce = w3.eth.get_transaction_count(k.address)

    def keeper(**fees) -> Keeper:
        return Keeper(
            w3,
            system.engine.address,
            LocalSigner(k.private_key),
            start_block=start,
            market_names={eth: "ETH"},
            priority_fee=GWEI,
            **fees,
        )

    # A cap under the base fee: nothing can be mined, nothing is sent.
    capped = keeper(max_fee=40 * GWEI).run_once()
    assert (capped.failed, capped.sent, capped.unprofitable) == (1, 0, 0)
    assert events(caplog, "fee_capped")[0]["base_fee_gwei"] == "50"

    # The cap binds (2·50 + 1 = 101 gwei → 60): the gas at 60 gwei and the ETH market's 1,700 per
    # ETH is far above the reward of 1.7.
    low = keeper(max_fee=60 * GWEI)
    report = low.run_once()
    assert (report.unprofitable, report.sent, report.failed, report.liquidated) == (1, 0, 0, [])
    assert low.counters["unprofitable"] == 1
    [line] = events(caplog, "unprofitable")
    cost = -(-line["gas"] * 60 * GWEI * CRASH // WAD)
    assert (line["reward"], line["max_fee_gwei"]) == ("1.700000", "60")
    assert line["gas_cost"] == human(cost, 6) and cost > 17 * WAD // 10
    assert "unprofitable=1" in [r.getMessage() for r in caplog.records if "keeper pass" in r.getMessage()][-1]
    assert w3.eth.get_transaction_count(k.address) == nonce
    assert low.run_once().unprofitable == 1 and low.counters["unprofitable"] == 2  # summed
    assert system.model.liquidatable(trader.address)
    assert liquidations(w3, system.engine.address, start) == []

    # Gas priced at 1 quote unit per ETH (the setting wins over the market's price): liquidated.
    generous = keeper(max_fee=60 * GWEI, eth_price=WAD).run_once()
    assert (generous.unprofitable, generous.sent, generous.confirmed) == (0, 1, 1)
    assert generous.liquidated == [trader.address]
    assert liquidations(w3, system.engine.address, start) == [(trader.address, k.address)]
    system.model.liquidate(trader.address, k.address)
    system.check(trader, short, k)
