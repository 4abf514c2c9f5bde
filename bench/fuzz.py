"""Fuzz throughput: runs each fuzz backend for a short fixed budget and parses the line it prints,

    fuzz: <backend> <steps> steps, <rate> steps/s, <failures> failures

- pyrevm (in-process EVM): ``make fuzz-deep STEPS=<n>`` (or, without that target, what it runs:
  ``python -m tests.fuzz.deep --steps <n>``; one worker process per core);
- anvil (JSON-RPC): the CI-profile fuzz test ``tests/fuzz/test_fuzz_anvil.py`` under ``ape test``
  (its own fixed budget: pinned seed, about 4,500 steps; on Ape's test anvil, which records
  steps for tracebacks).

A backend whose entry point does not exist yet, or that prints no such line, is reported as
``null`` with the reason in ``notes``. The throughput includes each backend's own per-step
checks against the reference model (that is what a fuzz step is); start-up (compilation,
deployment, node start) is excluded by the suites' own rate computation.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(
    r"fuzz:\s*(?P<backend>[\w-]+)\s+(?P<steps>[\d,]+)\s+steps,\s*(?P<rate>[\d.,]+)\s+steps/s,\s*(?P<failures>\d+)\s+failures"
)


def parse(output: str) -> list[dict[str, Any]]:
    """Every ``fuzz:`` line of ``output``."""
    return [
        {
            "backend": m["backend"],
            "steps": int(m["steps"].replace(",", "")),
            "steps_per_s": float(m["rate"].replace(",", "")),
            "failures": int(m["failures"]),
        }
        for m in LINE.finditer(output)
    ]


def _has_make_target(target: str) -> bool:
    makefile = ROOT / "Makefile"
    return (
        makefile.exists() and re.search(rf"^{re.escape(target)}\s*:", makefile.read_text(), re.M) is not None
    )


def _run(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[str, int | None, float]:
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        return proc.stdout + proc.stderr, proc.returncode, time.monotonic() - started
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        out += (err.stderr or b"").decode() if isinstance(err.stderr, bytes) else (err.stderr or "")
        return out, None, time.monotonic() - started


def run(log: Callable[[str], None], *, revm_steps: int = 100_000, timeout: float = 900) -> dict[str, Any]:
    env = dict(os.environ)
    results: dict[str, Any] = {"revm_steps_per_s": None, "anvil_steps_per_s": None}
    notes: dict[str, str] = {}
    detail: dict[str, Any] = {}

    deep = ROOT / "tests" / "fuzz" / "deep.py"
    ci_test = ROOT / "tests" / "fuzz" / "test_fuzz_anvil.py"
    if _has_make_target("fuzz-deep"):
        revm_cmd = ["make", "--no-print-directory", "fuzz-deep", f"STEPS={revm_steps}"]
    else:  # what `make fuzz-deep` runs
        revm_cmd = [sys.executable, "-m", "tests.fuzz.deep", "--steps", str(revm_steps), "--quiet"]
    backends = [
        ("revm", revm_cmd, deep.is_file()),
        (
            "anvil",
            ["ape", "test", str(ci_test.relative_to(ROOT)), "-p", "no:cacheprovider", "-q", "-s"],
            ci_test.is_file(),
        ),
    ]
    for name, cmd, available in backends:
        key = f"{name}_steps_per_s"
        if not available:
            notes[key] = f"skipped: entry point not found ({' '.join(cmd)})"
            log(f"fuzz: {name}: {notes[key]}")
            continue
        log(f"fuzz: running {' '.join(cmd)}")
        output, code, elapsed = _run(cmd, env, timeout)
        lines = [r for r in parse(output) if name in r["backend"] or r["backend"] in name]
        if not lines:
            notes[key] = (
                f"no 'fuzz: {name} …' line in the output (exit code {code}, {elapsed:.0f} s); "
                f"last output: {output.strip()[-300:]!r}"
            )
            log(f"fuzz: {name}: {notes[key]}")
            continue
        total_steps = sum(r["steps"] for r in lines)
        # Several lines (one per fuzz test): the aggregate rate is total steps over total time.
        seconds = sum(r["steps"] / r["steps_per_s"] for r in lines if r["steps_per_s"] > 0)
        results[key] = round(total_steps / seconds, 2) if seconds > 0 else 0.0
        shown = ["python" if c == sys.executable else c for c in cmd]
        detail[name] = {
            "lines": lines,
            "command": " ".join(shown),
            "wall_s": round(elapsed, 1),
            "exit_code": code,
            "failures": sum(r["failures"] for r in lines),
            "processes": (os.cpu_count() or 1) if name == "revm" else 1,
        }
        log(f"fuzz: {name}: {results[key]} steps/s over {total_steps} steps ({elapsed:.0f} s wall)")
    return {"fuzz": results, "fuzz_detail": detail, "notes": notes}
