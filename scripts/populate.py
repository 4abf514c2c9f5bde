"""``ape run populate``: fund test accounts, open leveraged positions and move prices on a suite
deployed by ``ape run deploy``, for a rehearsal on a long-lived local chain or a fork.

    ape run populate                                   # 6 accounts, 10,000 each, 5x longs/shorts in ETH
    ape run populate --keeper-collateral 100000        # the same, and margin for the keeper (account 0)
    ape run populate --move ETH=-25%                   # only move a price (several --move allowed)
    ape run populate --advance 90000 --refresh         # a day later, mock feeds stamped fresh

The manifest is ``deployments/<chain-id>.json`` (``-fork.json`` on a fork) or ``--manifest``. Every
input is checked and the run planned before anything is sent: a bad one prints
``populate: <message>`` and exits 2. A transaction whose dry run reverts stops the run (exit 1).
The logic is ``backstop.chain.populate`` (docs/keeper.md, "Rehearse a crash").
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import click
from ape import accounts, chain, project
from ape.cli import network_option
from rich.console import Console
from rich.table import Table
from web3 import HTTPProvider, Web3

from backstop.chain.manifest import manifest_path
from backstop.chain.node import NoNewNodeCommand
from backstop.chain.populate import PopulateError, PopulateFailed, Row, book, execute, plan
from backstop.chain.suite import abis_of, open_suite
from backstop.units import format_units

ROOT = Path(__file__).resolve().parent.parent
#: Traders funded and paired when the run asks for nothing else.
DEFAULT_ACCOUNTS = 6


def _amount(value: int | None, places: int = 2) -> str:
    if value is None:
        return "stale price"
    return f"{Decimal(format_units(value)).quantize(Decimal(10) ** -places):,}"


def table(rows: list[Row], deposited: dict[int, int], scale: int) -> Table:
    """The closing table: one row per test account, amounts in quote units; the role is the
    pairing's (odd accounts go long, even ones short; account 0 is the keeper's)."""
    t = Table(title="Backstop accounts (Ape test accounts)")
    columns = (
        "#",
        "role",
        "account",
        "deposited now",
        "margin",
        "positions",
        "equity",
        "MMR",
        "liquidatable",
    )
    for column in columns:
        t.add_column(column, justify="left" if column in ("role", "account", "positions") else "right")
    for r in rows:
        positions = ", ".join(f"{name} {format_units(size)}" for name, size in r.positions.items()) or "-"
        flag = {True: "[bold red]yes[/]", False: "no", None: "?"}[r.liquidatable]
        t.add_row(
            str(r.index), "keeper" if r.index == 0 else ("long" if r.index % 2 else "short"), r.address,
            _amount(deposited.get(r.index, 0) * scale), _amount(r.margin), positions,
            _amount(r.equity), _amount(r.mmr), flag,
        )  # fmt: skip
    return t


def web3_for(provider) -> Web3:
    uri = getattr(provider, "uri", None)
    if isinstance(uri, str) and uri.startswith(("http://", "https://")):
        return Web3(HTTPProvider(uri, request_kwargs={"timeout": 60}))
    return provider.web3


@click.command(cls=NoNewNodeCommand, short_help="Fund, trade and move prices on a deployed suite")
@network_option()
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Deploy manifest [default: deployments/<chain-id>.json; deployments/<chain-id>-fork.json on a fork].",
)
@click.option(
    "--accounts",
    "n_accounts",
    type=int,
    default=None,
    help=f"Traders to fund and pair: test accounts 1..N, N even [default: {DEFAULT_ACCOUNTS}, "
    "or none when only --move, --refresh or --advance is given].",
)
@click.option(
    "--collateral", default="10000", show_default=True, help="Margin each trader is topped up to (tokens)."
)
@click.option(
    "--leverage", default="5", show_default=True, help="Position notional / equity (0: no trades); ≤ 1/IMR."
)
@click.option("--market", default="ETH", show_default=True, help="The market the pairs trade.")
@click.option(
    "--keeper-collateral",
    default="0",
    show_default=True,
    help="Margin to top test account 0 (the keeper) up to.",
)
@click.option("--move", "moves", multiple=True, metavar="MARKET=PRICE|±PCT%", help="Set a feed's price.")
@click.option("--refresh", is_flag=True, help="Stamp every mock feed's answer with the current time.")
@click.option("--advance", type=int, default=0, metavar="SECONDS", help="evm_increaseTime and mine first.")
def cli(
    network, manifest, n_accounts, collateral, leverage, market, keeper_collateral, moves, refresh, advance
):
    if not network.is_dev:
        click.echo(
            f"populate: {network.choice} is a live network; populate drives test accounts on a local chain or a fork",
            err=True,
        )
        sys.exit(2)
    if n_accounts is None:
        n_accounts = 0 if (moves or refresh or advance) else DEFAULT_ACCOUNTS
    keys = [a.private_key for a in accounts.test_accounts]
    path = manifest or manifest_path(ROOT, chain.chain_id, fork=network.is_fork)
    # Piped or captured output gets a fixed width wide enough for the table.
    say = Console(highlight=False, width=None if sys.stdout.isatty() else 170).print
    try:
        suite = open_suite(web3_for(chain.provider), path, abis_of(project))
        run = plan(
            suite, keys, accounts=n_accounts, collateral=collateral, leverage=leverage, market=market,
            keeper_collateral=keeper_collateral, moves=moves, refresh=refresh, advance=advance,
        )  # fmt: skip
        execute(suite, run, keys, say=say)
    except PopulateError as err:
        click.echo(f"populate: {err}", err=True)
        sys.exit(2)
    except PopulateFailed as err:
        click.echo(f"populate: {err}", err=True)
        sys.exit(1)
    for note in run.notes:
        say(note)
    rows = book(suite, keys, include=[0, *run.accounts])
    say(table(rows, {f.index: f.deposit for f in run.funding}, suite.scale))
