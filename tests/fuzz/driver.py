"""Drivers of the fuzz machine: the pinned hypothesis CI profile, and the seeded deep driver.

- :func:`run_ci` runs :class:`BackstopMachine` under hypothesis with the CI profile (pinned seed,
  bounded examples and steps, no database) on any world. ``tests/fuzz/test_fuzz_*.py`` and
  ``tools/mutation.py`` call it.
- :func:`run_deep` runs the same machine's rules with a seeded ``random.Random`` instead of
  hypothesis (whose per-step overhead alone is ~0.4 ms), on pyrevm, for a step budget, optionally
  in several processes. A failure is replayed, shrunk by deleting steps (the same invariant must
  still fail) and printed as a program for ``tests/fuzz/test_regressions.py``.

Every run ends with one line: ``fuzz: <backend> <steps> steps, <rate> steps/s, <failures> failures``.
"""

from __future__ import annotations

import gc
import multiprocessing
import random
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.stateful import run_state_machine_as_test

from tests.fuzz.dsl import actions_of
from tests.fuzz.invariants import InvariantViolation
from tests.fuzz.machine import BackstopMachine, replay
from tests.fuzz.world import World

#: The CI profile: pinned seed, bounded run (about 4,500 steps), no example database. The seed
#: moved from 20,261,121 when ``sweep_to_fund`` joined the actions: the run it pinned no longer
#: reached ``partial-step-bankrupt-check-skipped`` and ``batch-final-imr-check-skipped`` of
#: ``make mutation`` within the budget; this one catches all its mutants.
CI_SEED = 20_261_123
CI_EXAMPLES = 60
CI_STEPS_PER_EXAMPLE = 80


def ci_settings(max_examples: int = CI_EXAMPLES, shrink: bool = True) -> settings:
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(
        max_examples=max_examples,
        stateful_step_count=CI_STEPS_PER_EXAMPLE,
        deadline=None,
        database=None,
        derandomize=False,
        phases=phases,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


def fuzz_line(backend: str, steps: int, seconds: float, failures: int) -> str:
    rate = steps / seconds if seconds > 0 else 0.0
    return f"fuzz: {backend} {steps} steps, {rate:.1f} steps/s, {failures} failures"


@dataclass
class CiResult:
    steps: int
    seconds: float
    failures: int
    error: BaseException | None = None
    line: str = ""


def run_ci(
    world: World,
    max_examples: int = CI_EXAMPLES,
    shrink: bool = True,
    full_every: int = 1,
    seed: int = CI_SEED,
) -> CiResult:
    """The CI profile on ``world``: hypothesis, pinned ``seed``, ``full_every = 1`` (the whole
    snapshot after every step). Never raises: the failure, if any, is in ``result.error``."""

    class CiMachine(BackstopMachine):
        pass

    CiMachine.world = world
    CiMachine.full_every = full_every
    CiMachine.steps_total = 0
    hypothesis_seed(seed)(CiMachine)
    start = time.perf_counter()
    error: BaseException | None = None
    try:
        run_state_machine_as_test(CiMachine, settings=ci_settings(max_examples, shrink))
    except BaseException as err:  # reported, and re-raised by the caller
        error = err
    seconds = time.perf_counter() - start
    steps = CiMachine.steps_total
    result = CiResult(steps, seconds, int(error is not None), error)
    result.line = fuzz_line(world.backend.name, steps, seconds, result.failures)
    return result


# --- the deep driver --------------------------------------------------------------------------------

Program = list[tuple[str, dict[str, Any]]]


class Drawer:
    """Draws ``(rule, arguments)`` from the machine's declared actions with their weights."""

    def __init__(self) -> None:
        acts = actions_of(BackstopMachine)
        self.names = [a[0] for a in acts]
        self.params = [list(a[2].items()) for a in acts]
        cumulative, total = [], 0
        for _, weight, _ in acts:
            total += weight
            cumulative.append(total)
        self.cumulative = cumulative
        self.total = total

    def draw(self, rng: random.Random) -> tuple[str, dict[str, Any]]:
        pick = rng.randrange(self.total)
        i = 0
        while self.cumulative[i] <= pick:
            i += 1
        return self.names[i], {name: p.draw(rng) for name, p in self.params[i]}


@dataclass
class Failure:
    worker: int
    run_seed: int
    step: int
    inv: str
    message: str
    program: Program
    shrunk: Program | None = None


@dataclass
class WorkerResult:
    worker: int
    steps: int = 0
    runs: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)


def _inv_of(err: BaseException) -> str:
    return err.inv if isinstance(err, InvariantViolation) else type(err).__name__


def run_program(world: World, program: Program, full_every: int = 1) -> BaseException | None:
    """Replays ``program`` on a fresh run; the exception it fails with, or None."""
    try:
        replay(world, program, full_every)
    except Exception as err:
        return err
    return None


