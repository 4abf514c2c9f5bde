"""A thin seam between Python drivers and an EVM: the same compiled bytecode, two backends.

:class:`Backend` is the whole protocol a driver needs: deploy bytecode, call, view and send raw calldata,
read the outcome as :class:`Ok` (output and logs) or :class:`Revert` (revert data), set the block
time, give an address ether, and snapshot / restore the whole chain. Two implementations:

- :class:`PyRevmBackend`: ``pyrevm`` in-process (no node, no RPC; thousands of calls a second);
- :class:`RpcBackend`: any JSON-RPC node with the anvil / hardhat test methods, e.g. the anvil that
  Ape starts for ``ape test`` (``chain.provider.uri``). It speaks raw JSON-RPC over one HTTP
  session, batching the timestamp pin with each transaction, which is several times faster than a
  contract layer.

Calldata is bytes in, bytes out: ABI encoding is the caller's business (:mod:`backstop.chain.abi`
helps, and its :class:`~backstop.chain.abi.Artifacts` reads Ape's compiled manifest so both backends
deploy exactly the same bytecode).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from eth_utils import to_checksum_address

ZERO_ADDRESS = "0x" + "00" * 20
#: Gas limit of every transaction the backends send (far above any Backstop call).
TX_GAS = 30_000_000
DEFAULT_CHAIN_ID = 31337
DEFAULT_TIMESTAMP = 1_700_000_000


@dataclass(frozen=True)
class Log:
    """An event: emitting contract (lower-case hex), topics (32 bytes each) and data."""

    address: str
    topics: tuple[bytes, ...]
    data: bytes


class Ok:
    """A call that returned: its output and, for transactions, the logs it emitted (converted from
    the backend's form on first access, since most callers never look)."""

    __slots__ = ("_convert", "_logs", "_raw", "output")

    def __init__(self, output: bytes = b"", logs: Any = (), convert: Any = None) -> None:
        self.output = output
        self._raw = logs
        self._convert = convert
        self._logs: tuple[Log, ...] | None = None if convert else tuple(logs)

    @property
    def logs(self) -> tuple[Log, ...]:
        if self._logs is None:
            self._logs = tuple(self._convert(log) for log in self._raw)
        return self._logs

    def __repr__(self) -> str:
        return f"Ok(output=0x{self.output.hex()}, logs={len(self.logs)})"


@dataclass(frozen=True)
class Revert:
    """A call that reverted with ``data`` (custom error selector + arguments, or empty)."""

    data: bytes = b""

    @property
    def selector(self) -> bytes:
        return self.data[:4]


Outcome = Ok | Revert


class Backend(Protocol):
    """What a driver needs from an EVM. Addresses are ``0x`` hex strings (any case)."""

    name: str
    chain_id: int

    @property
    def now(self) -> int:
        """The timestamp the next transaction and every call execute at."""
        ...

    def set_timestamp(self, timestamp: int) -> None:
        """Moves time to ``timestamp`` (never backwards) for what follows."""
        ...

    def deploy(self, sender: str, initcode: bytes) -> str:
        """Deploys ``initcode`` (bytecode + encoded constructor arguments); returns the address."""
        ...

    def call(self, sender: str, to: str, data: bytes) -> Outcome:
        """Runs ``data`` against ``to`` without changing state."""
        ...

    def transact(self, sender: str, to: str, data: bytes) -> Outcome:
        """Sends ``data`` to ``to`` from ``sender`` as a transaction (kept only if it succeeds)."""
        ...

    def view(self, sender: str, to: str, data: bytes) -> bytes:
        """The output of a read-only call that must succeed (raises if it reverts)."""
        ...

    def mint_ether(self, address: str, wei: int) -> None:
        """Sets ``address``'s ether balance (gas money on nodes that charge it)."""
        ...

    def snapshot(self) -> Any:
        """A handle to the current state for :meth:`restore`."""
        ...

    def restore(self, handle: Any) -> Any:
        """Returns the chain to ``handle``'s state; returns a fresh handle for the same state."""
        ...


# --- pyrevm ---------------------------------------------------------------------------------------


class PyRevmBackend:
    """``pyrevm`` in-process. State lives in revm's journal; :meth:`snapshot` / :meth:`restore` are
    journal checkpoints plus the block time and number (a checkpoint can be restored once, so
    :meth:`restore` returns a new one).
    """

    name = "pyrevm"

    def __init__(self, chain_id: int = DEFAULT_CHAIN_ID, timestamp: int = DEFAULT_TIMESTAMP) -> None:
        from pyrevm import EVM, BlockEnv, CfgEnv, Env

        self._block_env = BlockEnv
        self.chain_id = chain_id
        self._now = timestamp
        self._number = 1
        self.evm = EVM(
            spec_id="CANCUN",
            env=Env(cfg=CfgEnv(chain_id=chain_id), block=BlockEnv(number=1, timestamp=timestamp)),
        )

    @property
    def now(self) -> int:
        return self._now

    def set_timestamp(self, timestamp: int) -> None:
        if timestamp < self._now:
            raise ValueError("time only moves forward")
        if timestamp != self._now:
            self._now = timestamp
            self._number += 1
            self.evm.set_block_env(self._block_env(number=self._number, timestamp=timestamp))

    def deploy(self, sender: str, initcode: bytes) -> str:
        return to_checksum_address(self.evm.deploy(sender, initcode, gas=TX_GAS))

    def call(self, sender: str, to: str, data: bytes) -> Outcome:
        checkpoint = self.evm.snapshot()
        try:
            return self.transact(sender, to, data)
        finally:
            self.evm.revert(checkpoint)

    def transact(self, sender: str, to: str, data: bytes) -> Outcome:
        try:
            output = self.evm.message_call(sender, to, data, gas=TX_GAS)
        except RuntimeError as err:
            return Revert(_revm_revert_data(str(err)))
        return Ok(bytes(output), self.evm.result.logs or (), _revm_log)

    def view(self, sender: str, to: str, data: bytes) -> bytes:
        """Fast path for read-only calls that must succeed: the output bytes (raises on revert)."""
        return bytes(self.evm.message_call(sender, to, data, gas=TX_GAS, is_static=True))

    def mint_ether(self, address: str, wei: int) -> None:
        self.evm.set_balance(address, wei)

    def snapshot(self) -> Any:
        return (self.evm.snapshot(), self._now, self._number)

    def restore(self, handle: Any) -> Any:
        """Reverts the journal to the checkpoint and the block (time, number) to the snapshot's."""
        checkpoint, now, number = handle
        self.evm.revert(checkpoint)
        self._now, self._number = now, number
        self.evm.set_block_env(self._block_env(number=number, timestamp=now))
        return self.snapshot()


_REVM_REVERT = re.compile(r"^Revert \{.*?output: 0x([0-9a-fA-F]*)")


def _revm_revert_data(message: str) -> bytes:
    """Revert data out of pyrevm's error text ``Revert { gas_used: N, output: 0x... }``; a halt
    (out of gas, invalid opcode) has none and yields ``b""``."""
    found = _REVM_REVERT.match(message)
    return bytes.fromhex(found.group(1)) if found else b""


def _revm_log(log: Any) -> Log:
    topics, data = log.data  # pyrevm: (list of 32-byte topics, data)
    return Log(log.address.lower(), tuple(bytes(t) for t in topics), bytes(data))


# --- JSON-RPC (anvil) -----------------------------------------------------------------------------


class RpcError(RuntimeError):
    """The node answered a JSON-RPC request with an error that is not a revert."""


class RpcBackend:
    """A JSON-RPC test node (anvil). Senders are impersonated (``anvil_autoImpersonateAccount``),
    so any address can send; each transaction is mined in its own block at exactly :attr:`now`
    (``evm_setNextBlockTimestamp`` batched with ``eth_sendTransactionSync``). Calls execute on the
    latest block, whose timestamp is kept equal to :attr:`now` by mining an empty block whenever
    time moves.
    """

    name = "anvil"

    def __init__(self, uri: str) -> None:
        import requests

        self.uri = uri
        self.session = requests.Session()
        self._id = 0
        self.chain_id = int(self._rpc("eth_chainId", []), 16)
        self._rpc("anvil_autoImpersonateAccount", [True])
        self._now = int(self._rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    def close(self) -> None:
        """Turns impersonation back off (the node may be shared with other tests)."""
        self._rpc("anvil_autoImpersonateAccount", [False])
        self.session.close()

    # --- protocol ---

    @property
    def now(self) -> int:
        return self._now

    def set_timestamp(self, timestamp: int) -> None:
        if timestamp < self._now:
            raise ValueError("time only moves forward")
        if timestamp != self._now:
            self._batch([("evm_setNextBlockTimestamp", [timestamp]), ("evm_mine", [])])
            self._now = timestamp

    def deploy(self, sender: str, initcode: bytes) -> str:
        receipt = self._send({"from": sender, "data": "0x" + initcode.hex(), "gas": hex(TX_GAS)})
        if receipt["status"] != "0x1":
            raise RpcError(f"deployment reverted: {receipt}")
        return to_checksum_address(receipt["contractAddress"])

    def call(self, sender: str, to: str, data: bytes) -> Outcome:
        response = self._request(
            "eth_call", [{"from": sender, "to": to, "data": "0x" + data.hex(), "gas": hex(TX_GAS)}, "latest"]
        )
        return self._outcome(response)

    def transact(self, sender: str, to: str, data: bytes) -> Outcome:
        tx = {"from": sender, "to": to, "data": "0x" + data.hex(), "gas": hex(TX_GAS)}
        receipt = self._send(tx)
        if receipt["status"] == "0x1":
            logs = tuple(
                Log(
                    log["address"].lower(),
                    tuple(bytes.fromhex(t[2:]) for t in log["topics"]),
                    bytes.fromhex(log["data"][2:]),
                )
                for log in receipt["logs"]
            )
            return Ok(b"", logs)
        # A mined failure carries no revert data: replay it on the parent block to recover it.
        parent = hex(int(receipt["blockNumber"], 16) - 1)
        response = self._request("eth_call", [tx, parent])
        outcome = self._outcome(response)
        return outcome if isinstance(outcome, Revert) else Revert(b"")

    def view(self, sender: str, to: str, data: bytes) -> bytes:
        outcome = self.call(sender, to, data)
        if isinstance(outcome, Revert):
            raise RpcError(f"view reverted: 0x{outcome.data.hex()}")
        return outcome.output

    def mint_ether(self, address: str, wei: int) -> None:
        self._rpc("anvil_setBalance", [address, hex(wei)])

    def snapshot(self) -> Any:
        return self._rpc("evm_snapshot", [])

    def restore(self, handle: Any) -> Any:
        if not self._rpc("evm_revert", [handle]):
            raise RpcError(f"evm_revert({handle}) failed")
        self._now = int(self._rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
        return self.snapshot()

    # --- JSON-RPC plumbing ---

    def _send(self, tx: dict[str, Any]) -> dict[str, Any]:
        responses = self._batch(
            [("evm_setNextBlockTimestamp", [self._now]), ("eth_sendTransactionSync", [tx])], raw=True
        )
        for response in responses:
            if "error" in response:
                raise RpcError(f"{response['error']}")
        return responses[-1]["result"]

    def _rpc(self, method: str, params: list[Any]) -> Any:
        response = self._request(method, params)
        if "error" in response:
            raise RpcError(f"{method}: {response['error']}")
        return response["result"]

    def _request(self, method: str, params: list[Any]) -> dict[str, Any]:
        self._id += 1
        body = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}
        return self.session.post(self.uri, json=body, timeout=60).json()

    def _batch(self, calls: list[tuple[str, list[Any]]], raw: bool = False) -> list[Any]:
        body = []
        for method, params in calls:
            self._id += 1
            body.append({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        responses = sorted(self.session.post(self.uri, json=body, timeout=60).json(), key=lambda r: r["id"])
        if raw:
            return responses
        for response in responses:
            if "error" in response:
                raise RpcError(f"{response['error']}")
        return [r["result"] for r in responses]

    @staticmethod
    def _outcome(response: dict[str, Any]) -> Outcome:
        if "error" not in response:
            return Ok(bytes.fromhex(response["result"][2:]))
        error = response["error"]
        data = error.get("data")
        if isinstance(data, dict):  # some nodes nest it
            data = data.get("data")
        if error.get("code") == 3 or "revert" in str(error.get("message", "")).lower():
            return Revert(bytes.fromhex(data[2:]) if isinstance(data, str) and data.startswith("0x") else b"")
        raise RpcError(f"eth_call: {error}")
