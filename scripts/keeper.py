"""``ape run keeper``: follow the chain and liquidate every liquidatable Backstop account.

    ape run keeper --network ethereum:local:http://127.0.0.1:8545 --once
    ape run keeper --network ethereum:sepolia:node --account keeper --config keeper.yaml

Settings come from ``--config FILE`` (YAML), ``BACKSTOP_KEEPER_*`` variables and the flags, in
that order of precedence (``backstop.keeper.settings``). Without ``--once`` the keeper runs as a
Silverback bot (``backstop.keeper.bot``) over its RPC URLs with failover
(``backstop.keeper.endpoints``), serving ``/metrics`` and ``/health`` with ``--metrics-port``.

Reads the engine's address and deployment block from the deploy manifest
(``deployments/<chain-id>.json``), keeps its cursor and account index in ``.keeper/<chain-id>.json``
and logs one structured line per event (see ``docs/keeper.md``). The keeper signs its own
transactions: the Ape account must be a test account or a keyfile account (its passphrase is read
from ``APE_ACCOUNTS_<alias>_PASSPHRASE``, as ``ape`` itself does, or prompted for once).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from decimal import Decimal
from pathlib import Path

import click
from ape import accounts, chain
from ape.cli import account_option, network_option
from click.core import ParameterSource
from eth_account import Account
from web3 import Web3

from backstop.chain.manifest import code_problems, manifest_path
from backstop.chain.node import NoNewNodeCommand
from backstop.chain.rpc import RpcUnavailable
from backstop.chain.tx import wei_of_gwei
from backstop.keeper import Keeper, KeeperConfigError, KeeperStateError, LocalSigner
from backstop.keeper.bot import KeeperService, run_bot
from backstop.keeper.endpoints import AllEndpointsExcluded, FailoverProvider
from backstop.keeper.logs import emit, formatter
from backstop.keeper.metrics import MetricsServer, Monitor
from backstop.keeper.settings import KeeperSettings, KeeperSettingsError, load_settings
from backstop.units import to_wad

ROOT = Path(__file__).resolve().parent.parent


def signer_for(account) -> LocalSigner:
    """A ``LocalSigner`` for an Ape account: test accounts expose ``private_key``; a keyfile
    account's key is decrypted from its keyfile with its passphrase (from the environment
    variable Ape's own ``unlock`` reads, else a hidden prompt)."""
    key = getattr(account, "private_key", None)
    if key:
        return LocalSigner(key)
    keyfile = getattr(account, "keyfile", None)
    if keyfile is None:
        raise click.UsageError(
            f"{account} cannot sign locally: use a test account or an `ape accounts` keyfile"
        )
    alias = account.alias
    passphrase = os.environ.get(f"APE_ACCOUNTS_{alias}_PASSPHRASE")
    if passphrase is None:
        passphrase = click.prompt(f"Passphrase to unlock '{alias}' for the keeper", hide_input=True)
    try:
        return LocalSigner(Account.decrypt(keyfile, passphrase))
    except ValueError as err:
        raise click.UsageError(f"cannot unlock '{alias}': {err}") from err


def rpc_urls(settings: KeeperSettings, provider) -> list[str]:
    """The keeper's endpoints: ``rpc_urls`` from the settings, else the Ape provider's HTTP URI."""
    if settings.rpc_urls:
        return list(settings.rpc_urls)
    uri = getattr(provider, "uri", None)
    if isinstance(uri, str) and uri.startswith(("http://", "https://")):
        return [uri]
    raise click.UsageError(
        f"the provider of {provider.network.choice} has no HTTP URI ({uri!r}): give --rpc-url"
    )


def wad(value: float | None) -> int | None:
    return None if value is None else to_wad(Decimal(str(value)))


def gwei(value: float | None) -> int | None:
    return None if value is None else wei_of_gwei(value)


