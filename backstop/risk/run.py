"""Running a risk config's paths (docs/risk-lab.md §"Running on many cores or machines").

Paths are cut into chunks of :data:`CHUNK` paths. Chunk ``k`` always draws a whole chunk's
price paths from ``SeedSequence(seed, spawn_key=(k,))`` and keeps the first ``count`` of them
(:func:`chunk_prices`), so path ``i`` depends on nothing but the run seed and ``i``: a longer run
extends a shorter one's sample, and the results are bit-identical whether the chunks run in this
process, on a local Dask cluster (``workers=2``) or on a remote one
(``scheduler="tcp://host:8786"``); they are put back in path order before anything is computed
from them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backstop.risk.exact import PathResult, run_path

#: Paths per chunk (the unit of work, of seeding and of progress).
CHUNK = 25


def chunk_seed(seed: int, index: int) -> np.random.SeedSequence:
    """The seed of chunk ``index`` of a run seeded ``seed``."""
    return np.random.SeedSequence(seed, spawn_key=(index,))


def chunk_prices(config: Any, seed: int, index: int, count: int) -> np.ndarray:
    """The first ``count`` (≤ :data:`CHUNK`) price paths of chunk ``index``: paths
    ``index·CHUNK`` … ``index·CHUNK + count − 1`` of any run seeded ``seed``."""
    from backstop.risk.paths import price_paths

    if not 1 <= count <= CHUNK:
        raise ValueError(f"count must be in [1, {CHUNK}], got {count}")
    return price_paths(config, chunk_seed(seed, index), CHUNK)[:count]


def chunks(paths: int, size: int = CHUNK) -> list[tuple[int, int]]:
    """``(index, count)`` of each chunk of a run of ``paths`` paths."""
    if paths < 1:
        raise ValueError(f"paths must be ≥ 1, got {paths}")
    return [(k, min(size, paths - k * size)) for k in range((paths + size - 1) // size)]


#: The engines (docs/risk-lab.md §"Engines"); the first is the default.
ENGINES = ("fast", "exact")


def run_chunk(config: Any, seed: int, index: int, count: int, engine: str = "fast") -> list[PathResult]:
    """Chunk ``index``'s ``count`` paths on ``engine`` (runs on a worker: imports inside)."""
    from backstop.risk.paths import to_ticks, to_wad

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    lab = config.lab()
    paths = chunk_prices(config, seed, index, count)
    if engine == "fast":
        from backstop.risk.fast import run_fast

        return run_fast(lab, to_ticks(paths))
    return [run_path(lab, path) for path in to_wad(paths)]


@dataclass
class RunOutput:
    """Every path's result, in path order, and how the run went."""

    results: list[PathResult]
    seconds: float
    workers: int
    where: str  # "this process", "a local cluster of 2 workers", "tcp://..."


def run_paths(
    config: Any,
    paths: int,
    seed: int,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int], None] | None = None,
    engine: str = "fast",
) -> RunOutput:
    """Runs ``paths`` paths of ``config`` on ``engine`` (see the module docstring);
    ``progress(n)`` after each chunk of ``n`` paths."""
    [output] = run_many(
        [config], paths, seed, workers=workers, scheduler=scheduler, progress=progress, engine=engine
    )
    return output


def run_many(
    configs: Sequence[Any],
    paths: int,
    seed: int,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int], None] | None = None,
    engine: str = "fast",
) -> list[RunOutput]:
    """:func:`run_paths` for each of ``configs`` (a sweep's cells), with the same seed, on one
    pool of workers: every config's chunks are submitted at once. Each output's ``seconds`` is
    the whole run's."""
    plan = chunks(paths)
    started = time.monotonic()
    done: dict[tuple[int, int], list[PathResult]] = {}
    if scheduler is None and workers == 1:
        for c, config in enumerate(configs):
            for index, count in plan:
                done[c, index] = run_chunk(config, seed, index, count, engine)
                if progress:
                    progress(count)
        where = "this process"
    else:
        from dask.distributed import Client, LocalCluster, as_completed

        cluster = None
        if scheduler is None:
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = Client(cluster)
            where = f"a local Dask cluster of {workers} workers"
        else:
            client = Client(scheduler, timeout="10s")
            workers = len(client.scheduler_info().get("workers", {}))
            where = f"the Dask cluster at {scheduler} ({workers} workers)"
        try:
            futures = {
                client.submit(run_chunk, config, seed, index, count, engine, pure=False): (c, index, count)
                for c, config in enumerate(configs)
                for index, count in plan
            }
            for future in as_completed(futures):
                c, index, count = futures[future]
                done[c, index] = future.result()
                if progress:
                    progress(count)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    seconds = time.monotonic() - started
    return [
        RunOutput([r for index, _ in plan for r in done[c, index]], seconds, workers, where)
        for c in range(len(configs))
    ]
