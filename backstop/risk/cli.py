"""``backstop risk run CONFIG`` (also ``ape run risk run CONFIG``): docs/risk-lab.md §"Running"."""

from __future__ import annotations

import sys
from pathlib import Path

import click

DEFAULT_OUT = Path("reports") / "risk"


@click.group(help="The risk lab: Monte Carlo stress of the waterfall (docs/risk-lab.md).")
def risk() -> None:
    pass


def _fail(message: str) -> None:
    """Every problem as ``risk: <line>`` on stderr, exit status 2, no traceback."""
    for line in message.splitlines():
        click.echo(f"risk: {line}", err=True)
    sys.exit(2)


def _common(command):
    """The options ``run`` and ``sweep`` share."""
    options = [
        click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path)),
        click.option("--paths", type=int, default=None, help="Paths to simulate [the config's `paths`]."),
        click.option("--seed", type=int, default=None, help="Run seed [the config's `seed`]."),
        click.option(
            "--workers",
            type=int,
            default=1,
            show_default=True,
            help="Processes on this machine (a local Dask cluster when > 1).",
        ),
        click.option(
            "--scheduler",
            default=None,
            help="A Dask scheduler's address (tcp://host:8786): run the chunks on its workers.",
        ),
        click.option(
            "--out",
            "out_dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=DEFAULT_OUT,
            show_default=True,
            help="Where the JSON report and the charts go.",
        ),
        click.option(
            "--engine",
            type=click.Choice(["fast", "exact"]),
            default="fast",
            show_default=True,
            help="fast: numpy screens every account and the reference model plays each pass that "
            "may liquidate; exact: the reference model plays every step.",
        ),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _check_run(paths: int, workers: int, scheduler: str | None) -> None:
    if paths < 1:
        _fail(f"--paths: must be ≥ 1, got {paths}")
    if workers < 1:
        _fail(f"--workers: must be ≥ 1, got {workers}")
    if scheduler is not None and workers != 1:
        _fail("--workers and --scheduler exclude each other (the cluster's workers do the work)")


@risk.command("run")
@_common
@click.option(
    "--export-scenarios",
    "export_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the first --export paths as stress scenarios here (replay: ape run stress --scenario FILE).",
)
@click.option(
    "--export", "export_count", type=int, default=3, show_default=True, help="How many paths to export."
)
def run_command(
    config_path: Path,
    paths: int | None,
    seed: int | None,
    workers: int,
    scheduler: str | None,
    out_dir: Path,
    export_dir: Path | None,
    export_count: int,
    engine: str,
    quiet: bool,
) -> None:
    """Simulate CONFIG's paths and write DIR/<name>.json and its charts."""
    from backstop.risk.config import RiskConfigError, load_risk_config
    from backstop.risk.export import export_paths, per_path_record
    from backstop.risk.report import report, write
    from backstop.risk.run import run_paths
    from backstop.risk.shock import shock_chart, shock_curve

    try:
        config = load_risk_config(config_path)
    except RiskConfigError as err:
        _fail(str(err))
    n = config.paths if paths is None else paths
    run_seed = config.seed if seed is None else seed
    _check_run(n, workers, scheduler)
    if export_dir is not None and not 1 <= export_count <= n:
        _fail(f"--export: must be between 1 and the {n:,} paths, got {export_count}")
    lab = config.lab()
    click.echo(
        f"risk: {lab.name}: {n:,} paths × {lab.accounts:,} accounts × {lab.steps:,} steps "
        f"({lab.steps * lab.step_seconds / 3600:g} h), seed {run_seed}, {engine} engine",
        err=True,
    )
    progress, advance = _progress(n, quiet)
    with progress:
        output = run_paths(
            config, n, run_seed, workers=workers, scheduler=scheduler, progress=advance, engine=engine
        )
    body = report(
        lab,
        output.results,
        seed=run_seed,
        engine=engine,
        config_path=str(config_path),
        seconds=output.seconds,
        where=output.where,
    )
    points = shock_curve(lab)
    body["shock_curve"] = [
        {
            "move_pct": p.move_pct,
            "bad_debt": str(p.bad_debt),
            "covered": str(p.covered),
            "socialized": str(p.socialized),
            "liquidations": p.liquidations,
        }
        for p in points
    ]
    if export_dir is not None:
        exported = export_paths(config, lab, run_seed, export_count, export_dir)
        body["per_path"] = [
            {"path": i, "scenario": str(f), **per_path_record(r)}
            for i, (f, r) in enumerate(zip(exported, output.results, strict=False))
        ]
    files = write(out_dir, lab.name, body, output.results, lab)
    files.append(shock_chart(out_dir / f"{lab.name}-shock.png", lab.name, points))
    m, p = body["metrics"], body["probabilities"]
    click.echo(
        f"risk: {n:,} paths in {output.seconds:.1f} s on {output.where} ({body['paths_per_s']:,.1f} paths/s)\n"
        f"  bad debt: p50 {m['bad_debt']['p50']:,.2f}  p99 {m['bad_debt']['p99']:,.2f}  ES99 {m['bad_debt']['es99']:,.2f}\n"
        f"  socialized: p99 {m['socialized']['p99']:,.2f}  ES99 {m['socialized']['es99']:,.2f}; "
        f"P(socialization) {p['socialization']:.2%}, P(fund exhausted) {p['fund_exhausted']:.2%}\n"
        + "\n".join(f"  wrote {f}" for f in files)
    )


