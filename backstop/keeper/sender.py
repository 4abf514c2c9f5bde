"""The keeper's transactions: its own nonce, EIP-1559 fees (the policy of ``backstop.chain.tx``) and
sending with recovery from lost answers, nonce gaps and underpriced fees."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError

from backstop.chain.rpc import Retrier, RpcUnavailable, rpc_message
from backstop.chain.tx import DEFAULT_PRIORITY_FEE, dynamic_fee_fields, fee_caps
from backstop.keeper.signer import Signer

#: Seconds the fee caps are reused before the next ``eth_getBlockByNumber``.
FEE_CACHE_S = 6.0


class SendError(Exception):
    """The node kept rejecting a transaction after nonce and fee resyncs."""


class TxSender:
    """Signs and sends the keeper's transactions through ``w3`` with ``signer``'s locally tracked
    nonce. ``log(level, event, **fields)`` writes the keeper's structured lines."""

    def __init__(
        self,
        w3: Web3,
        signer: Signer,
        chain_id: int,
        rpc: Retrier,
        log: Callable[..., None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._w3 = w3
        self.signer = signer
        self.address = to_checksum_address(signer.address)
        self.chain_id = chain_id
        self.rpc = rpc
        self._log = log
        self._clock = clock
        self._nonce: int | None = None
        self._fees: tuple[int, int] | None = None  # (maxFeePerGas, maxPriorityFeePerGas)
        self._fees_at = 0.0

    def forget_nonce(self) -> None:
        """The next send reads the nonce from the node again (a send may or may not have landed)."""
        self._nonce = None

    def sync_nonce(self) -> int:
        self._nonce = self.rpc.call(
            "eth_getTransactionCount", lambda: self._w3.eth.get_transaction_count(self.address, "pending")
        )
        return self._nonce

    def fee_caps(self, refresh: bool = False) -> tuple[int, int]:
        """``(maxFeePerGas, maxPriorityFeePerGas)``: priority from ``eth_maxPriorityFeePerGas``
        (1 gwei if the node has none), max fee ``2·baseFee + priority``; cached for 6 s."""
        if self._fees is not None and not refresh and self._clock() - self._fees_at < FEE_CACHE_S:
            return self._fees
        block = self.rpc.call("eth_getBlockByNumber", lambda: self._w3.eth.get_block("latest"))
        base = block.get("baseFeePerGas")
        if base is None:  # a pre-London chain: the legacy gas price stands in for the base fee
            base = self.rpc.call("eth_gasPrice", lambda: self._w3.eth.gas_price)
        try:
            priority = self.rpc.call("eth_maxPriorityFeePerGas", lambda: self._w3.eth.max_priority_fee)
        except (Web3RPCError, RpcUnavailable):
            priority = DEFAULT_PRIORITY_FEE
        self._fees = fee_caps(base, priority)
        self._fees_at = self._clock()
        return self._fees

    def send(self, tx: dict[str, Any]) -> tuple[str, int]:
        """Signs with the locally tracked nonce and sends; returns ``(tx hash, nonce)``.

        The transaction hash is computed locally, so a send whose answer was lost is recognised:
        re-sending the same bytes is answered "already known" or "nonce too low", and a lookup by
        hash tells whether the first attempt got through. A nonce or fee error resyncs and
        re-signs (at most 3 times)."""
        refresh_fees = False
        for _ in range(4):
            nonce = self._nonce if self._nonce is not None else self.sync_nonce()
            fees = self.fee_caps(refresh_fees)
            raw = self.signer.sign_transaction({**tx, **dynamic_fee_fields(self.chain_id, nonce, fees)})
            tx_hash = "0x" + keccak(raw).hex()
            try:
                self.rpc.call(
                    "eth_sendRawTransaction", lambda raw=raw: self._w3.eth.send_raw_transaction(raw)
                )
            except Web3RPCError as err:
                message = rpc_message(err)
                known = any(m in message for m in ("already known", "already exists", "known transaction"))
                if known or ("nonce too low" in message and self._known(tx_hash)):
                    # An earlier attempt with these exact bytes got through; its answer was lost.
                    self._log(logging.INFO, "send_recovered", tx=tx_hash, nonce=nonce, answer=message)
                elif "nonce" in message or "replacement transaction" in message:
                    self._log(logging.WARNING, "nonce_resync", nonce=nonce, error=message)
                    self._nonce = None
                    continue
                elif "fee" in message or "underpriced" in message:
                    self._log(logging.WARNING, "fee_refresh", error=message)
                    refresh_fees = True
                    continue
                else:
                    raise
            self._nonce = nonce + 1
            return tx_hash, nonce
        raise SendError("still rejected after resyncing the nonce and fees 3 times")

    def _known(self, tx_hash: str) -> bool:
        try:
            self.rpc.call("eth_getTransactionByHash", lambda: self._w3.eth.get_transaction(tx_hash))
        except TransactionNotFound:
            return False
        return True
