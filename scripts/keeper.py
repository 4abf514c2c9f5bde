"""``ape run keeper``: follow the chain and liquidate every liquidatable Backstop account.

    ape run keeper --network ethereum:local:http://127.0.0.1:8545 --once
    ape run keeper --network ethereum:sepolia:node --account keeper

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
from eth_account import Account
from web3 import HTTPProvider, Web3

from backstop.chain.manifest import code_problems, manifest_path
from backstop.chain.node import NoNewNodeCommand
from backstop.chain.rpc import RpcUnavailable
from backstop.decisions.fallback import DEFAULT_BUFFER_RATIO, DEFAULT_GAS_BUDGET, DEFAULT_MIN_STEP_NOTIONAL
from backstop.keeper import Keeper, KeeperConfigError, KeeperStateError, LocalSigner
from backstop.keeper.risk import DEFAULT_MIN_BUFFER
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


def web3_for(provider) -> Web3:
    """A plain web3.py client on the provider's HTTP endpoint (faster than going through Ape);
    Ape's own web3 for WebSocket or IPC providers."""
    uri = getattr(provider, "uri", None)
    if isinstance(uri, str) and uri.startswith(("http://", "https://")):
        return Web3(HTTPProvider(uri, request_kwargs={"timeout": 30}))
    return provider.web3


def market_names(path: Path) -> dict[int, str]:
    """Market id → name from a deploy manifest (``markets.<name>.id``); empty if it lists none."""
    try:
        markets = json.loads(path.read_text()).get("markets", {})
        return {int(m["id"]): name for name, m in markets.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


class StopOnSignal:
    """SIGTERM and SIGINT ask ``keeper`` to stop cleanly (the pass in progress sends nothing more
    and awaits its receipts); a second signal interrupts at once (``KeyboardInterrupt``)."""

    def __init__(self, keeper: Keeper) -> None:
        self.keeper = keeper
        self.received: str | None = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self)

    def __call__(self, signum, _frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        self.keeper.request_stop()


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


@click.command(cls=NoNewNodeCommand, short_help="Run the liquidation keeper")
@network_option()
@account_option(prompt=False)
@click.option(
    "--deployment",
    "deployment_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Deploy manifest [default: deployments/<chain-id>.json; deployments/<chain-id>-fork.json on a fork].",
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Cursor and account index [default: .keeper/<chain-id>.json; .keeper/<chain-id>-fork.json on a fork].",
)
@click.option(
    "--once",
    is_flag=True,
    help="Run one pass and exit (status 1 if anything failed or a market's price was stale or unreadable).",
)
@click.option("--dry-run", is_flag=True, help="Scan, decide and dry-run, but send nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Accounts per healthOf call.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between head polls.",
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Window: transactions sent before awaiting their receipts (1: one at a time).",
)
@click.option(
    "--gas-budget",
    type=click.IntRange(min=100_000),
    default=DEFAULT_GAS_BUDGET,
    show_default=True,
    help="Estimated gas per liquidateMany batch (the batch is cut to fit).",
)
@click.option(
    "--buffer",
    "buffer_ratio",
    type=click.FloatRange(min=0, max=10),
    default=DEFAULT_BUFFER_RATIO / 1e18,
    show_default=True,
    help="Keep free collateral >= this share of the keeper's own IMR after every takeover.",
)
@click.option(
    "--min-step",
    "min_step",
    type=click.FloatRange(min=0),
    default=DEFAULT_MIN_STEP_NOTIONAL / 1e18,
    show_default=True,
    help="Smallest partial liquidation worth a transaction (quote notional).",
)
@click.option(
    "--max-inherit-notional",
    "max_inherit_notional",
    type=click.FloatRange(min=0),
    default=None,
    help="Inherit ceiling: the keeper's gross notional after a pass stays <= this (quote units) [default: none].",
)
@click.option(
    "--min-buffer",
    "min_buffer",
    type=click.FloatRange(min=0, max=100),
    default=DEFAULT_MIN_BUFFER / 1e18,
    show_default=True,
    help="Warn (own_buffer_low) while the keeper's free collateral < this share of its own IMR.",
)
@click.option("--debug", is_flag=True, help="Also log DEBUG lines (empty syncs).")
def cli(
    provider,
    account,
    deployment_path: Path | None,
    state_path: Path | None,
    once: bool,
    dry_run: bool,
    batch_size: int,
    poll_interval: float,
    max_in_flight: int,
    gas_budget: int,
    buffer_ratio: float,
    min_step: float,
    max_inherit_notional: float | None,
    min_buffer: float,
    debug: bool,
):
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log = logging.getLogger("backstop.keeper")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    log.propagate = False

    chain_id = chain.chain_id
    if account is None:
        if not provider.network.is_dev:
            raise click.UsageError("--account is required on a live network (an Ape account alias)")
        account = accounts.test_accounts[0]
    manifest = deployment_path or manifest_path(ROOT, chain_id, fork=provider.network.is_fork)
    engine, deployed_at = read_manifest(manifest, chain_id, provider.get_code)
    keeper: Keeper | None = None
    stop: StopOnSignal | None = None
    try:
        keeper = Keeper(
            web3_for(provider),
            engine,
            signer_for(account),
            # A fork reports its upstream's chain id: its state never takes the live chain's file.
            state_path=state_path
            or ROOT / ".keeper" / f"{chain_id}{'-fork' if provider.network.is_fork else ''}.json",
            start_block=deployed_at,
            batch_size=batch_size,
            dry_run=dry_run,
            logger=log,
            max_in_flight=max_in_flight,
            gas_budget=gas_budget,
            buffer_ratio=to_wad(Decimal(str(buffer_ratio))),
            min_step_notional=to_wad(Decimal(str(min_step))),
            max_inherit_notional=None
            if max_inherit_notional is None
            else to_wad(Decimal(str(max_inherit_notional))),
            min_buffer=to_wad(Decimal(str(min_buffer))),
            market_names=market_names(manifest),
        )
        stop = StopOnSignal(keeper)
        if once:
            report = keeper.run_once()
            status = 1 if report.failed or report.stale_markets else 0
        else:
            keeper.run_forever(poll_interval=poll_interval)
            status = 0
        if stop.received is not None:
            log.info("keeper signal name=%s", stop.received)
            status = 130 if stop.received == "SIGINT" else status
        sys.exit(status)
    except (KeeperStateError, KeeperConfigError) as err:
        click.echo(f"keeper: {err}", err=True)
        sys.exit(2)
    except RpcUnavailable as err:
        click.echo(f"keeper: node unavailable: {err}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        # Also on Ctrl-C when Ape runs the node: its SIGINT handler exits with SystemExit(130).
        if keeper is not None:
            try:
                keeper.persist()
            except Exception as err:  # the stop line must still be written
                log.error("keeper persist_failed error=%s", err)
            log.info("keeper stop %s", " ".join(f"{k}={v}" for k, v in keeper.counters.items()))
