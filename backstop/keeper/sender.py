"""The keeper's transactions: its own nonce, EIP-1559 fees (the policy of ``backstop.chain.tx``,
under the operator's ``max_fee`` cap and with its ``priority_fee``), sending with recovery from
lost answers, nonce gaps and underpriced fees, and waiting for a receipt while re-pricing a
transaction that stays unmined (the same nonce and calldata re-signed with both fees raised by
``fee_bump_pct``, at most the cap; the receipt of whichever of its hashes mines is the answer)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError

from backstop.chain.rpc import Retrier, RpcUnavailable, rpc_message
from backstop.chain.tx import (
    DEFAULT_PRIORITY_FEE,
    FeePolicy,
    bump_fees,
    dynamic_fee_fields,
    fee_caps,
    gwei,
    over_cap,
)
from backstop.keeper.signer import Signer

#: Seconds the fee caps are reused before the next ``eth_getBlockByNumber``.
FEE_CACHE_S = 6.0
#: Answers to a transaction the node already has.
_KNOWN = ("already known", "already exists", "known transaction")


class SendError(Exception):
    """The node kept rejecting a transaction after nonce and fee resyncs."""


class FeeCapped(Exception):
    """The base fee is above the operator's max fee: a transaction under the cap cannot be mined."""

    def __init__(self, base_fee: int, max_fee: int) -> None:
        super().__init__(f"base fee {gwei(base_fee)} gwei is above the max fee {gwei(max_fee)} gwei")
        self.base_fee = base_fee
        self.max_fee = max_fee


@dataclass
class Sent:
    """A transaction sent for ``nonce``: the fields it was last signed with (``tx``, fees
    included), every hash signed for that nonce (the first first), when it was last signed, and
    the hash whose receipt came (``mined``)."""

    tx: dict[str, Any]
    nonce: int
    hashes: list[str]
    signed_at: float
    repricing: bool = True  # False once the cap or the node stopped re-pricing
    mined: str | None = None

    @property
    def tx_hash(self) -> str:
        """The hash last signed."""
        return self.hashes[-1]

    @property
    def fees(self) -> tuple[int, int]:
        return self.tx["maxFeePerGas"], self.tx["maxPriorityFeePerGas"]


