"""Helpers of the liquidation tests: refused calls, what they must leave untouched, the buffer."""

from __future__ import annotations

from eth_abi import encode as abi_encode


def rejected(result, name: str, *args) -> None:
    assert not isinstance(result, dict), f"expected {name}, the call succeeded"
    assert result.name == name
    if args:
        assert result.args == args, f"{name}{result.args}, expected {name}{args}"


def observables(system, *accounts) -> tuple:
    """What a refused call must leave untouched: margins, positions, the fund, the vault."""
    return (
        tuple(system.vault.marginOf(a) for a in accounts),
        tuple(tuple(system.engine.positionOf(a, m)) for a in accounts for m in range(len(system.feeds))),
        system.token.balanceOf(system.vault),
        system.token.balanceOf(system.fund),
        system.vault.fundCredit(),
        tuple(tuple(system.engine.lossIndexOf(m)) for m in range(len(system.feeds))),
    )


def chain_error(system, call: tuple, sender, name: str, types: list[str], values: list) -> None:
    """The chain's revert data for ``call`` (method, args) is exactly ``name(values)``."""
    method, args = call
    assert system.revert_data(method, args, sender) == system.selectors[name] + abi_encode(types, values)


def buffer(system, account) -> int:
    """`E − MMR` read from the chain."""
    return system.engine.equityOf(account) - system.engine.maintenanceMarginOf(account)