def market_names(path: Path) -> dict[int, str]:
    """Market id → name from a deploy manifest (``markets.<name>.id``); empty if it lists none."""
    try:
        markets = json.loads(path.read_text()).get("markets", {})
        return {int(m["id"]): name for name, m in markets.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


class StopOnSignal:
    """With ``--once``: SIGTERM and SIGINT ask the keeper to stop cleanly (the pass in progress
    sends nothing more and awaits its receipts); a second signal interrupts at once
    (``KeyboardInterrupt``). The bot's runner does the same (``backstop.keeper.bot.HeadRunner``)."""

    def __init__(self, service: KeeperService) -> None:
        self.service = service
        self.received: str | None = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self)

    def __call__(self, signum, _frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        self.service.on_signal(self.received)


def read_manifest(path: Path, chain_id: int, get_code=None) -> tuple[str, int]:
    """``(engine address, deployment block)`` from a deploy manifest, after checking that it is
    this chain's and (with ``get_code``) that the suite's code is at its addresses."""
    try:
        manifest = json.loads(path.read_text())
        engine = manifest["contracts"]["MarginEngine"]
    except (OSError, ValueError, KeyError) as err:
        raise click.UsageError(
            f"{path}: no usable deployment manifest ({err}); run `ape run deploy`"
        ) from err
    if int(manifest.get("chain_id", chain_id)) != chain_id:
        raise click.UsageError(f"{path} describes chain {manifest['chain_id']}, connected to {chain_id}")
    if get_code is not None:
        missing, changed = code_problems(manifest, get_code, chain_id)
        if missing or changed:
            raise click.UsageError(
                f"{path}: {(missing or changed)[0]}: the manifest does not describe this chain's suite; "
                "run `ape run deploy`"
            )
    return engine["address"], int(engine.get("block", 0))


#: Flags that are settings (``--max-fee-gwei`` → ``max_fee_gwei``); given flags override the
#: config file and the environment. Their defaults live in ``KeeperSettings``.
SETTING_FLAGS = (
    "rpc_urls",
    "deployment",
    "state",
    "dry_run",
    "batch_size",
    "poll_interval",
    "max_backoff",
    "max_in_flight",
    "gas_budget",
    "buffer",
    "min_step",
    "max_inherit_notional",
    "min_buffer",
    "max_fee_gwei",
    "priority_fee_gwei",
    "reprice_after",
    "eth_price",
    "metrics_port",
    "metrics_host",
    "max_head_age",
    "log_format",
    "debug",
)


def given_flags(ctx: click.Context) -> dict:
    """``setting → value`` of the setting flags given on the command line."""
    out = {}
    for name in SETTING_FLAGS:
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            value = ctx.params[name]
            out[name] = list(value) if name == "rpc_urls" else value
    return out


@click.command(cls=NoNewNodeCommand, short_help="Run the liquidation keeper")
@network_option()
@account_option(prompt=False)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML settings file (keys as the flags, with _): flags override it, and BACKSTOP_KEEPER_* variables too.",
)
@click.option(
    "--rpc-url",
    "rpc_urls",
    multiple=True,
    help="JSON-RPC endpoint, repeatable, in order of preference (failover) [default: the Ape provider's URL].",
)
@click.option(
    "--deployment",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Deploy manifest [default: deployments/<chain-id>.json; deployments/<chain-id>-fork.json on a fork].",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Cursor and account index [default: .keeper/<chain-id>.json; .keeper/<chain-id>-fork.json on a fork].",
)
@click.option(
    "--once",
    is_flag=True,
    help="Run one pass and exit (status 1 if anything failed or a market's price was stale or unreadable).",
)
@click.option("--dry-run", is_flag=True, default=None, help="Scan, decide and dry-run, but send nothing.")
@click.option("--batch-size", type=int, help="Accounts per healthOf call [500].")
@click.option("--poll-interval", type=float, help="Seconds between head polls [1.0].")
@click.option(
    "--max-backoff", type=float, help="Longest wait between passes while every endpoint is down [5.0]."
)
@click.option("--max-in-flight", type=int, help="Transactions sent before awaiting their receipts [8].")
@click.option("--gas-budget", type=int, help="Estimated gas per liquidateMany batch [5,000,000].")
@click.option(
    "--buffer",
    type=float,
    help="Keep free collateral >= this share of the keeper's own IMR after every takeover [0.1].",
)
@click.option(
    "--min-step", type=float, help="Smallest partial liquidation worth a transaction (quote notional) [1]."
)
@click.option(
    "--max-inherit-notional",
    type=float,
    help="Inherit ceiling: the keeper's gross notional after a pass stays <= this (quote units) [none].",
)
@click.option(
    "--min-buffer",
    type=float,
    help="Warn (own_buffer_low) while free collateral < this share of the keeper's own IMR [0.2].",
)
@click.option(
    "--max-fee-gwei", type=float, help="Never pay more than this per gas (maxFeePerGas cap) [none]."
)
@click.option("--priority-fee-gwei", type=float, help="Tip per gas [the node's eth_maxPriorityFeePerGas].")
@click.option(
    "--reprice-after", type=float, help="Seconds without a receipt before re-signing with higher fees [12]."
)
@click.option(
    "--eth-price",
    type=float,
    help="Quote value of 1 ETH for the profitability floor [the ETH market's price].",
)
@click.option("--metrics-port", type=int, help="Serve /metrics and /health on this port [off].")
@click.option("--metrics-host", help="Address to serve metrics on [127.0.0.1].")
@click.option(
    "--max-head-age",
    type=float,
    help="/health fails once the newest block is older than this, in seconds (0: never) [120].",
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), help="Log lines as text or JSON objects [text]."
)
@click.option(
    "--debug", is_flag=True, default=None, help="Also log DEBUG lines (empty syncs, Silverback's task lines)."
)
@click.pass_context
def cli(ctx, provider, account, config_path: Path | None, once: bool, **_flags):
    try:
        settings = load_settings(config_path, os.environ, given_flags(ctx))
    except KeeperSettingsError as err:
        for line in str(err).splitlines():
            click.echo(f"keeper: {line}", err=True)
        sys.exit(2)
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(settings.log_format))
    log = logging.getLogger("backstop.keeper")
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if settings.debug else logging.INFO)
    log.propagate = False
    # Ape's and Silverback's own lines go the same way (JSON too); per-block task lines only with --debug.
    ape_log = logging.getLogger("ape")
    if settings.log_format == "json":
        ape_log.handlers[:] = [handler]
    ape_log.setLevel(logging.DEBUG if settings.debug else logging.WARNING)

    chain_id = chain.chain_id
    if account is None and settings.account is not None:
        account = accounts.load(settings.account)
    if account is None:
        if not provider.network.is_dev:
            raise click.UsageError("--account is required on a live network (an Ape account alias)")
        account = accounts.test_accounts[0]
    fork = provider.network.is_fork
    manifest = settings.deployment or manifest_path(ROOT, chain_id, fork=fork)
    engine, deployed_at = read_manifest(manifest, chain_id, provider.get_code)

    def on_event(level: int, event: str, **fields) -> None:
        emit(log, level, event, **fields)

    endpoints = FailoverProvider(
        rpc_urls(settings, provider),
        chain_id=chain_id,
        health_interval=settings.health_interval,
        max_lag_blocks=settings.max_lag_blocks,
        on_event=on_event,
    )
    try:
        healthy = endpoints.check()
    except AllEndpointsExcluded as err:
        click.echo(f"keeper: {err}", err=True)
        sys.exit(2)
    if not healthy:  # never a node of our own in their place
        labels = ", ".join(e.label for e in endpoints.snapshot())
        click.echo(f"keeper: no RPC endpoint answers ({labels})", err=True)
        sys.exit(1)
    keeper: Keeper | None = None
    service: KeeperService | None = None
    server: MetricsServer | None = None
    try:
        keeper = Keeper(
            Web3(endpoints),
            engine,
            signer_for(account),
            # A fork reports its upstream's chain id: its state never takes the live chain's file.
            state_path=settings.state or ROOT / ".keeper" / f"{chain_id}{'-fork' if fork else ''}.json",
            start_block=deployed_at,
            batch_size=settings.batch_size,
            dry_run=settings.dry_run,
            logger=log,
            max_in_flight=settings.max_in_flight,
            gas_budget=settings.gas_budget,
            buffer_ratio=wad(settings.buffer),
            min_step_notional=wad(settings.min_step),
            max_inherit_notional=wad(settings.max_inherit_notional),
            min_buffer=wad(settings.min_buffer),
            market_names=market_names(manifest),
            max_fee=gwei(settings.max_fee_gwei),
            priority_fee=gwei(settings.priority_fee_gwei),
            reprice_after=settings.reprice_after,
            eth_price=wad(settings.eth_price),
            max_backoff=settings.max_backoff,
        )
        service = KeeperService(keeper, Monitor())
        if settings.metrics_port is not None:
            server = MetricsServer(
                service.monitor,
                settings.metrics_host,
                settings.metrics_port,
                max_head_age=settings.max_head_age,
                endpoints=endpoints.snapshot,
            )
            keeper._event(logging.INFO, "metrics", url=f"http://{server.host}:{server.port}/metrics")
        if once:
            stop = StopOnSignal(service)
            service.poll_head()
            report = service.run_pass()
            status = 1 if report is None or report.failed or report.stale_markets else 0
            if stop.received == "SIGINT":
                status = 130
        else:
            clean = run_bot(service, poll_interval=settings.poll_interval, max_backoff=settings.max_backoff)
            status = 130 if service.signal_name == "SIGINT" else 0 if clean else 1
        sys.exit(status)
    except (KeeperStateError, KeeperConfigError) as err:
        click.echo(f"keeper: {err}", err=True)
        sys.exit(2)
    except RpcUnavailable as err:
        click.echo(f"keeper: node unavailable: {err}", err=True)
        sys.exit(1)
    except OSError as err:  # the metrics port is taken
        click.echo(f"keeper: {err}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        # Also on Ctrl-C when Ape runs the node: its SIGINT handler exits with SystemExit(130).
        if service is not None:
            service.finish()
        if server is not None:
            server.stop()
