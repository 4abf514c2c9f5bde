"""``make bench``: run every benchmark, write ``bench/results.json``, refresh the table in
``docs/benchmarks.md``.

    python -m bench.run                      # everything (what `make bench` runs)
    python -m bench.run --only gas,social    # some sections; the others keep their last values
    python -m bench.run --traders 200        # a quicker run with smaller N (numbers not comparable)

Run from the repository root inside the venv, with anvil on PATH (``make`` arranges both). Each
section starts its own anvil (see ``bench/node.py``) and connects Ape to it for deployment.
Benchmarks measure, they do not judge: a section that fails is recorded as ``null`` with the
error in ``notes`` and the run still exits 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench import report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
DOC = ROOT / "docs" / "benchmarks.md"
SECTIONS = ("gas", "social", "keeper", "fuzz", "risk")

_t0 = time.monotonic()


def log(message: str) -> None:
    print(f"[bench {time.monotonic() - _t0:7.1f}s] {message}", flush=True)


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return ""


def _contracts_digest() -> str:
    """A hash of every Solidity source: ties the gas numbers to the exact contracts measured."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted((ROOT / "contracts").rglob("*.sol")):
        if ".cache" not in path.parts:
            h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def meta() -> dict[str, Any]:
    from bench.node import ANVIL_FLAGS, anvil_version

    cfg = yaml.safe_load((ROOT / "ape-config.yaml").read_text()) or {}
    solidity = cfg.get("solidity", {})
    versions = {}
    for pkg in ("eth-ape", "web3", "pyrevm"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception:
            versions[pkg] = None
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cores": os.cpu_count(),
        "cpu": _cpu(),
        "load_average_start": round(os.getloadavg()[0], 2),
        "git_commit": _git("rev-parse", "--short=12", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain")),
        "contracts_sha256": _contracts_digest(),
        "anvil": anvil_version(),
        "anvil_flags": " ".join([*ANVIL_FLAGS, os.environ.get("BENCH_ANVIL_FLAGS", "")]).strip(),
        "solc": str(solidity.get("version", "?")),
        "optimizer": f"{'on' if solidity.get('optimize', True) else 'off'}, runs {solidity.get('optimization_runs', 200)}, evm {solidity.get('evm_version', '?')}",
        "python": platform.python_version(),
        "packages": versions,
    }


def _section(
    name: str, fn: Callable[[], dict[str, Any]], results: dict[str, Any], keys: tuple[str, ...]
) -> None:
    """Runs one section; merges what it returns; on failure sets its keys to null with a note."""
    started = time.monotonic()
    try:
        out = fn()
    except Exception as err:  # a benchmark never fails the build: record and go on
        traceback.print_exc()
        log(f"{name}: FAILED ({type(err).__name__}: {err}); its values are null")
        for dotted in keys:
            section, key = dotted.split(".", 1)
            results.setdefault(section, {})[key] = None
            results.setdefault("notes", {})[dotted] = f"error: {type(err).__name__}: {str(err)[:300]}"
        return
    for section, value in out.items():
        if section == "notes":
            for k, v in value.items():
                prefix = "" if "." in k or k in ("keeper",) else f"{name if name != 'social' else 'gas'}."
                results.setdefault("notes", {})[prefix + k] = v
        elif isinstance(value, dict) and isinstance(results.get(section), dict):
            results[section].update(value)
        else:
            results[section] = value
    results.setdefault("meta", {}).setdefault("section_s", {})[name] = round(time.monotonic() - started, 1)
    log(f"{name}: done in {time.monotonic() - started:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument(
        "--traders", type=int, default=1000, help="N for the largest socialization and the keeper"
    )
    parser.add_argument(
        "--revm-steps",
        type=int,
        default=100_000,
        help="fuzz budget of the pyrevm backend (the deep profile's default)",
    )
    parser.add_argument(
        "--render-only", action="store_true", help="only rewrite the doc's tables from the results file"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")

    os.chdir(ROOT)
    if args.render_only:
        import json

        results = json.loads(args.out.read_text())
        results["targets"] = report.targets(results)
        report.write_doc(args.doc, report.markdown(results))
        log(f"rewrote the tables in {args.doc} from {args.out}")
        return 0
    # SIGTERM unwinds like Ctrl-C, so every anvil this run started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict[str, Any] = {}
    if set(only) != set(SECTIONS) and args.out.exists():
        import json

        results = json.loads(args.out.read_text())  # keep the sections not re-run
    previous = results.get("meta", {})
    results["meta"] = meta()
    if previous:  # a partial run: keep the other sections' timings
        results["meta"]["section_s"] = dict(previous.get("section_s", {}))
    for section in ("gas", "keeper", "fuzz", "risk", "notes"):
        results.setdefault(section, {})
    log(
        f"start: sections {', '.join(only)}; {results['meta']['cores']} cores, load {results['meta']['load_average_start']}"
    )

    from ape import accounts, project
    from ape import chain as ape_chain

    from bench import fuzz, gas, keeper_bench, risk_bench, social
    from bench.chain import Chain
    from bench.node import anvil, ape_on

    deployer = accounts.test_accounts[0]
    log("compiling (if needed)")
    project.load_contracts()

    def on_anvil(bench_fn, *, steps_tracing: bool = False):
        def _go():
            with anvil(steps_tracing=steps_tracing) as uri, ape_on(uri):
                return bench_fn(project, ape_chain, deployer, Chain(uri), log)

        return _go

    sizes = tuple(sorted({10, 100, args.traders}))
    gas_keys = tuple(k for k in report.REQUIRED if k.startswith("gas.") and "socialize" not in k)
    if "gas" in only:
        log("gas: every operation, on an anvil with step tracing (for the storage breakdown)")
        _section("gas", on_anvil(gas.run, steps_tracing=True), results, gas_keys)
    if "social" in only:
        log(f"social: socializing liquidation with N = {', '.join(map(str, sizes))} opposite-side traders")
        _section(
            "social",
            on_anvil(lambda *a: social.run(*a, sizes=sizes)),
            results,
            tuple(f"gas.socialize_n{n}" for n in (10, 100, 1000)),
        )
    if "keeper" in only:
        log(f"keeper: {args.traders} accounts, scan and liquidate-all")
        _section(
            "keeper",
            on_anvil(lambda *a: keeper_bench.run(*a, n=args.traders)),
            results,
            ("keeper.scan_1000_s", "keeper.liquidate_all_1000_s"),
        )
    if "fuzz" in only:
        _section(
            "fuzz",
            lambda: fuzz.run(log, revm_steps=args.revm_steps),
            results,
            ("fuzz.revm_steps_per_s", "fuzz.anvil_steps_per_s"),
        )

    if "risk" in only:
        _section(
            "risk",
            lambda: risk_bench.run(log),
            results,
            ("risk.fast_account_steps_per_s", "risk.fast_10000x1000x288_s", "risk.exact_paths_per_s"),
        )

    results["meta"]["runtime_s"] = round(time.monotonic() - _t0, 1)
    results["meta"]["load_average_end"] = round(os.getloadavg()[0], 2)
    results["meta"]["command"] = (
        "make bench"
        if set(only) == set(SECTIONS)
        else "python -m bench.run " + " ".join(argv or sys.argv[1:])
    )
    if args.traders != 1000:
        results["meta"]["warning"] = (
            f"run with --traders {args.traders}: the *_1000 keys measure N = {args.traders}"
        )
    for dotted in report.REQUIRED:
        section, key = dotted.split(".", 1)
        results.setdefault(section, {}).setdefault(key, None)
    results["targets"] = report.targets(results)
    order = [
        "meta",
        "gas",
        "keeper",
        "fuzz",
        "risk",
        "targets",
        "socialization",
        "liquidations",
        "notes",
        "fuzz_detail",
        "breakdown",
    ]
    results = {k: results[k] for k in order if k in results} | {
        k: v for k, v in results.items() if k not in order
    }
    report.write_json(args.out, results)
    report.write_doc(args.doc, report.markdown(results))
    log(f"wrote {args.out} and the table in {args.doc}")
    for t in results["targets"]:
        log(f"target {t['name']}: {t['value']} ({t['target']}) met={t['met']}")
    missing = [k for k in report.REQUIRED if report.get(results, k) is None]
    if missing:
        log(f"null (see notes): {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
