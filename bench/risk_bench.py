"""Risk lab throughput (docs/risk-lab.md §"Engines"), no chain:

- ``risk.fast_10000x1000x288_s``: 10,000 paths of ``risk/calm_day.yaml`` (1,000 accounts, 288
  five-minute steps: a day) on the fast engine with ``--workers`` = the machine's cores (a local
  Dask cluster; its start-up included), and from it ``risk.fast_account_steps_per_s`` =
  paths × accounts × steps / seconds (goal ≥ 5,000,000 on 2 cores);
- ``risk.fast_example_paths_per_s``: 1,000 paths of ``risk/eth_flash_crash.yaml`` (200 accounts,
  a 30 % ETH gap that liquidates on every path) on the fast engine, same workers;
- ``risk.exact_paths_per_s``: paths of the same example on the exact engine, one process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CALM = ROOT / "risk" / "calm_day.yaml"
EXAMPLE = ROOT / "risk" / "eth_flash_crash.yaml"


def run(log: Callable[[str], None], paths: int = 10_000, exact_paths: int = 8) -> dict[str, Any]:
    from backstop.risk.config import load_risk_config
    from backstop.risk.run import run_paths

    workers = os.cpu_count() or 1
    calm = load_risk_config(CALM)
    lab = calm.lab()
    log(
        f"risk: fast engine, {paths:,} paths × {lab.accounts:,} accounts × {lab.steps} steps, {workers} workers"
    )
    load = os.getloadavg()[0]
    started = time.monotonic()
    out = run_paths(calm, paths, 0, workers=workers)
    seconds = time.monotonic() - started
    account_steps = paths * lab.accounts * lab.steps
    liquidations = sum(r.liquidations for r in out.results)

    example = load_risk_config(EXAMPLE)
    log(f"risk: fast engine, 1,000 paths of {example.name}")
    started = time.monotonic()
    fast_example = run_paths(example, 1000, 0, workers=workers)
    fast_example_s = time.monotonic() - started
    log(f"risk: exact engine, {exact_paths} paths of {example.name}, one process")
    started = time.monotonic()
    exact = run_paths(example, exact_paths, 0, engine="exact")
    exact_s = time.monotonic() - started
    # The same paths on both engines give the same numbers (tests/unit/risk/test_fast.py).
    same = exact.results == fast_example.results[:exact_paths]
    return {
        "risk": {
            "fast_account_steps_per_s": round(account_steps / seconds),
            "fast_10000x1000x288_s" if paths == 10_000 else f"fast_{paths}x1000x288_s": round(seconds, 1),
            "fast_example_paths_per_s": round(1000 / fast_example_s, 1),
            "exact_paths_per_s": round(exact_paths / exact_s, 3),
        },
        "notes": {
            "risk.fast_account_steps_per_s": (
                f"{paths:,} paths of risk/calm_day.yaml on {workers} workers (a local Dask cluster, start-up "
                f"included), load {load:.2f} at start; {liquidations:,} liquidations in all "
                f"({liquidations / paths:.1f} per path), each played on the reference model"
            ),
            "risk.exact_paths_per_s": (
                f"{exact_paths} paths of risk/eth_flash_crash.yaml in one process; the fast engine's first "
                f"{exact_paths} paths {'equal' if same else 'DIFFER FROM'} them"
            ),
        },
    }
