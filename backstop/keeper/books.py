"""What the keeper's capital plan (``backstop.decisions.capital``) needs from the chain: the book
(margin, pending loss, positions) of each target and of the keeper itself, and the terms (oracle
price and risk parameters) of every market they hold.

Reads are ``eth_call`` views pinned to one block. The many small ones (``marketsOf`` and
``positionOf`` per account) go out as JSON-RPC batches of :data:`RPC_BATCH` requests; a node that
refuses batches gets them one by one. A market whose price cannot be read (a stale feed) has no
terms: the accounts that hold it cannot be liquidated until it is fresh, and the caller leaves
them out.

Prices and market parameters are read once per block (:meth:`BookReader.prices` reads every
listed market's price, naming the oracle adapter's revert, e.g. ``StalePrice``); later reads at
the same block come from that cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from backstop.chain.abi import error_name
from backstop.chain.rpc import Retrier
from backstop.decisions import AccountHealth, Book, MarketTerms
from backstop.keeper.engine_abi import EngineAbi

#: ``eth_call`` requests per JSON-RPC batch.
RPC_BATCH = 250
PRICE_OF = keccak(text="priceOf(uint256)")[:4]


class BookReader:
    """Reads books and market terms for the keeper through ``w3`` (retries by ``rpc``)."""

    def __init__(self, w3: Web3, engine: str, abi: EngineAbi, rpc: Retrier) -> None:
        self._w3 = w3
        self.engine = engine
        self.abi = abi
        self.rpc = rpc
        self._oracle: str | None = None
        self._batching = True
        # Per-block caches (only for a block given by number).
        self._cached_at: int | str | None = None
        self._prices: dict[int, int | str] = {}
        self._params: dict[int, dict[str, Any]] = {}

    def prices(self, block: int | str) -> dict[int, int | str]:
        """Every listed market's oracle price at ``block`` (``marketCount`` once, ``priceOf`` per
        market): the WAD price, or the name of the adapter's revert (``StalePrice``,
        ``SequencerDown``...) when it refuses one."""
        (count,) = abi_decode(["uint256"], self._call(self.engine, self.abi.market_count_selector, block))
        return {m: self._price_or_error(m, block) for m in range(count)}

    def books(self, healths: Sequence[AccountHealth], block: int | str) -> list[Book]:
        """One :class:`Book` per health reading: its margin and pending loss as read, and its
        positions from ``marketsOf`` and ``positionOf`` at ``block``."""
        lists = self._calls([self.abi.markets_of_call(h.account) for h in healths], block)
        markets = [list(abi_decode(["uint256[]"], raw)[0]) for raw in lists]
        pairs = [(i, m) for i, held in enumerate(markets) for m in held]
        raws = self._calls([self.abi.position_of_call(healths[i].account, m) for i, m in pairs], block)
        positions: list[dict[int, tuple[int, int]]] = [{} for _ in healths]
        for (i, m), raw in zip(pairs, raws, strict=True):
            size, open_notional = abi_decode(["int256", "int256"], raw)
            if size:
                positions[i][m] = (size, open_notional)
        return [Book(h.account, h.margin, h.pending_loss, positions[i]) for i, h in enumerate(healths)]

    def terms(self, market_ids: set[int], block: int | str) -> dict[int, MarketTerms]:
        """The terms of every market in ``market_ids`` whose oracle price is usable at ``block``."""
        out: dict[int, MarketTerms] = {}
        for m in sorted(market_ids):
            params = self._market_params(m, block)
            price = self._price(m, block)
            if price is None:
                continue
            out[m] = MarketTerms(
                market_id=m,
                price=price,
                im_ratio=params["imRatio"],
                mm_ratio=params["mmRatio"],
                keeper_reward_ratio=params["keeperRewardRatio"],
                keeper_reward_cap=params["keeperRewardCap"],
                insurance_fee_ratio=params["insuranceFeeRatio"],
            )
        return out

    # --- internals -------------------------------------------------------------------------------

    def _cache(self, block: int | str) -> None:
        if block != self._cached_at or not isinstance(block, int):
            self._cached_at = block
            self._prices = {}
            self._params = {}

    def _market_params(self, market_id: int, block: int | str) -> dict[str, Any]:
        # Read every pass (once per block): a timelocked change may have been executed since.
        self._cache(block)
        if market_id not in self._params:
            self._params[market_id] = self.abi.decode_market_params(
                self._call(self.engine, self.abi.market_params_call(market_id), block)
            )
        return self._params[market_id]

    def _price(self, market_id: int, block: int | str) -> int | None:
        price = self._price_or_error(market_id, block)
        # Stale, or the sequencer is down: the engine would refuse the same.
        return price if isinstance(price, int) else None

    def _price_or_error(self, market_id: int, block: int | str) -> int | str:
        self._cache(block)
        if market_id in self._prices:
            return self._prices[market_id]
        if self._oracle is None:
            (oracle,) = abi_decode(["address"], self._call(self.engine, self.abi.oracle_selector, block))
            self._oracle = to_checksum_address(oracle)
        try:
            raw = self._call(self._oracle, PRICE_OF + abi_encode(["uint256"], [market_id]), block)
            price: int | str = int(abi_decode(["uint256"], raw)[0])
        except ContractLogicError as err:
            price = _revert_name(err, self.abi.errors)
        self._prices[market_id] = price
        return price

    def _call(self, to: str, data: bytes, block: int | str) -> bytes:
        call = {"to": to, "data": HexBytes(data)}
        return bytes(self.rpc.call("eth_call", lambda: self._w3.eth.call(call, block)))  # type: ignore[arg-type]

    def _calls(self, datas: list[bytes], block: int | str) -> list[bytes]:
        """``eth_call`` of each calldata on the engine, in JSON-RPC batches when the node takes
        them (else one by one)."""
        out: list[bytes] = []
        for i in range(0, len(datas), RPC_BATCH):
            chunk = datas[i : i + RPC_BATCH]
            out.extend(self._batch(chunk, block) if self._batching else self._each(chunk, block))
        return out

    def _each(self, datas: list[bytes], block: int | str) -> list[bytes]:
        return [self._call(self.engine, d, block) for d in datas]

    def _batch(self, datas: list[bytes], block: int | str) -> list[bytes]:
        def run() -> list[bytes]:
            with self._w3.batch_requests() as batch:
                for d in datas:
                    batch.add(self._w3.eth.call({"to": self.engine, "data": HexBytes(d)}, block))  # type: ignore[arg-type]
                return [bytes(r) for r in batch.execute()]  # type: ignore[arg-type]

        try:
            return self.rpc.call("eth_call batch", run)
        except (Web3RPCError, ValueError, TypeError, NotImplementedError):
            self._batching = False  # this node or provider does not take batches
            return self._each(datas, block)


def _revert_name(err: ContractLogicError, names: dict[bytes, str]) -> str:
    """A revert's custom error name (``StalePrice``), its selector, or ``reverted``."""
    data = getattr(err, "data", None)
    if isinstance(data, str | bytes) and data:
        raw = bytes(HexBytes(data))
        if len(raw) >= 4:
            return error_name(raw, names)
    return "reverted"
