"""``play_actions``: a plan's actions in order, a failed batch halved down to single accounts."""

from __future__ import annotations

import pytest

from backstop.decisions import Batch, GasModel, PartialStep, play_actions, split_batch

GAS = GasModel()


def batch(*accounts: str) -> Batch:
    counts = (1,) * len(accounts)
    return Batch(accounts=accounts, gas=GAS.batch_gas(counts), market_counts=counts)


def play(actions, poison: set[str]):
    """Plays ``actions`` with a dry run that fails for any batch holding a poisoned account;
    returns the calls made, in order, and the splits announced."""
    calls, splits = [], []

    def try_batch(b: Batch) -> bool:
        calls.append(b.accounts)
        return not poison & set(b.accounts)

    def try_step(s: PartialStep) -> None:
        calls.append(("step", s.account, s.market_id, s.size))

    play_actions(
        actions,
        GAS,
        batch=try_batch,
        step=try_step,
        on_split=lambda b, halves: splits.append((b.accounts, tuple(h.accounts for h in halves))),
    )
    return calls, splits


def test_batches_and_steps_run_in_order_when_every_dry_run_passes():
    calls, splits = play([batch("a", "b"), PartialStep("c", 1, 5), batch("d")], poison=set())
    assert calls == [("a", "b"), ("step", "c", 1, 5), ("d",)]
    assert splits == []


def test_failed_batch_is_halved_down_to_the_poisoned_account():
    calls, splits = play([batch("a", "b", "c", "d", "e"), PartialStep("f", 0, 1)], poison={"d"})
    # (a..e) fails -> (a, b, c) passes, (d, e) fails -> (d) fails alone, (e) passes; then the step.
    assert calls == [
        ("a", "b", "c", "d", "e"),
        ("a", "b", "c"),
        ("d", "e"),
        ("d",),
        ("e",),
        ("step", "f", 0, 1),
    ]
    assert splits == [
        (("a", "b", "c", "d", "e"), (("a", "b", "c"), ("d", "e"))),
        (("d", "e"), (("d",), ("e",))),
    ]


def test_a_failed_single_account_is_not_retried():
    calls, splits = play([batch("x"), batch("y")], poison={"x"})
    assert calls == [("x",), ("y",)]
    assert splits == []


def test_every_account_poisoned_tries_each_once_alone():
    calls, _ = play([batch("a", "b", "c")], poison={"a", "b", "c"})
    singles = [c for c in calls if len(c) == 1]
    assert sorted(singles) == [("a",), ("b",), ("c",)]
    assert len(calls) == 5  # (a,b,c), (a,b), (a), (b), (c)


def test_split_halves_keep_their_own_gas_estimates():
    first, second = split_batch(batch("a", "b", "c"), GAS)
    assert (first.accounts, first.gas) == (("a", "b"), GAS.batch_gas((1, 1)))
    assert (second.accounts, second.gas) == (("c",), GAS.batch_gas((1,)))
    with pytest.raises(ValueError, match="cannot be split"):
        split_batch(batch("solo"), GAS)
