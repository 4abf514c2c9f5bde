"""``ape run stress --scenario FILE [--out DIR]``: play a stress scenario on a fresh local suite.

    ape run stress --scenario scenarios/flash_crash.yaml            # writes reports/flash_crash.{json,png}
    ape run stress --scenario scenarios/bad_inputs.yaml --out /tmp/reports

Deploys a fresh suite on Ape's local network (anvil, started and stopped by Ape) or a fork of a
live one (``--network ethereum:mainnet-fork:foundry``: its own mocks, next to the real contracts), plays every
step (``keeper`` steps run the real keeper), checks the solvency identity after each, prints a
progress line per step and a summary table, and writes the JSON report and the PNG chart
(formats: ``docs/scenario-format.md``, guide: ``docs/scenarios.md``). Exit code 0 if every step
did what it expected and the identity held throughout, 1 otherwise (the report is written either
way), 2 for a malformed scenario file (nothing is deployed).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from ape import accounts, chain, project
from ape.cli import network_option
from ape.logging import logger as ape_logger

from backstop.chain.node import NoNewNodeCommand
from backstop.scenario import Scenario, ScenarioError, load_scenario
from backstop.stress import ChainBackend, main


def _load(ctx: click.Context, param: click.Parameter, value: str | None) -> Scenario | None:
    """Parses the scenario while the command line is read, before any chain is started."""
    if value is None:
        return None
    try:
        return load_scenario(value)
    except ScenarioError as err:
        raise click.BadParameter(str(err), ctx=ctx, param=param) from err


@click.command(cls=NoNewNodeCommand, short_help="Play a stress scenario on a fresh local suite")
@network_option()
@click.option(
    "--scenario",
    "scenario",
    required=True,
    callback=_load,
    metavar="FILE",
    help="Scenario YAML (see docs/scenarios.md).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Directory for <name>.json and <name>.png.",
)
def cli(network, scenario: Scenario, out_dir: Path):
    if not network.is_dev:
        raise click.UsageError("the stress runner deploys mocks: run it on a local network or a fork")
    logging.getLogger("backstop.stress.keeper").setLevel(logging.WARNING)
    previous_level = ape_logger.level
    ape_logger.set_level("WARNING")  # no "contract deployed" lines between the progress lines
    try:
        code, _ = main(
            scenario, ChainBackend(project, chain, accounts.test_accounts), out_dir, echo=click.echo
        )
    except Exception as err:  # a deployment or node failure: nothing to report on
        click.echo(f"stress: {scenario.name}: {type(err).__name__}: {err}", err=True)
        code = 1
    finally:
        ape_logger.set_level(previous_level)
    sys.exit(code)
