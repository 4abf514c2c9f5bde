"""Proof that the fuzz suite can fail: deliberate bugs, each of which the CI fuzz profile must catch.

For every mutant: copy ``contracts/`` and the Ape config into a temporary project (``node_modules``
symlinked), apply one textual patch (it must match exactly once, or the tool stops: a stale patch
proves nothing), compile there with ``ape compile`` (solc 0.8.28 through ``tools/solc``), and run
the CI fuzz profile — the same machine, seed and budget as ``tests/fuzz`` — on pyrevm against the
mutant's bytecode. Prints ``mutant | caught | invariant | steps`` and exits 1 if any mutant
survives (or if the unmutated contracts fail).

Usage: ``python tools/mutation.py [--only NAME ...] [--jobs N] [--keep]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Mutant:
    name: str
    description: str
    path: str  # relative to the repository
    old: str
    new: str


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "socialization-index-rounded-down",
        "ΔL = R·1e18 / OI rounded down instead of up: winners are charged less than the loss",
        "contracts/libraries/SocializedLoss.sol",
        "return (loss * FixedPointMath.WAD).divUp(openInterest);",
        "return loss * FixedPointMath.WAD / openInterest;",
    ),
    Mutant(
        "im-check-skipped",
        "no margin check after a fill: trades may leave a party below its initial margin",
        "contracts/MarginEngine.sol",
        "        _checkMargin(f.maker, makerMargin, makerBuffer, prices);\n        _checkMargin(f.taker, takerMargin, takerBuffer, prices);\n",
        "",
    ),
    Mutant(
        "insurance-fee-from-negative-equity",
        "the liquidation fee is not capped by the equity left after the keeper reward",
        "contracts/libraries/LiquidationMath.sol",
        "s.feeTokens = FixedPointMath.min(feeRaw.toInt256(), left).toUint256().toTokensDown(scale);",
        "s.feeTokens = feeRaw.toTokensDown(scale);",
    ),
    Mutant(
        "cooldown-ignored",
        "insurance-fund exits do not wait for the cooldown",
        "contracts/InsuranceFund.sol",
        "        if (block.timestamp < availableAt) revert CooldownNotElapsed(availableAt, block.timestamp);\n",
        "",
    ),
    Mutant(
        "open-notional-not-reduced-on-partial-close",
        "a partial close realizes PnL but leaves the cost basis unchanged",
        "contracts/libraries/PositionMath.sol",
        "newNotional = n - closedBasis;",
        "newNotional = n;",
    ),
    Mutant(
        "keeper-reward-not-paid",
        "the liquidator never receives the keeper reward taken from the account",
        "contracts/MarginEngine.sol",
        "int256 liquidatorDelta = _handOver(account, msg.sender, closing) + s.keeperReward.toInt256();",
        "int256 liquidatorDelta = _handOver(account, msg.sender, closing);",
    ),
    Mutant(
        "exit-pays-current-value",
        "a fund exit pays the shares' value now instead of min(value at request, value now)",
        "contracts/InsuranceFund.sol",
        "assets = Math.min(_convertToAssets(shares, Math.Rounding.Floor), owed);",
        "assets = _convertToAssets(shares, Math.Rounding.Floor);",
    ),
    Mutant(
        "escrow-skipped",
        "requestRedeem leaves the requested shares in the owner's wallet instead of the fund's custody",
        "contracts/InsuranceFund.sol",
        "        _transfer(owner, address(this), shares);\n",
        "",
    ),
    Mutant(
        "loss-charged-to-losing-side",
        "socialized loss is charged to the bankrupt account's own side instead of the winners",
        "contracts/libraries/SocializedLoss.sol",
        "side = size > 0 ? SHORT : LONG;",
        "side = size > 0 ? LONG : SHORT;",
    ),
    Mutant(
        "timelock-skipped",
        "a scheduled market change can be executed at once, before PARAMS_DELAY has passed",
        "contracts/libraries/UpdateTimelock.sol",
        "        if (block.timestamp < eta) revert IMarginEngine.UpdateNotReady(target, eta, block.timestamp);\n",
        "",
    ),
    Mutant(
        "keeper-reward-cap-ignored",
        "the keeper reward is Σ N·ratio with no absolute cap",
        "contracts/libraries/LiquidationMath.sol",
        "        if (s.keeperReward > rewardCap) s.keeperReward = rewardCap;\n",
        "",
    ),
    Mutant(
        "partial-step-bankrupt-check-skipped",
        "liquidatePosition lets a step leave the account with negative equity after its reward",
        "contracts/MarginEngine.sol",
        "        if (equityAfter < 0) revert PartialLiquidationBankrupt(account, equityAfter);\n",
        "",
    ),
    Mutant(
        "fund-credit-not-counted",
        "the fund's totalAssets leaves out its fee credit in the vault: fees reach the share price only at a sweep",
        "contracts/InsuranceFund.sol",
        "return IERC20(asset()).balanceOf(address(this)) + _credit();",
        "return IERC20(asset()).balanceOf(address(this));",
    ),
    Mutant(
        "batch-final-imr-check-skipped",
        "liquidateMany never checks the liquidator's initial margin after the batch",
        "contracts/MarginEngine.sol",
        "        if (liquidated != 0) _checkMargin(msg.sender, liquidatorMargin, NOT_REDUCING, prices);\n",
        "",
    ),
)


def make_project(mutant: Mutant | None, workdir: Path) -> Path:
    """A compilable copy of the project with ``mutant`` applied (None: unmutated)."""
    project = workdir / (mutant.name if mutant else "original")
    shutil.copytree(ROOT / "contracts", project / "contracts", ignore=shutil.ignore_patterns(".cache"))
    shutil.copy(ROOT / "ape-config.yaml", project / "ape-config.yaml")
    shutil.copy(ROOT / "package.json", project / "package.json")
    (project / "node_modules").symlink_to(ROOT / "node_modules")
    if mutant is not None:
        target = project / mutant.path
        text = target.read_text()
        count = text.count(mutant.old)
        if count != 1:
            raise SystemExit(
                f"mutation: patch {mutant.name} matches {count} times in {mutant.path} (expected 1)"
            )
        target.write_text(text.replace(mutant.old, mutant.new))
    return project


def compile_project(project: Path) -> Path:
    env = os.environ.copy()
    env["SOLCX_BINARY_PATH"] = str(ROOT / "tools" / "solc")
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{ROOT / 'node_modules' / '.bin'}:{env.get('PATH', '')}"
    ape = shutil.which("ape", path=env["PATH"]) or "ape"
    proc = subprocess.run([ape, "compile"], cwd=project, env=env, capture_output=True, text=True)
    from backstop.chain.abi import compiled_manifest_path

    manifest = compiled_manifest_path(project)
    if proc.returncode != 0 or not manifest.exists():
        raise SystemExit(
            f"mutation: compiling {project.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return manifest


@dataclass
class Outcome:
    name: str
    caught: bool
    invariant: str
    steps: int
    seconds: float
    program: list | None = None  # the failing example's steps
    regression: str = ""  # whether the regression program of this mutant fails on it


def run_regression(name: str, manifest: Path) -> str:
    """Replays the named regression program of ``name`` (tests/fuzz/test_regressions.py) against
    the mutant: ``"yes (INV-…)"`` if it fails there, as a regression test must."""
    from backstop.chain.abi import Artifacts
    from backstop.chain.evm import PyRevmBackend
    from tests.fuzz.driver import run_program
    from tests.fuzz.invariants import InvariantViolation
    from tests.fuzz.test_regressions import REGRESSIONS
    from tests.fuzz.world import World

    programs = [r for r in REGRESSIONS.values() if r.mutant == name]
    if not programs:
        return "-"
    world = World(PyRevmBackend(), Artifacts.load(manifest))
    results = []
    for r in programs:
        err = run_program(world, r.program)
        inv = err.inv if isinstance(err, InvariantViolation) else type(err).__name__ if err else ""
        results.append(f"yes ({inv})" if err else "NO")
    return ", ".join(results)


def run_profile(name: str, manifest: Path, log_dir: Path) -> Outcome:
    """The CI profile (pinned seed and budget, no shrinking) on pyrevm against ``manifest``."""
    from backstop.chain.abi import Artifacts
    from backstop.chain.evm import PyRevmBackend
    from tests.fuzz.driver import run_ci
    from tests.fuzz.invariants import InvariantViolation
    from tests.fuzz.world import World

    start = time.perf_counter()
    buffer = io.StringIO()
    try:
        world = World(PyRevmBackend(), Artifacts.load(manifest))
    except Exception as err:  # a mutant that breaks deployment is caught by it
        (log_dir / f"{name}.log").write_text(repr(err))
        return Outcome(name, True, f"deployment: {type(err).__name__}", 0, time.perf_counter() - start)
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        result = run_ci(world, shrink=False)
    (log_dir / f"{name}.log").write_text(f"{buffer.getvalue()}\n{result.line}\n{result.error!r}\n")
    invariant = ""
    program = getattr(result.error, "fuzz_program", None)
    if result.error is not None:
        if isinstance(result.error, InvariantViolation):
            invariant = result.error.inv
        else:
            found = re.search(r"INV-[A-Z-]+", str(result.error))
            invariant = found.group(0) if found else type(result.error).__name__
    return Outcome(
        name, result.error is not None, invariant, result.steps, time.perf_counter() - start, program
    )


def print_shrunk(outcome: Outcome, manifest: Path) -> None:
    from backstop.chain.abi import Artifacts
    from backstop.chain.evm import PyRevmBackend
    from tests.fuzz.driver import format_program, shrink
    from tests.fuzz.world import World

    world = World(PyRevmBackend(), Artifacts.load(manifest))
    program = shrink(world, outcome.program, outcome.invariant, budget=180.0)
    print(f"mutation: {outcome.name} fails {outcome.invariant} with {len(program)} steps:")
    print(format_program(program), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", help="run only these mutants")
    parser.add_argument("--jobs", type=int, default=2, help="parallel compilations (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects and logs")
    parser.add_argument(
        "--shrink", action="store_true", help="shrink each caught mutant's failing example and print it"
    )
    args = parser.parse_args(argv)
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    if args.only and len(mutants) != len(args.only):
        raise SystemExit(f"mutation: unknown mutant among {args.only}")

    workdir = Path(tempfile.mkdtemp(prefix="backstop-mutation-"))
    log_dir = workdir / "logs"
    log_dir.mkdir()
    try:
        projects = [make_project(m, workdir) for m in mutants]  # every patch must apply first
        print(f"mutation: compiling {len(projects)} mutants in {workdir} ...", flush=True)
        with ThreadPoolExecutor(max(args.jobs, 1)) as pool:
            manifests = list(pool.map(compile_project, projects))

        from backstop.chain.abi import compiled_manifest_path

        baseline = run_profile("original", compiled_manifest_path(ROOT), log_dir)
        outcomes = [
            run_profile(m.name, manifest, log_dir) for m, manifest in zip(mutants, manifests, strict=True)
        ]
        for o, manifest in zip(outcomes, manifests, strict=True):
            o.regression = run_regression(o.name, manifest)
            if args.shrink and o.program:
                print_shrunk(o, manifest)

        width = max(len(o.name) for o in [baseline, *outcomes])
        print(f"{'mutant':{width}s} | caught | invariant               | steps | regression test fails")
        print(f"{'-' * width}-|--------|-------------------------|-------|----------------------")
        for o in [baseline, *outcomes]:
            caught = "yes" if o.caught else "no"
            print(
                f"{o.name:{width}s} | {caught:6s} | {o.invariant or '-':23s} | {o.steps:5d} | {o.regression or '-'}"
            )
        survivors = [o.name for o in outcomes if not o.caught]
        print(
            f"mutation: {len(outcomes) - len(survivors)}/{len(outcomes)} mutants caught"
            + (f"; survived: {', '.join(survivors)}" if survivors else "")
            + ("; the unmutated contracts FAILED the profile" if baseline.caught else "")
        )
        if args.keep:
            print(f"mutation: projects and logs kept in {workdir}")
        return 1 if survivors or baseline.caught else 0
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
