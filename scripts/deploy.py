"""``ape run deploy``: deploy and wire a Backstop suite from a markets config.

    ape run deploy                                   # local anvil, mock token and feeds
    ape run deploy --network ethereum:sepolia:node --account deployer --config config/sepolia.yaml
    ape run deploy --plan                            # how the config differs from the chain; sends nothing
    ape run deploy --apply                           # schedule those changes (timelock); execute the due ones

The config is read and checked (schema and the contracts' bounds, docs/deploy.md) while the
options are parsed, before any node is connected: a bad config prints ``deploy: <message>`` and
exits 2, having sent nothing. Re-running is idempotent (the manifest's live suite is reused;
markets added to the config are listed; a dropped market is refused); every run ends by
re-reading every address and parameter from chain, fails on any mismatch (exit 1), and only then
writes ``deployments/<chain-id>.json``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from ape import accounts, chain, project
from ape.cli import account_option, network_option

from backstop.chain.manifest import DeploymentMismatch, deploy_or_reuse, manifest_path, plan
from backstop.chain.node import NoNewNodeCommand
from backstop.config import ConfigError, SuiteConfig, load_config

ROOT = Path(__file__).resolve().parent.parent


def _load(ctx: click.Context, param: click.Parameter, path: Path) -> SuiteConfig:
    """The ``--config`` callback: runs while the options are parsed, before Ape connects."""
    try:
        return load_config(path)
    except ConfigError as err:
        click.echo(f"deploy: {err}", err=True)
        ctx.exit(2)


@click.command(cls=NoNewNodeCommand, short_help="Deploy and wire Backstop")
@network_option()
@account_option(prompt=False)
@click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=ROOT / "config" / "local.yaml",
    show_default=True,
    callback=_load,
    help="Markets config (YAML, docs/deploy.md).",
)
@click.option(
    "--manifest",
    "manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Deploy manifest [default: deployments/<chain-id>.json; deployments/<chain-id>-fork.json on a fork].",
)
@click.option(
    "--plan",
    "show_plan",
    is_flag=True,
    help="Print how the config differs from the chain, in human units, and what --apply would do; send nothing.",
)
@click.option(
    "--apply",
    "apply",
    is_flag=True,
    help="Schedule changed market parameters and sequencer feed through the engine's timelock; execute those due.",
)
def cli(network, account, config: SuiteConfig, manifest: Path | None, show_plan: bool, apply: bool):
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logging.getLogger("backstop").addHandler(handler)
    logging.getLogger("backstop").setLevel(logging.INFO)
    # A fork is a throwaway chain like the local one: test accounts and mocks are allowed there,
    # and its manifest is kept apart from the live chain's (it reports the same chain id).
    local = network.is_dev
    if show_plan and apply:
        raise click.UsageError("--plan and --apply exclude each other: --plan sends nothing")
    if account is None and not show_plan:
        if not local:
            raise click.UsageError("--account is required on a live network (an Ape account alias)")
        account = accounts.test_accounts[0]
    path = manifest or manifest_path(ROOT, chain.chain_id, fork=network.is_fork)
    report: list[str] = []
    try:
        if show_plan:
            # Without --account nobody is checked for the admin role (the plan only reads).
            sender = account.address if account is not None else None
            for line in plan(project, chain, sender, config, root=ROOT, local=local, path=path):
                click.echo(line)
            return
        deployment, reused = deploy_or_reuse(
            project, chain, account, config, root=ROOT, local=local, path=path, apply=apply, report=report
        )
    except ConfigError as err:
        click.echo(f"deploy: {err}", err=True)
        sys.exit(2)
    except DeploymentMismatch as err:
        click.echo(f"deploy: {err}", err=True)
        sys.exit(1)
    for line in report:
        click.echo(line)
    click.echo(
        f"{'reused' if reused else 'deployed'} Backstop on chain {deployment.chain_id}: "
        f"engine {deployment.engine.address}, vault {deployment.vault.address}, fund {deployment.fund.address}, "
        f"markets {', '.join(f'{n}={i}' for n, i in deployment.market_ids.items())}; wiring verified"
    )
