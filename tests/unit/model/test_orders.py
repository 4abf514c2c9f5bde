# Pure Python, no chain. Run without the Ape plugin (its entry point is named `ape_test`):
#   .venv/bin/python -m pytest tests/unit/model -p no:ape_test -q
"""EIP-712 order hashing, signing and recovery (backstop.orders)."""

from __future__ import annotations

import dataclasses

import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from backstop.orders import (
    SECP256K1_HALF_N,
    SECP256K1_N,
    Order,
    domain_separator,
    make_high_s,
    order_digest,
    order_struct_hash,
    recover_signer,
    sign_order,
    to_tuple,
    typed_data,
)

CHAIN_ID = 31337
ENGINE = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
KEY = "0x" + "11" * 32
SIGNER = Account.from_key(KEY).address


@pytest.fixture
def order() -> Order:
    return Order(
        account=SIGNER,
        market_id=1,
        is_buy=True,
        size=3 * 10**18,
        limit_price=2_000 * 10**18 + 7,
        nonce=42,
        expiry=1_700_000_000,
    )


def test_type_hash_is_the_documented_type_string():
    expected = keccak(
        text="Order(address account,uint256 marketId,bool isBuy,uint256 size,uint256 limitPrice,"
        "uint256 nonce,uint256 expiry)"
    )
    from backstop.orders import ORDER_TYPEHASH

    assert expected == ORDER_TYPEHASH


def test_digest_by_hand_equals_eth_account(order):
    # By hand, straight from EIP-712: hashStruct = keccak(typeHash ‖ enc(fields)), domain likewise.
    type_hash = keccak(
        text="Order(address account,uint256 marketId,bool isBuy,uint256 size,uint256 limitPrice,"
        "uint256 nonce,uint256 expiry)"
    )
    struct_hash = keccak(
        encode(
            ["bytes32", "address", "uint256", "bool", "uint256", "uint256", "uint256", "uint256"],
            [type_hash, SIGNER, 1, True, 3 * 10**18, 2_000 * 10**18 + 7, 42, 1_700_000_000],
        )
    )
    domain_hash = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak(
                    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak(text="Backstop"),
                keccak(text="1"),
                CHAIN_ID,
                ENGINE,
            ],
        )
    )
    by_hand = keccak(b"\x19\x01" + domain_hash + struct_hash)

    signable = encode_typed_data(full_message=typed_data(order, CHAIN_ID, ENGINE))
    via_eth_account = keccak(b"\x19" + signable.version + signable.header + signable.body)

    assert order_struct_hash(order) == struct_hash == signable.body
    assert domain_separator(CHAIN_ID, ENGINE) == domain_hash == signable.header
    assert order_digest(order, CHAIN_ID, ENGINE) == by_hand == via_eth_account
    assert len(by_hand) == 32


def test_digest_depends_on_chain_and_engine(order):
    base = order_digest(order, CHAIN_ID, ENGINE)
    assert order_digest(order, CHAIN_ID + 1, ENGINE) != base
    assert order_digest(order, CHAIN_ID, "0x" + "00" * 19 + "01") != base


def test_sign_then_recover_round_trip(order):
    signature = sign_order(order, KEY, CHAIN_ID, ENGINE)
    assert len(signature) == 65
    assert signature[64] in (27, 28)
    assert int.from_bytes(signature[32:64], "big") <= SECP256K1_HALF_N
    assert recover_signer(order, signature, CHAIN_ID, ENGINE) == SIGNER
    assert recover_signer(order, "0x" + signature.hex(), CHAIN_ID, ENGINE) == SIGNER


def test_signature_matches_eth_account_sign_typed_data(order):
    signed = Account.sign_typed_data(KEY, full_message=typed_data(order, CHAIN_ID, ENGINE))
    assert sign_order(order, KEY, CHAIN_ID, ENGINE) == bytes(signed.signature)


def test_high_s_twin_recovers_none(order):
    signature = sign_order(order, KEY, CHAIN_ID, ENGINE)
    twin = make_high_s(signature)
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    assert twin[:32] == r
    assert int.from_bytes(twin[32:64], "big") == SECP256K1_N - s > SECP256K1_HALF_N
    assert twin[64] == 55 - v
    assert recover_signer(order, twin, CHAIN_ID, ENGINE) is None
    # The twin is a valid secp256k1 signature of the same key: only the low-s rule rejects it.
    assert make_high_s(twin) == signature


@pytest.mark.parametrize(
    "change",
    [
        {"market_id": 2},
        {"is_buy": False},
        {"size": 3 * 10**18 + 1},
        {"limit_price": 2_000 * 10**18},
        {"nonce": 43},
        {"expiry": 1_700_000_001},
        {"account": "0x" + "22" * 20},
    ],
)
def test_tampered_field_recovers_another_address(order, change):
    signature = sign_order(order, KEY, CHAIN_ID, ENGINE)
    tampered = dataclasses.replace(order, **change)
    recovered = recover_signer(tampered, signature, CHAIN_ID, ENGINE)
    assert recovered is not None and recovered != SIGNER


def test_wrong_domain_recovers_another_address(order):
    signature = sign_order(order, KEY, CHAIN_ID, ENGINE)
    assert recover_signer(order, signature, CHAIN_ID + 1, ENGINE) not in (None, SIGNER)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda sig: sig[:64],  # 64 bytes (EIP-2098 compact form is not accepted)
        lambda sig: sig + b"\x00",  # 66 bytes
        lambda sig: sig[:64] + bytes([0]),  # v = 0
        lambda sig: sig[:64] + bytes([1]),  # v = 1
        lambda sig: sig[:64] + bytes([29]),  # v = 29
        lambda sig: bytes(32) + sig[32:],  # r = 0
        lambda sig: sig[:32] + bytes(32) + sig[64:],  # s = 0
        lambda sig: SECP256K1_N.to_bytes(32, "big") + sig[32:],  # r = n
        lambda sig: b"",
    ],
)
def test_malformed_signatures_recover_none(order, mangle):
    signature = sign_order(order, KEY, CHAIN_ID, ENGINE)
    assert recover_signer(order, mangle(signature), CHAIN_ID, ENGINE) is None


def test_to_tuple_is_abi_field_order(order):
    assert to_tuple(order) == (SIGNER, 1, True, 3 * 10**18, 2_000 * 10**18 + 7, 42, 1_700_000_000)


def test_to_tuple_checksums_the_account(order):
    lower = dataclasses.replace(order, account=SIGNER.lower())
    assert to_tuple(lower)[0] == SIGNER
    assert order_struct_hash(lower) == order_struct_hash(order)


def test_struct_hash_is_unique_per_contents(order):
    assert order_struct_hash(order) != order_struct_hash(dataclasses.replace(order, nonce=43))
    assert order_struct_hash(order) == order_struct_hash(dataclasses.replace(order))
