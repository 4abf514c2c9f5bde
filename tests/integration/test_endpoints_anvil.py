"""FailoverProvider (backstop.keeper.endpoints) against a real anvil behind a dead primary: reads
and a transaction go to the anvil, the dead URL is counted once and left unhealthy."""

from __future__ import annotations

import logging

from web3 import Web3

from backstop.keeper.endpoints import FailoverProvider
from tests.support.anvil import anvil, block_number, free_port, listening


def test_a_dead_primary_fails_over_to_the_anvil():
    dead_port = free_port()
    dead = f"http://127.0.0.1:{dead_port}"
    events: list[tuple[int, str, dict]] = []
    with anvil() as url:
        assert not listening(dead_port)
        provider = FailoverProvider(
            [dead, url],
            chain_id=31337,
            timeout=5,
            health_interval=600,  # no second check during the test, however slow the machine
            on_event=lambda level, event, **fields: events.append((level, event, fields)),
        )
        w3 = Web3(provider)
        assert w3.eth.block_number == block_number(url) == 0
        assert (provider.endpoints[0].errors, provider.endpoints[0].healthy) == (1, False)
        assert provider.endpoints[0].last_error == "connection refused"
        assert provider.active is provider.endpoints[1] and provider.active.errors == 0
        assert provider.active.head == 0
        assert events == [
            (logging.WARNING, "rpc_endpoint_down", {"url": dead, "error": "connection refused"}),
            (logging.WARNING, "rpc_failover", {"from": dead, "to": url, "reason": "check"}),
        ]

        sender = w3.eth.accounts[0]  # anvil's unlocked account: a write goes through too
        tx = w3.eth.send_transaction({"from": sender, "to": "0x" + "11" * 20, "value": 1})
        assert w3.eth.wait_for_transaction_receipt(tx, timeout=30)["status"] == 1
        assert w3.eth.get_balance("0x" + "11" * 20) == 1
        assert block_number(url) == 1
        assert provider.endpoints[0].errors == 1  # unhealthy: not asked again between checks
        assert len(events) == 2
