"""``ape run stress --scenario FILE [--scenario FILE ...] [--backend chain|model] [--out DIR]``.

    ape run stress --scenario scenarios/flash_crash.yaml            # writes reports/flash_crash.{json,png}
    ape run stress --scenario scenarios/flash_crash.yaml --backend model --out /tmp/x
    ape run stress --scenario scenarios/bad_inputs.yaml --out /tmp/reports

``--backend chain`` (the default) deploys a fresh suite on Ape's local network (anvil, started and
stopped by Ape) or a fork of a live one (``--network ethereum:mainnet-fork:foundry``: its own mocks,
next to the real contracts) and plays every step there (``keeper`` steps run the real keeper).
``--backend model`` plays the steps on the in-process reference model (``backstop.model``): no
node is started or connected to, and ``--network`` is refused with it. Either way the runner
checks the solvency identity after each step, prints a progress line per step and a summary
table, and writes the JSON report and the PNG chart (formats: ``docs/scenario-format.md``,
guide: ``docs/scenarios.md``). Several ``--scenario`` play in turn, each on a fresh suite; two
with the same ``name`` are refused (the second report would overwrite the first). Exit code 0 if
every step did what it expected and the identity held throughout, 1 otherwise (the reports are
written either way), 2 for a malformed scenario file or a bad option (nothing is started).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click
from ape import accounts, chain, project
from ape.cli import network_option
from ape.logging import logger as ape_logger
from click.core import ParameterSource

from backstop.chain.node import NoNewNodeCommand
from backstop.scenario import Scenario, ScenarioError, load_scenario
from backstop.stress import ChainBackend, ModelBackend
from backstop.stress.cli import check_distinct_names, main_all


def _refuse(ctx: click.Context, message: str) -> None:
    """One line on stderr and exit 2: a bad scenario or option, nothing started."""
    click.echo(f"stress: {message}", err=True)
    ctx.exit(2)


def _load(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[Scenario]:
    """Parses every scenario while the command line is read, before any chain is started."""
    scenarios = []
    try:
        for path in value:
            scenarios.append(load_scenario(path))
        check_distinct_names(scenarios, ctx.params.get("out_dir") or Path("reports"))
    except ScenarioError as err:
        _refuse(ctx, str(err))
    return scenarios


class StressCommand(NoNewNodeCommand):
    """Connects to the network only for ``--backend chain``: the model backend needs no node."""

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.params.get("backend") != "model":
            return super().invoke(ctx)
        if ctx.get_parameter_source("network") not in (ParameterSource.DEFAULT, None):
            _refuse(ctx, "--network has no meaning with --backend model (the model needs no chain)")
        params = {k: v for k, v in ctx.params.items() if k not in ("network", "provider_settings")}
        return ctx.invoke(self.callback, network=None, **params)


@click.command(cls=StressCommand, short_help="Play a stress scenario on a fresh local suite or the model")
@network_option()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    is_eager=True,
    help="Directory for <name>.json and <name>.png.",
)
@click.option(
    "--scenario",
    "scenarios",
    required=True,
    multiple=True,
    callback=_load,
    metavar="FILE",
    help="Scenario YAML (see docs/scenarios.md); repeat to play several in turn.",
)
@click.option(
    "--backend",
    type=click.Choice(["chain", "model"]),
    default="chain",
    show_default=True,
    is_eager=True,
    help="chain: a fresh suite on the local network; model: the in-process reference model, no node.",
)
def cli(network, out_dir: Path, scenarios: list[Scenario], backend: str):
    if backend == "model":
        code = _play(scenarios, ModelBackend, out_dir)
        sys.exit(code)
    if not network.is_dev:
        raise click.UsageError("the stress runner deploys mocks: run it on a local network or a fork")
    logging.getLogger("backstop.stress.keeper").setLevel(logging.WARNING)
    previous_level = ape_logger.level
    ape_logger.set_level("WARNING")  # no "contract deployed" lines between the progress lines
    try:
        code = _play(scenarios, lambda: ChainBackend(project, chain, accounts.test_accounts), out_dir)
    finally:
        ape_logger.set_level(previous_level)
    sys.exit(code)


def _play(scenarios: list[Scenario], make_backend: Any, out_dir: Path) -> int:
    try:
        return main_all(scenarios, make_backend, out_dir, echo=click.echo)[0]
    except Exception as err:  # a deployment or node failure: nothing to report on
        click.echo(f"stress: {type(err).__name__}: {err}", err=True)
        return 1
