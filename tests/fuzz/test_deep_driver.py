"""The deep driver (``make fuzz-deep``): its workers share one step budget, every requested step
runs exactly once, and a failure is reported with its invariant, its run and a shrunk program."""

from __future__ import annotations

import functools
import re

import pytest

from tests.fuzz.driver import Budget, run_deep
from tests.fuzz.invariants import fail
from tests.fuzz.machine import BackstopMachine, replay


@pytest.fixture(autouse=True)
def _restore_machine_configuration(monkeypatch):
    """A worker that runs in this process configures the machine class: undo it afterwards."""
    for name in ("world", "full_every", "outcomes", "steps_total"):
        monkeypatch.setattr(BackstopMachine, name, getattr(BackstopMachine, name))


LINE = re.compile(r"^fuzz: pyrevm (\d+) steps, (\d+\.\d) steps/s, (\d+) failures$")


def test_budget_hands_out_each_step_once():
    budget = Budget(10)
    assert [budget.claim(4), budget.claim(4), budget.claim(4), budget.claim(4)] == [4, 4, 2, 0]
    budget.give_back(3)
    assert budget.claim(5) == 3 and budget.claim(1) == 0


def test_two_workers_run_exactly_the_requested_steps():
    result = run_deep(700, seed=3, workers=2, run_length=(20, 60), shrink_budget=0)
    assert result.failures == []
    assert result.steps == 700 == sum(w.steps for w in result.workers)
    assert [w.worker for w in result.workers] == [0, 1]
    assert all(w.steps > 0 and w.runs > 0 for w in result.workers)
    found = LINE.match(result.line)
    assert found and found.group(1) == "700" and found.group(3) == "0"


def test_a_failure_names_its_invariant_run_and_shrunk_program(monkeypatch):
    @functools.wraps(BackstopMachine.donate)  # keeps its action declaration
    def broken_donate(self, who: int, amount: int) -> None:
        fail("INV-TEST-DONATE", f"donation by actor {who}")

    # The pool forks after the patch, so the worker inherits it.
    monkeypatch.setattr(BackstopMachine, "donate", broken_donate)
    result = run_deep(2_000, seed=5, workers=1, run_length=(30, 30), shrink_budget=30)
    [failure] = result.failures
    assert failure.inv == "INV-TEST-DONATE"
    assert failure.program[-1][0] == "donate" and failure.step == len(failure.program)
    assert failure.shrunk is not None and [name for name, _ in failure.shrunk] == ["donate"]
    # The worker stops at its first failure: the steps before it, plus the failing one.
    [worker] = result.workers
    assert worker.steps == 30 * worker.runs + failure.step < 2_000
    assert LINE.match(result.line).group(3) == "1"
    # The shrunk program fails the same way when replayed directly.
    world = BackstopMachine.world
    try:
        replay(world, failure.shrunk)
    except AssertionError as err:
        assert "INV-TEST-DONATE" in str(err)
    else:
        raise AssertionError("the shrunk program replays without failing")
