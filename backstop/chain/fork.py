"""Node-side primitives for rehearsing on a fork (issue #17): give an account real tokens and make a
real Chainlink feed report a chosen price, through the dev node's own RPC (anvil), never by
deploying a mock token or pointing the suite at a mock feed.

* :func:`fund_token` moves ``amount`` of an ERC-20 to an account: from a ``holder`` by
  impersonating it (``anvil_impersonateAccount``, a real ``transfer``), or, without a holder, by
  finding the token's balance mapping in storage (Solidity and Vyper layouts, probed slot by slot
  at the token's own address, so a proxy such as USDC works) and adding to the account's entry.
* :func:`set_feed_answer` replaces the code at a feed with ``MockAggregator``'s runtime and writes
  its storage so the feed keeps its decimals and description and reports the new answer as the
  next round, stamped with the latest block's time. Only on a dev chain.

web3.py only: no Ape import, so the functions work on any web3 client (a script, a test, Ape's
``provider.web3``). Amounts are the token's base units; an answer is in the feed's own decimals.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from eth_abi import decode, encode
from eth_utils import is_address, keccak, to_checksum_address
from web3 import Web3

from backstop.chain.abi import Artifacts, encode_call

#: Slots probed for a token's balance mapping (USDC's FiatTokenV2_2 keeps it at 9; most tokens
#: below 10; upgradeable OpenZeppelin tokens use a namespaced slot and are not found this way).
PROBE_SLOTS = 64
#: A value no real balance entry holds, written while probing a slot.
_PROBE_VALUE = 0x5EED_F00D_5EED_F00D_5EED_F00D_5EED_F00D
_WORD = 2**256

# MockAggregator's storage (contracts/mocks/MockAggregator.sol, in declaration order; `version` is a
# constant and takes no slot). Checked against solc's storage layout in tests/integration/test_fork.py.
SLOT_DECIMALS = 0  # uint8, offset 0
SLOT_DESCRIPTION = 1  # string
SLOT_ROUND_ID = 2  # uint80, offset 0
SLOT_ANSWER = 3  # int256
SLOT_STARTED_AT = 4  # uint256
SLOT_UPDATED_AT = 5  # uint256

ROUND_FIELDS = ("roundId", "answer", "startedAt", "updatedAt", "answeredInRound")


class ForkError(RuntimeError):
    """A fork primitive could not do what was asked; the message names the token, feed or node."""


# --- RPC ---------------------------------------------------------------------------------------------


def _request(w3: Web3, method: str, params: list[Any]) -> Any:
    """The result of one JSON-RPC call, or :class:`ForkError` with the node's error message."""
    try:
        response = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    except Exception as err:  # a transport failure, reported with the method
        raise ForkError(f"{method}: the node did not answer ({type(err).__name__}: {err})") from err
    if "error" in response:
        error = response["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise ForkError(f"{method}: {message}")
    return response.get("result")


def _call(w3: Web3, to: str, data: bytes) -> bytes:
    """``eth_call`` at the latest block; :class:`ForkError` on a revert."""
    result = _request(w3, "eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"])
    return bytes.fromhex(result.removeprefix("0x"))


def _word(value: int) -> str:
    return "0x" + (value % _WORD).to_bytes(32, "big").hex()


def _get_storage(w3: Web3, address: str, slot: int) -> int:
    return int(_request(w3, "eth_getStorageAt", [address, _word(slot), "latest"]), 16)


def _set_storage(w3: Web3, address: str, slot: int, value: int) -> None:
    _request(w3, "anvil_setStorageAt", [address, _word(slot), _word(value)])


