"""Fixtures of the security tests: an ETH market with two funded traders, a ledger snapshot that
proves nothing moved, raw revert data, and a suite deployed over a hostile collateral token."""

from __future__ import annotations

from dataclasses import replace

import pytest
from web3.exceptions import ContractLogicError as Web3LogicError

from backstop.units import WAD

PRICE = 2000 * WAD  # the ETH market of the security tests
TOKEN = 10**6  # one unit of the 6-decimal collateral


@pytest.fixture
def eth(system, alice, bob):
    """An ETH market at 2,000 with alice and bob holding 10,000 tokens of margin each."""
    market = system.add_market(PRICE)
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 10_000 * TOKEN)
    return market


@pytest.fixture(scope="session")
def ledger():
    """Everything a refused call could have moved in a deployed suite, read without any oracle
    price (so it still works while a feed is broken): token balances of the vault, the fund and
    each given account; their margins, positions, market lists, pending losses, nonces, fund
    shares and redeem requests; every market's open interest, loss indices, parameters and
    pause flag; the engine's running totals and the solvency identity. Compare before/after."""

    def _ledger(system, *accounts) -> dict:
        engine, vault, fund, token = system.engine, system.vault, system.fund, system.token
        markets = range(engine.marketCount())
        state = {
            "tokens:vault": token.balanceOf(vault),
            "tokens:fund": token.balanceOf(fund),
            "escrow": fund.balanceOf(fund),
            "total_margin": vault.totalMargin(),
            "fund": (fund.totalSupply(), fund.totalAssets()),
            "engine": (engine.netOpenNotional(), engine.unsettledLoss(), engine.globalPaused()),
            "solvency": tuple(engine.solvency()),
            "market_count": len(markets),
        }
        for m in markets:
            state[f"market:{m}"] = (
                engine.openInterestOf(m),
                tuple(engine.lossIndexOf(m)),
                tuple(engine.marketParams(m)),
                engine.isPaused(m),
            )
        for a in accounts:
            state[f"account:{a.address}"] = (
                token.balanceOf(a),
                vault.marginOf(a),
                tuple(engine.marketsOf(a)),
                tuple(tuple(engine.positionOf(a, m)) for m in markets),
                engine.pendingLossOf(a),
                engine.minNonceOf(a),
                fund.balanceOf(a),
                tuple(fund.redeemRequestOf(a)),
                (fund.pendingRedeemRequest(0, a), fund.claimableRedeemRequest(0, a)),
            )
        return state

    return _ledger


@pytest.fixture(scope="session")
def revert_data(chain):
    """The complete revert data of ``method(*args)`` sent by ``sender``, simulated with
    ``eth_call`` (fails if the call succeeds). For reverts Ape cannot decode (panics)."""

    def _run(method, *args, sender) -> bytes:
        tx = method.as_transaction(*args, sender=sender)
        try:
            chain.provider.web3.eth.call({"from": sender.address, "to": tx.receiver, "data": bytes(tx.data)})
        except Web3LogicError as err:
            data = err.data if isinstance(err.data, str) else "0x"
            return bytes.fromhex(data.removeprefix("0x"))
        raise AssertionError(f"{method} succeeded; a revert was expected")

    return _run


@pytest.fixture
def system_over(project, chain, deployer, monkeypatch):
    """``system_over(token)``: the production deployment path and the lockstep harness, with
    ``token`` (a hostile mock) as the collateral instead of a fresh plain ERC-20."""
    import tests.support.system as harness

    real_deploy = harness.deploy_suite

    def _make(token):
        def deploy_over_token(project_, chain_, sender, config, *, local):
            return real_deploy(
                project_, chain_, sender, replace(config, collateral_token=token.address), local=local
            )

        monkeypatch.setattr(harness, "deploy_suite", deploy_over_token)
        return harness.System(project, chain, deployer, decimals=token.decimals())

    return _make