@risk.command("sweep")
@_common
@click.option(
    "--param",
    "params",
    multiple=True,
    required=True,
    help="KEY=LO:HI:N or KEY=V1,V2,...: a dotted config key and its values (once or twice).",
)
def sweep_command(
    config_path: Path,
    paths: int | None,
    seed: int | None,
    workers: int,
    scheduler: str | None,
    out_dir: Path,
    engine: str,
    quiet: bool,
    params: tuple[str, ...],
) -> None:
    """Run CONFIG over a grid of one or two parameters: DIR/<name>-sweep.json and a heatmap of
    P(socialization)."""
    from backstop.risk.config import RiskConfigError
    from backstop.risk.report import report
    from backstop.risk.run import run_many
    from backstop.risk.sweep import grid, parse_param, sweep_body, write_sweep

    try:
        swept = [parse_param(p) for p in params]
        cells = grid(config_path, swept)
    except RiskConfigError as err:
        _fail(str(err))
    base = cells[0].config
    n = base.paths if paths is None else paths
    run_seed = base.seed if seed is None else seed
    _check_run(n, workers, scheduler)
    shape = " × ".join(f"{len(p.values)} {p.key}" for p in swept)
    click.echo(
        f"risk: {base.name}: sweep of {shape}: {len(cells)} cells × {n:,} paths, seed {run_seed}, {engine} engine",
        err=True,
    )
    progress, advance = _progress(n * len(cells), quiet)
    with progress:
        outputs = run_many(
            [c.config for c in cells],
            n,
            run_seed,
            workers=workers,
            scheduler=scheduler,
            progress=advance,
            engine=engine,
        )
    reports = [
        report(
            c.config.lab(),
            o.results,
            seed=run_seed,
            engine=engine,
            config_path=str(config_path),
            seconds=o.seconds,
            where=o.where,
        )
        for c, o in zip(cells, outputs, strict=True)
    ]
    body = sweep_body(swept, cells, reports, config_path=str(config_path), seconds=outputs[0].seconds)
    files = write_sweep(out_dir, body)
    click.echo(
        f"risk: {len(cells)} cells × {n:,} paths in {outputs[0].seconds:.1f} s on {outputs[0].where}\n"
        + "\n".join(f"  wrote {f}" for f in files)
    )


def _progress(total: int, quiet: bool):
    """A rich progress bar on stderr (paths done, paths/s, ETA), or a silent stand-in."""
    import contextlib

    if quiet:
        return contextlib.nullcontext(), None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:  # paths per second so far
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:,.1f} paths/s")

    progress = Progress(
        TextColumn("paths"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        Rate(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    task = progress.add_task("paths", total=total)
    return progress, lambda n: progress.advance(task, n)
