"""The keeper's account index: every account that ever held a position, synced from the engine's
``PositionChanged`` logs in block ranges, with the cursor persisted (``KeeperState``) and checked
against the chain on resume."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import Web3RPCError
from web3.types import RPCEndpoint

from backstop.chain.rpc import Retrier, rpc_message
from backstop.keeper.engine_abi import EngineAbi
from backstop.keeper.state import KeeperState, KeeperStateError


def topic_address(topic: Any) -> str:
    """The address in an indexed event topic."""
    return to_checksum_address(bytes(HexBytes(topic))[-20:])


class AccountIndex:
    """The sync half of :class:`backstop.keeper.Keeper` (which sets these attributes)."""

    _w3: Web3
    rpc: Retrier
    engine_abi: EngineAbi
    engine_address: str
    chain_id: int
    state_path: Path | None
    reorg_depth: int
    log_range: int
    cursor: int
    _cursor_hash: str | None
    _synced_to: int
    _last_persist: float
    _accounts: dict[str, str]
    _clock: Callable[[], float]

    def _event(self, level: int, event: str, **fields: Any) -> None:
        """One structured log line (the keeper's)."""
        raise NotImplementedError

    # --- persisted state -------------------------------------------------------------------------------------

    @property
    def accounts(self) -> list[str]:
        """Every indexed account (checksummed, sorted case-insensitively)."""
        return [self._accounts[k] for k in sorted(self._accounts)]

    def _load_state(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        state = KeeperState.load(self.state_path)
        if state.chain_id != self.chain_id:
            raise KeeperStateError(
                f"{self.state_path} was written for chain {state.chain_id}, this is chain {self.chain_id}; "
                "use another --state file"
            )
        if state.engine.lower() != self.engine_address.lower():
            raise KeeperStateError(
                f"{self.state_path} was written for engine {state.engine}, this engine is "
                f"{self.engine_address}; use another --state file"
            )
        if state.cursor_block >= 0:
            head = self.rpc.call("eth_blockNumber", lambda: self._w3.eth.block_number)
            if state.cursor_block > head:
                raise KeeperStateError(
                    f"{self.state_path}: cursor block {state.cursor_block} is beyond the head {head} "
                    "(a restarted chain?); delete the state file to rebuild the index"
                )
            if state.cursor_hash is not None:
                got = self._block_hash(state.cursor_block)
                if got.lower() != state.cursor_hash.lower():
                    raise KeeperStateError(
                        f"{self.state_path}: block {state.cursor_block} is {got} on this chain, the state "
                        f"file recorded {state.cursor_hash} (a restarted chain?); delete it to rebuild"
                    )
        self.cursor = state.cursor_block
        self._cursor_hash = state.cursor_hash
        for account in state.accounts:
            self._accounts[account.lower()] = to_checksum_address(account)
        self._event(
            logging.INFO, "resume", state=self.state_path, cursor=self.cursor, accounts=len(self._accounts)
        )

    def _block_hash(self, number: int) -> str:
        block = self.rpc.call("eth_getBlockByNumber", lambda: self._w3.eth.get_block(number))
        return HexBytes(block["hash"]).to_0x_hex()

    def _persist(self, head: int, force: bool = False) -> None:
        """Moves the persisted cursor to ``min(synced, head − reorg_depth)`` and saves (at most
        every 2 s while catching up, always when ``force``)."""
        target = max(self.cursor, min(self._synced_to, head - self.reorg_depth))
        if target == self.cursor and not force:
            return
        if self.state_path is None:
            self.cursor = target
            return
        if not force and self._clock() - self._last_persist < 2.0:
            return
        if target != self.cursor or self._cursor_hash is None:
            self._cursor_hash = self._block_hash(target) if target >= 0 else None
            self.cursor = target
        KeeperState(self.chain_id, self.engine_address, self.cursor, self.accounts, self._cursor_hash).save(
            self.state_path
        )
        self._last_persist = self._clock()

    # --- 1. sync -----------------------------------------------------------------------------------

    def sync_accounts(self, head: int | None = None) -> int:
        """Indexes ``PositionChanged`` logs from the cursor to ``head`` (default: the chain head)
        in block ranges; returns the head it synced to."""
        if head is None:
            head = self.rpc.call("eth_blockNumber", lambda: self._w3.eth.block_number)
        start = max(self.cursor + 1, self._synced_to + 1 - self.reorg_depth, 0)
        span = self.log_range
        block = start
        before = len(self._accounts)
        ranges = logs = 0
        while block <= head:
            end = min(block + span - 1, head)
            try:
                entries = self._get_logs(block, end, [self.engine_abi.topic_position])
            except Web3RPCError as err:
                if span > 1 and _is_range_error(err):
                    # Remembered: the next passes start from the span this node accepts.
                    span = self.log_range = max(span // 2, 1)
                    self._event(logging.INFO, "log_range_shrunk", from_block=block, span=span)
                    continue
                raise
            for entry in entries:
                account = topic_address(entry["topics"][1])
                self._accounts.setdefault(account.lower(), account)
            ranges += 1
            logs += len(entries)
            self._synced_to = end
            block = end + 1
            self._persist(head)
        self._synced_to = max(self._synced_to, head)
        self._persist(head, force=ranges > 0)
        self._event(
            logging.DEBUG if ranges == 0 else logging.INFO,
            "sync",
            from_block=start,
            to_block=head,
            ranges=ranges,
            logs=logs,
            new_accounts=len(self._accounts) - before,
            accounts=len(self._accounts),
            cursor=self.cursor,
        )
        return head

    def _get_logs(self, from_block: int, to_block: int, topics: list[Any]) -> list[Any]:
        """Raw ``eth_getLogs`` (topics as hex strings): web3's per-log formatting would cost more
        than the request itself on a long catch-up."""
        params = {
            "address": self.engine_address,
            "fromBlock": hex(from_block),
            "toBlock": hex(to_block),
            "topics": [HexBytes(t).to_0x_hex() for t in topics],
        }

        def fetch() -> list[Any]:
            response = self._w3.provider.make_request(RPCEndpoint("eth_getLogs"), [params])
            if response.get("error"):
                raise Web3RPCError(str(response["error"]), rpc_response=response)
            return response["result"]

        return self.rpc.call("eth_getLogs", fetch)


def _is_range_error(err: Web3RPCError) -> bool:
    message = rpc_message(err)
    return any(
        m in message for m in ("range", "limit", "too many", "exceed", "10000 results", "response size")
    )
