"""Ape without the per-transaction tracing it does for an interactive user (a pytest plugin).

Measured on this suite (``PYTEST_ADDOPTS=--durations=0``, docs/testing.md), Ape 0.8.51 with
ape-foundry 0.8.12 spends most of a reverting test's time in tracing it never shows us:

- after every transaction to a contract it fetches a full trace to print Solidity ``console.log``
  output (``_post_send_transaction``); Backstop's contracts have none;
- after every reverted transaction it prints the call trace (``trace.show()``), and when the custom
  error came from a callee (an oracle error bubbling up through the engine, say) it replays a
  step-by-step trace of the transaction, tens of thousands of frames, to find the contract that
  raised it: about three seconds per revert;
- before every call and transaction to a contract it asks the node for the contract's code, to
  refuse an address without any: a fifth of a lockstep test's requests.

This plugin keeps what the tests assert (the custom error, its arguments and the contract that
declared it, so ``ape.reverts(system.oracle.StalePrice, ...)`` still checks the raising contract)
and finds a callee's error with anvil's call tracer instead: one small JSON tree of the calls,
from which the innermost frame that reverted with exactly these bytes names the contract.
An address is asked for its code once, then remembered as a contract until the chain is reverted
to a snapshot (Ape does that around every test), which may remove it. Nothing else of Ape
changes; a network that is not anvil falls back to Ape's own path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ape_ethereum.provider as ape_provider
from ape.contracts.base import ContractMethodHandler
from ape.exceptions import ContractLogicError, TransactionError
from ape.managers.chain import ChainManager
from ape_ethereum.ecosystem import Ethereum
from ape_foundry.provider import FoundryProvider
from hexbytes import HexBytes

_original_decode = Ethereum.decode_custom_error
_original_validate = ContractMethodHandler._validate_is_contract
_original_restore = ChainManager.restore

#: Addresses known to hold code since the chain was last reverted to a snapshot.
_known_contracts: set[str] = set()


def _validate_is_contract(self: ContractMethodHandler) -> None:
    address = self.contract.address
    if address not in _known_contracts:
        _original_validate(self)  # raises ContractNotFoundError for an address without code
        _known_contracts.add(address)


def _restore(self: ChainManager, *args: Any, **kwargs: Any) -> None:
    _known_contracts.clear()  # a revert may remove contracts deployed since the snapshot
    _original_restore(self, *args, **kwargs)


def _no_debug_logs(tx: Any, receipt: Any) -> None:
    """Replaces Ape's post-send hook, whose only work is printing ``console.log`` output."""


def _reverted_frames(frame: dict, data: str) -> Iterator[str]:
    """Addresses of the frames under ``frame`` (innermost first) that reverted with ``data``."""
    for child in frame.get("calls") or ():
        yield from _reverted_frames(child, data)
    if frame.get("error") and (frame.get("output") or "0x").lower() == data:
        yield frame["to"]


def _decode_custom_error(self: Ethereum, data: HexBytes, address: Any, **kwargs: Any):
    # The receiving contract's own errors: Ape's path, which needs no trace.
    no_trace = {k: v for k, v in kwargs.items() if k != "txn"}
    if found := _original_decode(self, data, address, **no_trace):
        return found
    txn = kwargs.get("txn")
    provider = self.network_manager.active_provider
    if txn is None or not isinstance(provider, FoundryProvider):
        return _original_decode(self, data, address, **kwargs)
    try:
        tx_hash = txn.txn_hash
        tx_hash = tx_hash if isinstance(tx_hash, str) else HexBytes(tx_hash).to_0x_hex()
        tree = provider.make_request("debug_traceTransaction", [tx_hash, {"tracer": "callTracer"}])
    except Exception:  # an unsent call or a node without tracing: Ape's own path
        return _original_decode(self, data, address, **kwargs)
    wanted = HexBytes(data).to_0x_hex().lower()
    for callee in _reverted_frames(dict(tree), wanted):
        checksummed = self.decode_address(callee)
        if checksummed != address and (found := _original_decode(self, data, checksummed, **no_trace)):
            return found
    return None


def _handle_execution_reverted(self: FoundryProvider, exception: Exception, revert_message=None, **kwargs):
    """Ape's foundry handler without printing the call trace of every revert."""
    revert_message = revert_message or TransactionError.DEFAULT_MESSAGE
    if revert_message == "0x":
        revert_message = TransactionError.DEFAULT_MESSAGE
    if revert_message.startswith("revert: "):
        revert_message = revert_message[len("revert: ") :]
    error = ContractLogicError(base_err=exception, revert_message=revert_message, **kwargs)
    return self.compiler_manager.enrich_error(error)


def pytest_configure(config) -> None:
    ape_provider._post_send_transaction = _no_debug_logs
    Ethereum.decode_custom_error = _decode_custom_error
    FoundryProvider._handle_execution_reverted = _handle_execution_reverted
    ContractMethodHandler._validate_is_contract = _validate_is_contract
    ChainManager.restore = _restore