class TxSender:
    """Signs and sends the keeper's transactions through ``w3`` with ``signer``'s locally tracked
    nonce. ``log(level, event, **fields)`` writes the keeper's structured lines.

    Fees follow ``policy``: ``max_fee`` (wei, None for no cap) caps ``maxFeePerGas``;
    ``priority_fee`` (wei) is the tip instead of ``eth_maxPriorityFeePerGas``; :meth:`wait`
    re-prices a transaction unmined after ``reprice_after`` seconds (None: never) by
    ``fee_bump_pct`` percent, and gives up after ``receipt_timeout`` seconds."""

    def __init__(
        self,
        w3: Web3,
        signer: Signer,
        chain_id: int,
        rpc: Retrier,
        log: Callable[..., None],
        clock: Callable[[], float] = time.monotonic,
        *,
        policy: FeePolicy | None = None,
        receipt_timeout: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._w3 = w3
        self.signer = signer
        self.address = to_checksum_address(signer.address)
        self.chain_id = chain_id
        self.rpc = rpc
        self._log = log
        self._clock = clock
        self._sleep = sleep
        self.policy = policy or FeePolicy()
        self.receipt_timeout = receipt_timeout
        self._nonce: int | None = None
        self._market: tuple[int, int] | None = None  # (baseFeePerGas, priority fee) as last read
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
        """``(maxFeePerGas, maxPriorityFeePerGas)``: priority ``priority_fee``, else from
        ``eth_maxPriorityFeePerGas`` (1 gwei if the node has none), max fee ``2·baseFee +
        priority`` at most ``max_fee``; the base fee and tip are cached for 6 s. Raises
        :class:`FeeCapped` when the base fee itself is above ``max_fee``."""
        if self._market is None or refresh or self._clock() - self._fees_at >= FEE_CACHE_S:
            block = self.rpc.call("eth_getBlockByNumber", lambda: self._w3.eth.get_block("latest"))
            base = block.get("baseFeePerGas")
            if base is None:  # a pre-London chain: the legacy gas price stands in for the base fee
                base = self.rpc.call("eth_gasPrice", lambda: self._w3.eth.gas_price)
            priority = self.policy.priority_fee
            if priority is None:
                try:
                    priority = self.rpc.call(
                        "eth_maxPriorityFeePerGas", lambda: self._w3.eth.max_priority_fee
                    )
                except (Web3RPCError, RpcUnavailable):
                    priority = DEFAULT_PRIORITY_FEE
            self._market = (int(base), int(priority))
            self._fees_at = self._clock()
        base, priority = self._market
        if over_cap(base, self.policy.max_fee):
            raise FeeCapped(base, self.policy.max_fee)  # type: ignore[arg-type]
        return fee_caps(base, priority, self.policy.max_fee)

    def send(self, tx: dict[str, Any], fees: tuple[int, int] | None = None) -> Sent:
        """Signs with the locally tracked nonce and ``fees`` (else :meth:`fee_caps`) and sends.

        The transaction hash is computed locally, so a send whose answer was lost is recognised:
        re-sending the same bytes is answered "already known" or "nonce too low", and a lookup by
        hash tells whether the first attempt got through. A nonce or fee error resyncs and
        re-signs (at most 3 times); a refreshed base fee over the cap raises :class:`FeeCapped`."""
        refresh_fees = False
        for _ in range(4):
            nonce = self._nonce if self._nonce is not None else self.sync_nonce()
            if fees is None or refresh_fees:
                fees = self.fee_caps(refresh_fees)
            fields = {**tx, **dynamic_fee_fields(self.chain_id, nonce, fees)}
            raw = self.signer.sign_transaction(fields)
            tx_hash = "0x" + keccak(raw).hex()
            try:
                self.rpc.call(
                    "eth_sendRawTransaction", lambda raw=raw: self._w3.eth.send_raw_transaction(raw)
                )
            except Web3RPCError as err:
                message = rpc_message(err)
                known = any(m in message for m in _KNOWN)
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
            return Sent(fields, nonce, [tx_hash], self._clock())
        raise SendError("still rejected after resyncing the nonce and fees 3 times")

    def wait(self, sent: Sent) -> Any:
        """The receipt of whichever hash signed for ``sent``'s nonce mines (``sent.mined`` names
        it), polled with a backoff from 5 ms up to 1 s; every ``reprice_after`` seconds without
        one, :meth:`reprice`. Raises ``TimeoutError`` after ``receipt_timeout`` seconds."""
        deadline = self._clock() + self.receipt_timeout
        delay = 0.005  # then ×1.5 up to 1 s: waits at most half again the mining latency
        while True:
            for tx_hash in reversed(sent.hashes):  # the newest is the likeliest to mine
                try:
                    receipt = self.rpc.call(
                        "eth_getTransactionReceipt",
                        lambda h=tx_hash: self._w3.eth.get_transaction_receipt(h),
                    )
                except TransactionNotFound:
                    continue
                sent.mined = tx_hash
                return receipt
            now = self._clock()
            if now > deadline:
                hashes = ",".join(sent.hashes)
                raise TimeoutError(f"no receipt for {hashes} after {self.receipt_timeout:.0f} s")
            if (
                sent.repricing
                and self.policy.reprice_after is not None
                and now - sent.signed_at >= self.policy.reprice_after
            ):
                self.reprice(sent)
            self._sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def reprice(self, sent: Sent) -> bool:
        """Re-signs ``sent``'s nonce and calldata with both fees raised by ``fee_bump_pct`` (at
        most ``max_fee``) and sends it; returns whether a replacement went out. When the cap
        leaves less than the +10 % a node requires (``reprice_capped``) or the node refuses the
        replacement (``reprice_failed``), ``sent`` is not re-priced again."""
        old = sent.tx_hash
        bumped = bump_fees(sent.fees, self.policy.fee_bump_pct, self.policy.max_fee)
        if bumped is None:
            sent.repricing = False
            self._log(
                logging.WARNING,
                "reprice_capped",
                tx=old,
                nonce=sent.nonce,
                max_fee_gwei=gwei(sent.fees[0]),
                cap_gwei=gwei(self.policy.max_fee or 0),
            )
            return False
        fields = {**sent.tx, "maxFeePerGas": bumped[0], "maxPriorityFeePerGas": bumped[1]}
        raw = self.signer.sign_transaction(fields)
        tx_hash = "0x" + keccak(raw).hex()
        sent.signed_at = self._clock()
        try:
            self.rpc.call("eth_sendRawTransaction", lambda: self._w3.eth.send_raw_transaction(raw))
        except Web3RPCError as err:
            message = rpc_message(err)
            if not any(m in message for m in _KNOWN):
                # "nonce too low": one of the hashes mined meanwhile (the next poll finds it);
                # "underpriced": this node wants a larger raise than fee_bump_pct.
                sent.repricing = False
                self._log(logging.WARNING, "reprice_failed", tx=old, nonce=sent.nonce, error=message)
                return False
        except RpcUnavailable as err:
            # The node may have taken it: poll its hash too, and bump from its fees next time.
            self._log(logging.WARNING, "reprice_unanswered", tx=old, new_tx=tx_hash, error=str(err))
        sent.tx = fields
        sent.hashes.append(tx_hash)
        self._log(
            logging.INFO,
            "repriced",
            tx=old,
            new_tx=tx_hash,
            nonce=sent.nonce,
            max_fee_gwei=gwei(bumped[0]),
            priority_fee_gwei=gwei(bumped[1]),
        )
        return True

    def _known(self, tx_hash: str) -> bool:
        try:
            self.rpc.call("eth_getTransactionByHash", lambda: self._w3.eth.get_transaction(tx_hash))
        except TransactionNotFound:
            return False
        return True