def shrink(world: World, program: Program, inv: str, budget: float = 60.0) -> Program:
    """Deletes steps (halves, then smaller chunks, then single steps) while the replay still fails
    with invariant ``inv``; stops after ``budget`` seconds."""
    deadline = time.monotonic() + budget

    def fails(candidate: Program) -> bool:
        err = run_program(world, candidate)
        return err is not None and _inv_of(err) == inv

    current = list(program)
    chunk = max(len(current) // 2, 1)
    while chunk >= 1 and time.monotonic() < deadline:
        i, progressed = 0, False
        while i < len(current) and time.monotonic() < deadline:
            candidate = current[:i] + current[i + chunk :]
            if candidate and fails(candidate):
                current, progressed = candidate, True
            else:
                i += chunk
        if not progressed:
            chunk //= 2
    return current


class Budget:
    """The campaign's steps not yet claimed: a counter in shared memory that every worker draws
    its next run's steps from, so that the workers finish together however fast each one is (a
    fixed share per worker would leave the fastest idle while the slowest finishes)."""

    def __init__(self, steps: int, ctx: Any = multiprocessing) -> None:
        self._left = ctx.Value("q", steps)

    def claim(self, want: int) -> int:
        """Up to ``want`` steps (0 once the campaign's steps are all claimed)."""
        with self._left.get_lock():
            take = min(want, self._left.value)
            self._left.value -= take
        return take

    def give_back(self, steps: int) -> None:
        """Steps claimed but not run (a run cut short by a failure)."""
        with self._left.get_lock():
            self._left.value += steps


#: The shared budget of the pool's workers (set in each worker by :func:`_init_worker`).
_BUDGET: Budget | None = None


def _init_worker(budget: Budget) -> None:
    global _BUDGET
    _BUDGET = budget


def deep_worker(
    worker: int,
    budget: Budget,
    seed: int,
    full_every: int,
    run_length: tuple[int, int],
    stop_on_failure: bool,
    shrink_budget: float,
    decimals: int = 6,
) -> WorkerResult:
    """One process's part of a deep campaign (pyrevm): seeded runs, each with the steps it can
    claim from ``budget``, until the budget is spent (or, with ``stop_on_failure``, a run fails).
    The worker's sequence of runs (seeds and lengths) depends only on ``seed`` and ``worker``;
    how many of them it gets to depends on the other workers' pace."""
    from backstop.chain.evm import PyRevmBackend

    world = World(PyRevmBackend(), decimals=decimals)
    # Everything alive now (the world, the libraries) lives for the whole campaign: move it out of
    # the cyclic collector's generations so that its collections only walk the runs' own objects.
    gc.collect()
    gc.freeze()
    BackstopMachine.world = world
    BackstopMachine.full_every = full_every
    BackstopMachine.outcomes = Counter()
    drawer = Drawer()
    rng = random.Random(f"{seed}:{worker}")
    result = WorkerResult(worker)
    start = time.perf_counter()
    while True:
        run_seed = rng.getrandbits(48)
        length = budget.claim(rng.randint(*run_length))
        if length == 0:
            break
        run_rng = random.Random(run_seed)
        machine = BackstopMachine()
        done = 0
        try:
            machine.check()
            for _ in range(length):
                machine.do(*drawer.draw(run_rng))
                machine.check()
                done += 1
            machine.teardown()
            result.steps += done
        except Exception as err:
            done = min(done + 1, length)
            result.steps += done
            budget.give_back(length - done)
            program = machine.program
            failure = Failure(worker, run_seed, len(program), _inv_of(err), _describe(err), program)
            if shrink_budget > 0:
                failure.shrunk = shrink(world, program, failure.inv, shrink_budget)
            result.failures.append(failure)
            if stop_on_failure:
                break
        result.runs += 1
    result.seconds = time.perf_counter() - start
    result.outcomes = BackstopMachine.outcomes
    gc.unfreeze()
    return result


def _describe(err: BaseException) -> str:
    if isinstance(err, AssertionError):
        return str(err)
    return "".join(traceback.format_exception_only(type(err), err)).strip()


def _worker_entry(args: tuple) -> WorkerResult:
    worker, *rest = args
    assert _BUDGET is not None, "the pool initializer sets the budget"
    return deep_worker(worker, _BUDGET, *rest)


@dataclass
class DeepResult:
    steps: int
    seconds: float
    workers: list[WorkerResult]

    @property
    def failures(self) -> list[Failure]:
        return [f for w in self.workers for f in w.failures]

    @property
    def line(self) -> str:
        return fuzz_line("pyrevm", self.steps, self.seconds, len(self.failures))


def run_deep(
    steps: int,
    seed: int = 1,
    workers: int = 1,
    full_every: int = 16,
    run_length: tuple[int, int] = (50, 400),
    stop_on_failure: bool = True,
    shrink_budget: float = 120.0,
    decimals: int = 6,
) -> DeepResult:
    """``steps`` steps on pyrevm over ``workers`` processes drawing runs from one shared budget;
    wall-clock rate."""
    workers = max(min(workers, steps), 1)
    jobs = [
        (i, seed, full_every, run_length, stop_on_failure, shrink_budget, decimals) for i in range(workers)
    ]
    ctx = multiprocessing.get_context("fork")
    budget = Budget(steps, ctx)
    start = time.perf_counter()
    if workers == 1:
        results = [deep_worker(0, budget, *jobs[0][1:])]
    else:
        with ctx.Pool(workers, initializer=_init_worker, initargs=(budget,)) as pool:
            results = pool.map(_worker_entry, jobs)
    seconds = time.perf_counter() - start
    return DeepResult(sum(r.steps for r in results), seconds, results)


def format_program(program: Program) -> str:
    """A program as Python source for a regression test."""
    lines = ["["]
    lines += [f"    ({name!r}, {kwargs!r})," for name, kwargs in program]
    lines.append("]")
    return "\n".join(lines)
