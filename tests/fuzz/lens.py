"""The word layout of ``BackstopLens.snapshotWords``, written once, and its codec.

``snapshotWords(accounts, parts)`` returns one ABI-encoded ``int256[]`` (documented in
``contracts/periphery/IBackstopLens.sol``; ``test_harness_tables.py`` checks the tuples below
against that documentation, and ``test_fuzz_pyrevm.py`` a live answer against the suite's views). The three named tuples below *are* its layout: their
fields, in order, are the words the lens writes, so the decoder (:func:`decode_snapshot`) and the
encoder (:func:`snapshot_to_words`, which the fuzz machine uses to predict the lens's answer word
for word) both read the layout from them, and every offset below is derived from them.

- :class:`Snapshot`: the system words — ``parts``, then ``SystemView``'s 15 fields, the last being
  the market count ``n`` — followed by ``n`` markets and then the accounts, in the order asked for;
- :class:`MarketSnap`: per market (id order), :data:`MARKET_WORDS` words;
- :class:`AccountSnap`: per account, :data:`ACCOUNT_HEAD_WORDS` fixed words ending with the count
  ``k`` of markets it holds, then the ``k`` market ids (opening order), then ``n`` sizes and ``n``
  open notionals (by market id).

Booleans are 0 or 1, as the lens writes them. A ``PART_*`` bit left out of ``parts`` reads as
zeros in the words it covers.
"""

from __future__ import annotations

from typing import NamedTuple

#: ``snapshotWords`` part: each market's oracle price, usability and pause flag.
PART_PRICES = 1
#: ``snapshotWords`` part: each account's exit request, wallet balance and minimum nonce.
PART_ACCOUNT_DETAIL = 2
#: ``snapshotWords`` part: the components of the solvency identity, the token balances, coverable.
PART_SYSTEM_DETAIL = 4
ALL_PARTS = PART_PRICES | PART_ACCOUNT_DETAIL | PART_SYSTEM_DETAIL


class MarketSnap(NamedTuple):
    """One market's words (``IBackstopLens.MarketView``)."""

    open_interest: int
    long_index: int
    short_index: int
    paused: int  # PART_PRICES
    priced: int  # PART_PRICES
    price: int  # PART_PRICES; 0 unless priced


class AccountSnap(NamedTuple):
    """One account's words: the fixed head, then its variable tail (``markets``, ``sizes``,
    ``notionals``)."""

    margin: int
    pending: int
    priced: int  # whether every market it holds has a usable price; the next four are 0 if not
    equity: int
    imr: int
    mmr: int
    free: int
    fund_shares: int
    request_shares: int  # PART_ACCOUNT_DETAIL: the pending fund exit request...
    request_assets: int
    requested_at: int
    wallet: int  # PART_ACCOUNT_DETAIL
    min_nonce: int  # PART_ACCOUNT_DETAIL
    market_count: int  # k: the last word of the head
    markets: list[int]  # k market ids, in opening order
    sizes: list[int]  # n, by market id
    notionals: list[int]  # n, by market id

    @property
    def request(self) -> tuple[int, int, int]:
        """``(shares, assets at request, requested at)`` of the pending exit request (zeros: none)."""
        return (self.request_shares, self.request_assets, self.requested_at)


class Snapshot(NamedTuple):
    """The whole answer: the system words, then the markets and the accounts."""

    parts: int  # which optional parts are present (``PART_*`` bits)
    block_number: int
    timestamp: int
    vault_assets: int
    liabilities: int
    dust: int
    total_margin: int  # PART_SYSTEM_DETAIL (through coverable, except fund_assets and fund_supply)
    net_open_notional: int
    unsettled_loss: int
    vault_tokens: int
    fund_tokens: int
    fund_credit: int  # PART_SYSTEM_DETAIL: the fund's credit in the vault (token units)
    fund_assets: int
    fund_supply: int
    coverable: int
    market_count: int  # n: the last system word
    markets: list[MarketSnap]
    accounts: list[AccountSnap]


#: Words before the first market.
SYSTEM_WORDS = Snapshot._fields.index("markets")
#: Words per market.
MARKET_WORDS = len(MarketSnap._fields)
#: Fixed words per account (through its market count ``k``).
ACCOUNT_HEAD_WORDS = AccountSnap._fields.index("markets")
#: Word indices the machine reads directly.
BLOCK_NUMBER_WORD = Snapshot._fields.index("block_number")
DUST_WORD = Snapshot._fields.index("dust")
MARKET_COUNT_WORD = Snapshot._fields.index("market_count")
ACCOUNT_MARKET_COUNT = AccountSnap._fields.index("market_count")
assert MARKET_COUNT_WORD == SYSTEM_WORDS - 1 and ACCOUNT_MARKET_COUNT == ACCOUNT_HEAD_WORDS - 1

_from_bytes = int.from_bytes
_to_bytes = int.to_bytes
_ZERO = bytes(32)
_HEADER = 64  # the ABI offset word and the array length


def word_of(output: bytes, index: int) -> int:
    """Word ``index`` of a raw ``snapshotWords`` answer, unsigned (no decoding of the rest)."""
    at = _HEADER + 32 * index
    return _from_bytes(output[at : at + 32], "big")


def snapshot_words(output: bytes) -> list[int]:
    """The words of a ``BackstopLens.snapshotWords`` answer (an ABI-encoded ``int256[]``)."""
    end = _HEADER + 32 * _from_bytes(output[32:64], "big")
    return [_from_bytes(output[i : i + 32], "big", signed=True) for i in range(_HEADER, end, 32)]


def encode_snapshot_words(words: list[int]) -> bytes:
    """The ABI encoding of ``words`` as ``snapshotWords`` returns it (offset, length, words): what
    the chain answers when it agrees word for word, so that agreement is one ``bytes`` comparison."""
    header = _to_bytes(32, 32, "big") + _to_bytes(len(words), 32, "big")
    return header + b"".join([_to_bytes(x, 32, "big", signed=True) if x else _ZERO for x in words])


def snapshot_to_words(snap: Snapshot) -> list[int]:
    """The words of ``snap`` in the lens's order (the inverse of :func:`decode_snapshot`)."""
    words = list(snap[:SYSTEM_WORDS])
    for market in snap.markets:
        words += market
    for acc in snap.accounts:
        words += acc[:ACCOUNT_HEAD_WORDS]
        words += acc.markets
        words += acc.sizes
        words += acc.notionals
    return words


def decode_snapshot(output: bytes | list[int], n_accounts: int) -> Snapshot:
    """Decodes ``BackstopLens.snapshotWords`` (raw output or its :func:`snapshot_words`) for
    ``n_accounts`` accounts, by hand."""
    words = snapshot_words(output) if isinstance(output, bytes | bytearray) else output
    n_markets = words[MARKET_COUNT_WORD]
    w = SYSTEM_WORDS
    markets = []
    for _ in range(n_markets):
        markets.append(MarketSnap._make(words[w : w + MARKET_WORDS]))
        w += MARKET_WORDS
    accounts = []
    for _ in range(n_accounts):
        head = words[w : w + ACCOUNT_HEAD_WORDS]
        w += ACCOUNT_HEAD_WORDS
        k = head[ACCOUNT_MARKET_COUNT]
        ids = words[w : w + k]
        w += k
        sizes = words[w : w + n_markets]
        w += n_markets
        notionals = words[w : w + n_markets]
        w += n_markets
        accounts.append(AccountSnap(*head, ids, sizes, notionals))
    return Snapshot(*words[:SYSTEM_WORDS], markets, accounts)