def _address(value: str, what: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise ForkError(f"{what}: not an address: {value!r}")
    return to_checksum_address(value)


def _has_code(w3: Web3, address: str) -> bool:
    return _request(w3, "eth_getCode", [address, "latest"]) not in (None, "0x", "0x0")


def dev_node(w3: Web3) -> str:
    """The client version of the node if it is anvil (``anvil_nodeInfo`` answers, or the client
    version says so); :class:`ForkError` otherwise: a live node must never be asked to rewrite code."""
    try:
        version = str(_request(w3, "web3_clientVersion", []))
    except ForkError as err:
        raise ForkError(f"not a dev chain: {err}") from err
    try:
        _request(w3, "anvil_nodeInfo", [])
    except ForkError as err:
        if not version.lower().startswith("anvil"):
            raise ForkError(
                f"not a dev chain: the node is {version!r} and does not answer anvil_nodeInfo ({err})"
            ) from err
    return version


# --- tokens ------------------------------------------------------------------------------------------


def _balance_of(w3: Web3, token: str, account: str) -> int:
    try:
        (balance,) = decode(["uint256"], _call(w3, token, encode_call("balanceOf(address)", account)))
    except Exception as err:  # a revert, or an answer that is not a uint256
        raise ForkError(f"token {token}: balanceOf({account}) failed ({err})") from err
    return balance


def balance_slots(account: str, slots: int = PROBE_SLOTS) -> Iterator[tuple[str, int, int]]:
    """``(layout, mapping slot, storage key)`` of ``account``'s entry in a ``mapping(address =>
    uint256)`` at each slot below ``slots``: Solidity ``keccak(pad(account) ‖ pad(slot))``, then Vyper
    ``keccak(pad(slot) ‖ pad(account))``."""
    for slot in range(slots):
        yield "solidity", slot, int.from_bytes(keccak(encode(["address", "uint256"], [account, slot])), "big")
        yield "vyper", slot, int.from_bytes(keccak(encode(["uint256", "address"], [slot, account])), "big")


def find_balance_slot(
    w3: Web3, token: str, account: str, *, slots: int = PROBE_SLOTS
) -> tuple[str, int, int] | None:
    """The ``(layout, mapping slot, storage key)`` whose word ``balanceOf(account)`` returns, or
    None. Each probe writes a marker at the token's address, reads ``balanceOf`` and restores the
    word, whatever happens: storage is left as it was."""
    token = _address(token, "token")
    account = _address(account, "account")
    for layout, slot, key in balance_slots(account, slots):
        old = _get_storage(w3, token, key)
        marker = _PROBE_VALUE if old != _PROBE_VALUE else _PROBE_VALUE + 1
        _set_storage(w3, token, key, marker)
        try:
            seen = _balance_of(w3, token, account)
        finally:
            _set_storage(w3, token, key, old)
        if seen == marker:
            return layout, slot, key
    return None


def fund_token(w3: Web3, token: str, account: str, amount: int, *, holder: str | None = None) -> str:
    """Gives ``account`` ``amount`` base units of ERC-20 ``token`` through the node, never a mock.

    With ``holder``: impersonates it (``anvil_impersonateAccount``), sends a real
    ``transfer(account, amount)`` from it and stops impersonating (``anvil_stopImpersonatingAccount``),
    even on a failure; a holder without the ether for gas is lent it for that one transaction (its
    ether balance is set back afterwards). Without: finds the token's balance mapping by probing
    slots ``0..PROBE_SLOTS-1`` at the token's address (Solidity layout ``keccak(pad(account) ‖
    pad(slot))`` and Vyper layout, each probe restored) and sets the account's entry to old +
    ``amount`` with ``anvil_setStorageAt`` (the total supply is not changed). Either way the
    account's ``balanceOf`` must have grown by exactly ``amount``.

    Returns ``"impersonate"`` or ``"storage"``. Raises :class:`ForkError` naming the token when
    neither works (no code at the address, a holder short of tokens, a transfer that reverts or
    moves another amount, no probed slot that ``balanceOf`` reads).
    """
    token = _address(token, "token")
    account = _address(account, "account")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise ForkError(
            f"token {token}: amount must be a positive whole number of base units, got {amount!r}"
        )
    if not _has_code(w3, token):
        raise ForkError(f"token {token}: no contract at this address on this chain")
    before = _balance_of(w3, token, account)
    if holder is not None:
        _impersonated_transfer(w3, token, _address(holder, "holder"), account, amount)
        how = "impersonate"
    else:
        found = find_balance_slot(w3, token, account)
        if found is None:
            raise ForkError(
                f"token {token}: no balance mapping found in slots 0..{PROBE_SLOTS - 1} (Solidity or Vyper "
                "layout) that balanceOf reads; pass holder= (an address holding the token) to fund by transfer"
            )
        _, _, key = found
        raw = _get_storage(w3, token, key)
        if raw + amount >= _WORD:
            raise ForkError(f"token {token}: {account}'s balance word would overflow")
        _set_storage(w3, token, key, raw + amount)
        how = "storage"
    after = _balance_of(w3, token, account)
    if after != before + amount:
        raise ForkError(
            f"token {token}: {account} holds {after} after funding by {how}, expected {before} + {amount}"
        )
    return how


def _impersonated_transfer(w3: Web3, token: str, holder: str, account: str, amount: int) -> None:
    held = _balance_of(w3, token, holder)
    if held < amount:
        raise ForkError(f"token {token}: holder {holder} has {held} base units, {amount} asked")
    tx = {
        "from": holder,
        "to": token,
        "data": "0x" + encode_call("transfer(address,uint256)", account, amount).hex(),
    }
    ether = int(_request(w3, "eth_getBalance", [holder, "latest"]), 16)
    lent = False
    _request(w3, "anvil_impersonateAccount", [holder])
    try:
        gas = 2 * int(_request(w3, "eth_estimateGas", [tx]), 16)
        tip = 10**9
        fee = 2 * int(w3.eth.get_block("latest").get("baseFeePerGas") or 0) + tip
        if ether < gas * fee:
            _request(w3, "anvil_setBalance", [holder, hex(gas * fee)])
            lent = True
        priced = {**tx, "gas": hex(gas), "maxFeePerGas": hex(fee), "maxPriorityFeePerGas": hex(tip)}
        tx_hash = _request(w3, "eth_sendTransaction", [priced])
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    except Exception as err:  # a revert in the estimate, a node error, a timeout
        raise ForkError(f"token {token}: transfer of {amount} from holder {holder} failed ({err})") from err
    finally:
        if lent:
            _request(w3, "anvil_setBalance", [holder, hex(ether)])
        _request(w3, "anvil_stopImpersonatingAccount", [holder])
    if receipt["status"] != 1:
        raise ForkError(f"token {token}: transfer of {amount} from holder {holder} reverted ({tx_hash})")


# --- feeds -------------------------------------------------------------------------------------------


def _read_feed(w3: Web3, feed: str) -> tuple[int, str, dict[str, int]]:
    try:
        (decimals,) = decode(["uint8"], _call(w3, feed, encode_call("decimals()")))
        (description,) = decode(["string"], _call(w3, feed, encode_call("description()")))
        values = decode(
            ["uint80", "int256", "uint256", "uint256", "uint80"],
            _call(w3, feed, encode_call("latestRoundData()")),
        )
    except Exception as err:  # a revert or an answer that does not decode
        raise ForkError(
            f"feed {feed}: not a Chainlink AggregatorV3 feed ({type(err).__name__}: {err})"
        ) from err
    return decimals, description, dict(zip(ROUND_FIELDS, values, strict=True))


def string_storage(slot: int, value: str) -> dict[int, int]:
    """The storage words of a Solidity ``string`` at ``slot``: up to 31 bytes inline (data
    left-aligned, ``2 * length`` in the last byte); longer, ``2 * length + 1`` at the slot and the
    data from ``keccak(slot)`` on."""
    data = value.encode()
    if len(data) < 32:
        return {slot: int.from_bytes(data.ljust(31, b"\0") + bytes([2 * len(data)]), "big")}
    words = {slot: 2 * len(data) + 1}
    base = int.from_bytes(keccak(slot.to_bytes(32, "big")), "big")
    for i in range(0, len(data), 32):
        words[base + i // 32] = int.from_bytes(data[i : i + 32].ljust(32, b"\0"), "big")
    return words


def mock_aggregator_storage(
    decimals: int, description: str, round_id: int, answer: int, started_at: int, updated_at: int
) -> dict[int, int]:
    """``slot -> word`` of a ``MockAggregator`` in the given state (answer as two's complement)."""
    return {
        SLOT_DECIMALS: decimals,
        **string_storage(SLOT_DESCRIPTION, description),
        SLOT_ROUND_ID: round_id,
        SLOT_ANSWER: answer % _WORD,
        SLOT_STARTED_AT: started_at,
        SLOT_UPDATED_AT: updated_at,
    }


def set_feed_answer(w3: Web3, feed: str, answer: int) -> dict:
    """Makes the Chainlink feed at ``feed`` report ``answer`` (in the feed's own decimals), with
    ``startedAt = updatedAt =`` the latest block's timestamp and ``roundId =`` the previous + 1.

    Reads ``decimals``, ``description`` and ``latestRoundData`` first, then replaces the code at
    ``feed`` with ``MockAggregator``'s runtime (``anvil_setCode``) and writes its storage
    (``anvil_setStorageAt``) so decimals and description are preserved, and reads the feed back.
    Returns ``{"feed", "decimals", "description", "before": round, "after": round}``, each round a
    dict of ``roundId, answer, startedAt, updatedAt, answeredInRound``. Only on a dev chain
    (anvil): raises :class:`ForkError` otherwise, before anything is sent, and when the address is
    not a feed or the new round cannot follow the old one.
    """
    feed = _address(feed, "feed")
    try:
        dev_node(w3)
    except ForkError as err:
        raise ForkError(f"feed {feed}: refusing to rewrite a feed: {err}") from err
    if not isinstance(answer, int) or isinstance(answer, bool) or not -(2**255) <= answer < 2**255:
        raise ForkError(f"feed {feed}: answer must be an int256, got {answer!r}")
    if not _has_code(w3, feed):
        raise ForkError(f"feed {feed}: no contract at this address on this chain")
    decimals, description, before = _read_feed(w3, feed)
    round_id = before["roundId"] + 1
    if round_id >= 2**80:
        raise ForkError(f"feed {feed}: round id {before['roundId']} has no successor in uint80")
    now = int(w3.eth.get_block("latest")["timestamp"])
    try:
        code = Artifacts.load().runtime_bytecode("MockAggregator")
    except (OSError, KeyError, ValueError) as err:
        raise ForkError(
            f"feed {feed}: MockAggregator's compiled runtime is unavailable ({err}); run `ape compile`"
        ) from err
    _request(w3, "anvil_setCode", [feed, "0x" + code.hex()])
    for slot, value in mock_aggregator_storage(decimals, description, round_id, answer, now, now).items():
        _set_storage(w3, feed, slot, value)
    got_decimals, got_description, after = _read_feed(w3, feed)
    expected = dict(zip(ROUND_FIELDS, (round_id, answer, now, now, round_id), strict=True))
    if (got_decimals, got_description, after) != (decimals, description, expected):
        raise ForkError(
            f"feed {feed}: reads back decimals {got_decimals}, description {got_description!r}, round {after}; "
            f"expected {decimals}, {description!r}, {expected}"
        )
    return {"feed": feed, "decimals": decimals, "description": description, "before": before, "after": after}
