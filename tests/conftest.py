"""Fixtures shared by every test: named accounts and deployed building blocks.

Ape reverts the chain to a snapshot around every test, so module-level deployments are cheap and
each test starts from the same state.
"""

from __future__ import annotations

import pytest

# Ape without the tracing it does for an interactive user (tests/support/fast_ape.py).
pytest_plugins = ["tests.support.fast_ape"]


@pytest.fixture(scope="session")
def deployer(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def alice(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def bob(accounts):
    return accounts[2]


@pytest.fixture(scope="session")
def stranger(accounts):
    return accounts[9]


@pytest.fixture(scope="session")
def make_token(project, deployer):
    """Deploys a plain mintable ERC-20 with the given decimals."""

    def _make(decimals: int = 6):
        return project.MockERC20.deploy("USD Coin", "USDC", decimals, sender=deployer)

    return _make


@pytest.fixture(scope="session")
def make_feed(project, deployer):
    """Deploys a settable Chainlink-style aggregator."""

    def _make(decimals: int = 8, answer: int = 2000 * 10**8, description: str = "ETH / USD"):
        return project.MockAggregator.deploy(decimals, answer, description, sender=deployer)

    return _make


@pytest.fixture(scope="session")
def vault_state():
    """Everything a vault call could move: token balances of the vault and the given holders, and
    the margin ledger (per account and total). Compare before/after to prove nothing moved."""

    def _state(vault, token, *holders):
        return {
            "vault_tokens": token.balanceOf(vault),
            "total_margin": vault.totalMargin(),
            **{f"tokens:{h.address}": token.balanceOf(h) for h in holders},
            **{f"margin:{h.address}": vault.marginOf(h) for h in holders},
        }

    return _state


@pytest.fixture(scope="session")
def deploy_revert_data(chain):
    """Simulates deploying ``container(*args)`` with ``eth_call`` and returns the revert data.

    Ape's own decoder mishandles some constructor errors (string arguments), so constructor
    rejections are asserted on the raw bytes, compared with ``backstop.chain.abi.encode_call``."""
    from eth_abi import encode
    from web3.exceptions import ContractLogicError as Web3LogicError

    def _run(container, *args, sender) -> bytes:
        ctor = next((item for item in container.contract_type.abi if item.type == "constructor"), None)
        types = [i.canonical_type for i in ctor.inputs] if ctor else []
        data = bytes(container.contract_type.deployment_bytecode.to_bytes()) + encode(types, list(args))
        web3 = chain.provider.web3
        with pytest.raises(Web3LogicError) as info:
            web3.eth.call({"from": sender.address, "data": data})
        raw = info.value.data
        return bytes.fromhex(raw.removeprefix("0x")) if isinstance(raw, str) else bytes(raw)

    return _run


@pytest.fixture(scope="session")
def carol(accounts):
    return accounts[3]


@pytest.fixture(scope="session")
def dave(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def keeper(accounts):
    return accounts[5]


@pytest.fixture(scope="session")
def shared_suite(project, chain, deployer):
    """One default suite (6-decimal collateral, default fund), deployed once per test session.

    Ape snapshots the chain after session fixtures and reverts to that snapshot around every test,
    so each test that drives it starts from the just-deployed state, exactly as if it had deployed
    its own (which costs about half a second of RPC round trips per test)."""
    from tests.support.system import deploy_test_suite

    return deploy_test_suite(project, chain, deployer)


@pytest.fixture
def system(project, chain, deployer, shared_suite):
    """A just-deployed suite (6-decimal collateral) in lockstep with a fresh reference model."""
    from tests.support.system import System

    return System(project, chain, deployer, suite=shared_suite)
