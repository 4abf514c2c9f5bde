"""Cutting whole takeovers into ``liquidateMany`` batches under a gas budget, and halving a batch
whose dry run failed (the runner's fallback). Pure; used by :mod:`backstop.decisions.capital`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class GasModel:
    """Gas estimate of ``liquidateMany``: ``base + Σ(per_account + per_market·(k − 1))`` over
    its accounts of ``k`` markets each; a batch is kept at or under ``budget``."""

    budget: int = 5_000_000
    base: int = 60_000
    per_account: int = 80_000
    per_market: int = 45_000

    def account_gas(self, markets: int) -> int:
        """One account's share of a batch: ``per_account + per_market·(k − 1)``."""
        return self.per_account + self.per_market * (markets - 1)

    def batch_gas(self, market_counts: Iterable[int]) -> int:
        """The estimate of one batch whose accounts hold ``market_counts`` markets."""
        return self.base + sum(self.account_gas(k) for k in market_counts)


@dataclass(frozen=True)
class Batch:
    """``liquidateMany(accounts)``: whole takeovers in this order; ``market_counts[i]`` is the
    number of markets of ``accounts[i]`` (for the gas estimate ``gas``)."""

    accounts: tuple[str, ...]
    gas: int
    market_counts: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.accounts or len(self.accounts) != len(self.market_counts):
            raise ValueError("a batch needs one market count per account, and at least one account")


def batches(group: list[tuple[str, int]], gas: GasModel) -> list[Batch]:
    """Consecutive whole takeovers ``(account, k markets)`` cut greedily, in order, into batches of
    estimate ≤ ``gas.budget``; an account over the budget on its own goes alone."""
    out: list[Batch] = []
    current: list[tuple[str, int]] = []
    for entry in group:
        if current and gas.batch_gas([k for _, k in current] + [entry[1]]) > gas.budget:
            out.append(make_batch(current, gas))
            current = []
        current.append(entry)
    if current:
        out.append(make_batch(current, gas))
    return out


def make_batch(entries: list[tuple[str, int]], gas: GasModel) -> Batch:
    counts = tuple(k for _, k in entries)
    return Batch(accounts=tuple(a for a, _ in entries), gas=gas.batch_gas(counts), market_counts=counts)


def split_batch(batch: Batch, gas: GasModel) -> tuple[Batch, Batch]:
    """``batch`` in two halves (the first gets the odd account), in order, each with its own gas
    estimate: the runner's fallback when a dry run of the batch fails. A batch of one account
    cannot be split: ``ValueError``."""
    n = len(batch.accounts)
    if n < 2:
        raise ValueError("a batch of one account cannot be split")
    entries = list(zip(batch.accounts, batch.market_counts, strict=True))
    half = (n + 1) // 2
    return make_batch(entries[:half], gas), make_batch(entries[half:], gas)
