"""tests/support/fast_ape.py: Ape without its per-transaction tracing still decodes what the tests
assert. A custom error raised by a callee is that contract's error, with its arguments;
``ape.reverts`` still tells errors and contracts apart; no step-by-step trace is fetched; and an
address's code is asked for once, until a revert to a snapshot may have removed it."""

from __future__ import annotations

import ape
import pytest
from ape.exceptions import ContractLogicError, ContractNotFoundError

from backstop.units import WAD

PRICE = 2000 * WAD


@pytest.fixture
def broken(system, alice, bob, deployer):
    """bob is long against alice, then the market's feed answers zero."""
    market = system.add_market(PRICE)
    system.deposit(alice, 10_000 * 10**6)
    system.deposit(bob, 1_000 * 10**6)
    system.trade(bob, alice, market, WAD, PRICE)
    system.feeds[market].setAnswer(0, sender=deployer)
    return market


@pytest.fixture
def requests(monkeypatch):
    """Every JSON-RPC request sent from here on, as (method, params)."""
    from web3.providers.rpc import HTTPProvider

    seen: list[tuple[str, list]] = []
    original = HTTPProvider.make_request

    def recording(self, method, params):
        seen.append((method, list(params or [])))
        return original(self, method, params)

    monkeypatch.setattr(HTTPProvider, "make_request", recording)
    return seen


def test_an_error_bubbling_from_the_oracle_is_the_oracles_with_its_arguments(system, broken, bob, keeper):
    with pytest.raises(ContractLogicError) as info:
        system.engine.liquidate(bob, sender=keeper)
    assert type(info.value).__name__ == "InvalidPrice"
    assert info.value.contract_address == system.oracle.address
    assert dict(info.value.inputs) == {"marketId": broken, "answer": 0}


def test_reverts_still_refuses_the_wrong_error_and_the_wrong_arguments(system, broken, bob, keeper):
    with ape.reverts(system.oracle.InvalidPrice, marketId=broken, answer=0):
        system.engine.liquidate(bob, sender=keeper)
    with pytest.raises(AssertionError), ape.reverts(system.oracle.StalePrice):
        system.engine.liquidate(bob, sender=keeper)
    with pytest.raises(AssertionError), ape.reverts(system.oracle.InvalidPrice, marketId=broken, answer=1):
        system.engine.liquidate(bob, sender=keeper)


def test_an_engine_error_is_the_engines(system, broken, alice):
    with ape.reverts(system.vault.ZeroAmount):
        system.vault.withdraw(0, sender=alice)


def test_no_step_trace_is_fetched_for_a_transaction_or_a_revert(system, broken, bob, keeper, alice, requests):
    system.engine.settle(alice, sender=keeper)  # a successful transaction to a contract
    with ape.reverts(system.oracle.InvalidPrice):
        system.engine.liquidate(bob, sender=keeper)
    traces = [(m, p) for m, p in requests if "trace" in m.lower()]
    # Only the call tracer, once, for the revert whose error came from a callee.
    assert [(m, p[1:]) for m, p in traces] == [("debug_traceTransaction", [{"tracer": "callTracer"}])]


def test_an_address_is_asked_for_its_code_once_until_a_revert_removes_the_contract(
    chain, project, deployer, alice, requests
):
    with chain.isolate():
        token = project.MockERC20.deploy("USD Coin", "USDC", 6, sender=deployer)
        del requests[:]
        assert token.balanceOf(alice) == 0
        token.mint(alice, 5, sender=deployer)
        assert token.balanceOf(alice) == 5
        assert [m for m, _ in requests].count("eth_getCode") == 1
    # The snapshot is restored: the token is gone, and calling it is refused as Ape refuses it.
    with pytest.raises(ContractNotFoundError):
        token.balanceOf(alice)
