"""``ape run deploy``: deploy and wire a Backstop suite from a markets config.

    ape run deploy                                   # local anvil, mock token and feeds
    ape run deploy --network ethereum:sepolia:node --account deployer --config config/sepolia.yaml

Writes ``deployments/<chain-id>.json``. Re-running is idempotent (the manifest's live suite is
reused; markets added to the config are listed); every run ends by re-reading every address and
parameter from chain and fails on any mismatch.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand, account_option, network_option

from backstop.chain.manifest import DeploymentMismatch, deploy_or_reuse
from backstop.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent


@click.command(cls=ConnectedProviderCommand, short_help="Deploy and wire Backstop")
@network_option()
@account_option(prompt=False)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=ROOT / "config" / "local.yaml",
    show_default=True,
    help="Markets config (YAML).",
)
def cli(network, account, config_path: Path):
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logging.getLogger("backstop").addHandler(handler)
    logging.getLogger("backstop").setLevel(logging.INFO)
    local = network.is_local
    if account is None:
        if not local:
            raise click.UsageError("--account is required on a live network (an Ape account alias)")
        account = accounts.test_accounts[0]
    try:
        config = load_config(config_path)
        deployment, reused = deploy_or_reuse(project, chain, account, config, root=ROOT, local=local)
    except (ConfigError, DeploymentMismatch) as err:
        click.echo(f"deploy: {err}", err=True)
        sys.exit(1)
    click.echo(
        f"{'reused' if reused else 'deployed'} Backstop on chain {deployment.chain_id}: "
        f"engine {deployment.engine.address}, vault {deployment.vault.address}, fund {deployment.fund.address}, "
        f"markets {', '.join(f'{n}={i}' for n, i in deployment.market_ids.items())}; wiring verified"
    )
