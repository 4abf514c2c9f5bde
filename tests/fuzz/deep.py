"""The deep fuzz profile: ``python -m tests.fuzz.deep --steps N`` (what ``make fuzz-deep`` runs).

Runs the differential fuzz machine on pyrevm for ``N`` steps with fresh seeded runs of 50-400
steps each, in ``--workers`` processes (default: one per core) drawing from one step budget,
comparing every account's core figures, the system and the markets after every step that changed
anything, and everything (all lens parts and the whole-system sums) every ``--full-every`` steps
and at the end of every run. Prints an outcome summary, any failure (with its run seed, invariant, and a shrunk program to paste into
``tests/fuzz/test_regressions.py``) and finally::

    fuzz: pyrevm <steps> steps, <rate> steps/s, <failures> failures

Exit status 1 if anything failed. The printed program replays a failure directly
(``tests.fuzz.machine.replay``). The workers draw their runs' steps from one shared budget; each
worker's sequence of runs is fixed by ``--seed`` and its index, so ``--seed`` and ``--workers`` of
the campaign that found a failure (with at least its ``--steps``) meet the failing run again.
"""

from __future__ import annotations

import importlib.util
import os

# Before anything hashes: eth-hash's pysha3 backend (safe-pysha3) is several times faster than its
# pycryptodome default; used when installed.
if importlib.util.find_spec("sha3") is not None:
    os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")

import argparse
import sys
from collections import Counter

from tests.fuzz.driver import format_program, run_deep
from tests.fuzz.world import install_fast_struct_hash


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=100_000, help="total steps (default 100000)")
    parser.add_argument("--seed", type=int, default=1, help="campaign seed (default 1)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: cores)")
    parser.add_argument(
        "--full-every", type=int, default=16, help="full comparison every K steps (1: always)"
    )
    parser.add_argument("--run-length", type=int, nargs=2, default=(50, 400), metavar=("MIN", "MAX"))
    parser.add_argument("--keep-going", action="store_true", help="do not stop a worker at its first failure")
    parser.add_argument(
        "--shrink-seconds", type=float, default=120.0, help="time to shrink a failure (0: off)"
    )
    parser.add_argument("--decimals", type=int, default=6, help="collateral token decimals (default 6)")
    parser.add_argument("--quiet", action="store_true", help="only the final line")
    args = parser.parse_args(argv)

    install_fast_struct_hash()
    result = run_deep(
        args.steps,
        seed=args.seed,
        workers=max(args.workers, 1),
        full_every=max(args.full_every, 1),
        run_length=tuple(args.run_length),
        stop_on_failure=not args.keep_going,
        shrink_budget=args.shrink_seconds,
        decimals=args.decimals,
    )
    if not args.quiet:
        outcomes: Counter[str] = Counter()
        for w in result.workers:
            outcomes.update(w.outcomes)
        runs = sum(w.runs for w in result.workers)
        print(
            f"deep: seed {args.seed}, {len(result.workers)} workers, {runs} runs, full check every {args.full_every} steps"
        )
        by_action: dict[str, list[str]] = {}
        for key, count in sorted(outcomes.items()):
            name, outcome = key.split(":", 1)
            by_action.setdefault(name, []).append(f"{outcome} {count}")
        for name, parts in by_action.items():
            print(f"  {name:16s} {', '.join(parts)}")
        for w in result.workers:
            print(
                f"  worker {w.worker}: {w.steps} steps in {w.seconds:.1f} s ({w.steps / max(w.seconds, 1e-9):.0f} steps/s)"
            )
    for f in result.failures:
        print(f"FAILURE worker {f.worker} run seed {f.run_seed} at step {f.step}: {f.message}")
        program = f.shrunk if f.shrunk is not None else f.program
        print(f"  shrunk to {len(program)} steps (from {len(f.program)}):")
        print(format_program(program))
    print(result.line)
    sys.stdout.flush()
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
