"""Who signs the keeper's transactions: any object with ``address`` and ``sign_transaction``."""

from __future__ import annotations

from typing import Protocol

from eth_account import Account


class Signer(Protocol):
    """Signs a transaction dict into raw bytes for ``eth_sendRawTransaction``."""

    address: str

    def sign_transaction(self, tx: dict) -> bytes: ...


class LocalSigner:
    """Signs transactions with a private key held in memory (an eth-account ``LocalAccount``)."""

    def __init__(self, private_key: str | bytes) -> None:
        self._account = Account.from_key(private_key)
        self.address: str = self._account.address

    def sign_transaction(self, tx: dict) -> bytes:
        """The raw signed transaction, ready for ``eth_sendRawTransaction``."""
        return bytes(self._account.sign_transaction(tx).raw_transaction)

    def __repr__(self) -> str:  # never show the key
        return f"LocalSigner({self.address})"
