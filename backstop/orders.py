"""EIP-712 orders for the margin engine: hashing, signing and recovery (mirrors OpenZeppelin ECDSA).

Domain: name ``Backstop``, version ``1``, the chain id and the engine's address. Order fields are
integers in the contract's units: ``size`` in WAD base units (> 0, unsigned; the side is ``is_buy``),
``limit_price`` in WAD quote per base unit, ``expiry`` a unix timestamp (inclusive).

Signatures are 65 bytes ``r ‖ s ‖ v`` with ``v ∈ {27, 28}`` and low ``s`` (``s ≤ n/2``), the only
form ``ECDSA.recover`` accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys import KeyAPI
from eth_keys.exceptions import BadSignature
from eth_utils import keccak, to_checksum_address

ORDER_TYPE = (
    "Order(address account,uint256 marketId,bool isBuy,uint256 size,uint256 limitPrice,"
    "uint256 nonce,uint256 expiry)"
)
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
ORDER_TYPEHASH = keccak(text=ORDER_TYPE)
DOMAIN_TYPEHASH = keccak(text=DOMAIN_TYPE)
DOMAIN_NAME = "Backstop"
DOMAIN_VERSION = "1"
#: The expiry of an order that never expires in practice (year ~36,800): scenarios, fuzzing, bench.
FAR_EXPIRY = 2**40

#: Order of the secp256k1 group; OpenZeppelin rejects ``s > SECP256K1_N // 2`` (malleability).
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2

_EIP712_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Order": [
        {"name": "account", "type": "address"},
        {"name": "marketId", "type": "uint256"},
        {"name": "isBuy", "type": "bool"},
        {"name": "size", "type": "uint256"},
        {"name": "limitPrice", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "expiry", "type": "uint256"},
    ],
}


@dataclass(frozen=True)
class Order:
    """A signed-order payload. ``size`` and ``limit_price`` are WAD integers; ``expiry`` seconds."""

    account: str
    market_id: int
    is_buy: bool
    size: int
    limit_price: int
    nonce: int
    expiry: int


def to_tuple(order: Order) -> tuple[str, int, bool, int, int, int, int]:
    """The ABI tuple ``(account, marketId, isBuy, size, limitPrice, nonce, expiry)`` for contract calls."""
    return (
        to_checksum_address(order.account),
        order.market_id,
        order.is_buy,
        order.size,
        order.limit_price,
        order.nonce,
        order.expiry,
    )


def order_struct_hash(order: Order) -> bytes:
    """``hashStruct(order)``: keccak of the type hash and the ABI-encoded fields (32 bytes)."""
    return keccak(
        encode(
            ["bytes32", "address", "uint256", "bool", "uint256", "uint256", "uint256", "uint256"],
            [ORDER_TYPEHASH, *to_tuple(order)],
        )
    )


def domain_separator(chain_id: int, engine: str) -> bytes:
    """The EIP-712 domain separator of the engine at ``engine`` on ``chain_id`` (32 bytes)."""
    return keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                DOMAIN_TYPEHASH,
                keccak(text=DOMAIN_NAME),
                keccak(text=DOMAIN_VERSION),
                chain_id,
                to_checksum_address(engine),
            ],
        )
    )


def order_digest(order: Order, chain_id: int, engine: str) -> bytes:
    """The digest the engine recovers from: ``keccak(0x1901 ‖ domainSeparator ‖ structHash)``."""
    return keccak(b"\x19\x01" + domain_separator(chain_id, engine) + order_struct_hash(order))


def typed_data(order: Order, chain_id: int, engine: str) -> dict[str, Any]:
    """The order as an EIP-712 ``full_message`` (what a wallet's ``eth_signTypedData_v4`` takes)."""
    account, market_id, is_buy, size, limit_price, nonce, expiry = to_tuple(order)
    return {
        "types": _EIP712_TYPES,
        "primaryType": "Order",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(engine),
        },
        "message": {
            "account": account,
            "marketId": market_id,
            "isBuy": is_buy,
            "size": size,
            "limitPrice": limit_price,
            "nonce": nonce,
            "expiry": expiry,
        },
    }


def sign_order(order: Order, private_key: bytes | str, chain_id: int, engine: str) -> bytes:
    """Signs ``order`` through eth-account's EIP-712 encoder: 65 bytes ``r ‖ s ‖ v``, v ∈ {27, 28}, low s."""
    message = encode_typed_data(full_message=typed_data(order, chain_id, engine))
    signature = bytes(Account.sign_message(message, private_key).signature)
    _r, s, v = _split(signature)
    assert v in (27, 28) and s <= SECP256K1_HALF_N, "eth-account returned a non-canonical signature"
    return signature


def recover_signer(order: Order, signature: bytes | str, chain_id: int, engine: str) -> str | None:
    """The checksummed signer of ``order``, or ``None`` where OpenZeppelin's ``ECDSA.recover`` reverts.

    Rejected: length ≠ 65, ``v ∉ {27, 28}``, ``s > n/2`` (the malleable twin), ``r`` or ``s`` out of
    ``[1, n)``, and points that do not recover (``ecrecover`` returning the zero address).
    """
    sig = _as_bytes(signature)
    if len(sig) != 65:
        return None
    r, s, v = _split(sig)
    if v not in (27, 28) or s > SECP256K1_HALF_N or not 0 < r < SECP256K1_N or s == 0:
        return None
    try:
        key = KeyAPI.Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(
            order_digest(order, chain_id, engine)
        )
    except (BadSignature, ValueError):
        return None
    return key.to_checksum_address()


def make_high_s(signature: bytes | str) -> bytes:
    """The malleable twin of a signature: ``s' = n - s`` and ``v`` flipped 27 ↔ 28 (same signer)."""
    r, s, v = _split(_as_bytes(signature))
    return r.to_bytes(32, "big") + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])


def _as_bytes(signature: bytes | str) -> bytes:
    if isinstance(signature, str):
        return bytes.fromhex(signature.removeprefix("0x"))
    return bytes(signature)


def _split(signature: bytes) -> tuple[int, int, int]:
    if len(signature) != 65:
        raise ValueError(f"expected a 65-byte signature, got {len(signature)} bytes")
    return int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
