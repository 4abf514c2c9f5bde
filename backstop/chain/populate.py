"""Driving a deployed suite for a rehearsal (issue #17): fund test accounts and deposit their
collateral, open leveraged positions between pairs of them with signed EIP-712 orders, move and
refresh prices, advance time. ``ape run populate`` (``scripts/populate.py``) is the command line.

Every input is checked and the whole run is planned from reads before the first transaction
(:func:`plan`): a bad input raises :class:`PopulateError` and nothing is sent. :func:`execute`
then sends, in this order: the time advance, the feed refreshes, the deposits, the trades, the
price moves; each transaction after a dry run (a revert raises :class:`PopulateFailed`, and
nothing after it is sent). :func:`book` reads the accounts back through the engine's views.

Accounts are Ape's test accounts (the ape-config mnemonic, which gives anvil's default accounts):
``keys[0]`` is the deployer and the keeper's default account, funded only when asked
(``keeper_collateral``); traders are ``keys[1..n]``, paired (1, 2), (3, 4), ...: the odd one goes
long, the even one short. Price moves and refreshes are sent from ``keys[1]``, never from the
keeper's account, whose nonce a running keeper tracks itself.

On a mock token (one that lets the account ``mint``) tokens are minted; on a real one (a fork)
``backstop.chain.fork.fund_token`` provides them. A mock feed (one that accepts ``setAnswer``) is
set with its own setter; a real one goes through ``backstop.chain.fork.set_feed_answer`` (anvil
only: on another node it is refused before anything is sent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from eth_account import Account
from web3.exceptions import ContractLogicError

from backstop.chain import fork
from backstop.chain.populate_inputs import (
    PopulateError,
    PopulateFailed,
    new_answer,
    pair_size,
    parse_amount,
    parse_leverage,
    parse_move,
    side_room,
)
from backstop.chain.suite import Market, Suite, health, send
from backstop.orders import Order, order_digest, sign_order, to_tuple
from backstop.units import WAD, format_units

__all__ = ["Plan", "PopulateError", "PopulateFailed", "book", "execute", "plan"]

#: An order's lifetime (seconds).
ORDER_TTL = 3_600
#: A test account below this balance (wei) gets ``ETH_TOPUP`` through ``anvil_setBalance``.
ETH_FLOOR, ETH_TOPUP = 10**18, 100 * 10**18


# --- the plan ----------------------------------------------------------------------------------------------


@dataclass
class Funding:
    index: int
    address: str
    deposit: int  # token units
    mint: int  # token units the wallet lacks
    eth: bool  # gas money needed (anvil_setBalance)


@dataclass
class Trade:
    long: int  # test account indices
    short: int
    market: str
    size: int  # WAD base units
    price: int  # WAD


@dataclass
class PriceMove:
    market: str
    old: int  # feed answers
    new: int
    mock: bool


@dataclass
class Plan:
    advance: int = 0
    refresh: list[str] = field(default_factory=list)
    funding: list[Funding] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    moves: list[PriceMove] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    mock_token: bool = True
    accounts: list[int] = field(default_factory=list)  # the test accounts this run funded or traded


def plan(
    suite: Suite,
    keys: Sequence[str],
    *,
    accounts: int = 0,
    collateral: str | int | Decimal = 10_000,
    leverage: str | int | Decimal = 5,
    market: str = "ETH",
    keeper_collateral: str | int | Decimal = 0,
    moves: Sequence[str] = (),
    refresh: bool = False,
    advance: int = 0,
) -> Plan:
    """Checks every input and plans the run from reads only; :class:`PopulateError` names the
    first bad one. ``keys`` are the test accounts' private keys, index 0 the keeper's."""
    w3 = suite.w3
    out = Plan(advance=advance)
    if advance < 0:
        raise PopulateError(f"--advance {advance}: must be ≥ 0 seconds")
    if accounts < 0 or accounts % 2:
        raise PopulateError(f"--accounts {accounts}: an even number expected (traders go in pairs)")
    if accounts > len(keys) - 1:
        raise PopulateError(f"--accounts {accounts}: only {len(keys) - 1} test accounts besides account 0")
    amount = parse_amount(collateral, suite.decimals, "--collateral")
    keeper_amount = parse_amount(keeper_collateral, suite.decimals, "--keeper-collateral")
    lev = parse_leverage(leverage)
    parsed = [parse_move(m) for m in moves]
    for name in [m.market for m in parsed] + ([market] if accounts else []):
        if name not in suite.markets:
            raise PopulateError(f"market {name!r}: not in the manifest (listed: {', '.join(suite.markets)})")
    operator = Account.from_key(keys[1]).address

    # Price moves and refreshes: which feeds are mocks (they accept setAnswer).
    for move in parsed:
        m = suite.markets[move.market]
        new = new_answer(move, m.answer, m.decimals)
        mock = _accepts(w3, m.feed.functions.setAnswer(new), operator)
        if not mock:
            _dev_node(w3, f"--move {move.text}: the {m.name} feed is not a mock")
        out.moves.append(PriceMove(m.name, m.answer, new, mock))
    if refresh:
        for m in suite.markets.values():
            if _accepts(w3, m.feed.functions.setAnswer(m.answer), operator):
                out.refresh.append(m.name)
            else:
                out.notes.append(f"--refresh: the {m.name} feed is not a mock, left as it is (use --move)")

    # Deposits.
    wanted = ([(0, keeper_amount)] if keeper_amount else []) + [(i, amount) for i in range(1, accounts + 1)]
    extra: dict[int, int] = {}
    for index, target in wanted:
        address = Account.from_key(keys[index]).address
        margin = suite.vault.functions.marginOf(address).call()
        deposit = max(-(-(target * suite.scale - margin) // suite.scale), 0)
        wallet = suite.token.functions.balanceOf(address).call()
        mint = max(deposit - wallet, 0)
        eth = w3.eth.get_balance(address) < ETH_FLOOR
        extra[index] = deposit * suite.scale
        out.accounts.append(index)
        if deposit:
            out.funding.append(Funding(index, address, deposit, mint, eth))
        else:
            out.notes.append(
                f"account {index}: margin {format_units(margin)} already ≥ {format_units(target * suite.scale)}"
            )
    if any(f.mint for f in out.funding):
        first = next(f for f in out.funding if f.mint)
        out.mock_token = _accepts(w3, suite.token.functions.mint(first.address, first.mint), first.address)
        if not out.mock_token:
            _dev_node(w3, "the collateral token is not a mock (no mint)")
            # fund_token (no holder) writes the balance slot: it must be found (each probe restored).
            try:
                found = fork.find_balance_slot(w3, suite.token.address, first.address)
            except fork.ForkError as err:
                raise PopulateError(f"the collateral token is not a mock (no mint), and {err}") from None
            if found is None:
                raise PopulateError(
                    f"the collateral token {suite.token.address} is not a mock (no mint), and no balance "
                    f"mapping of it was found in slots 0..{fork.PROBE_SLOTS - 1} to fund the accounts through"
                )

    # Trades.
    if accounts and lev:
        m = suite.markets[market]
        if lev * m.im_ratio > WAD * WAD:
            limit = format_units(WAD * WAD // m.im_ratio)
            raise PopulateError(
                f"--leverage {leverage}: above 1/initial margin of {m.name} "
                f"({format_units(m.im_ratio * 100)}% allows at most {limit}x)"
            )
        now = w3.eth.get_block("latest")["timestamp"] + advance
        for index in range(1, accounts + 1):
            for market_id in [
                *suite.engine.functions.marketsOf(Account.from_key(keys[index]).address).call(),
                m.id,
            ]:
                _fresh(
                    suite.market_of(market_id),
                    now,
                    refresh and suite.market_of(market_id).name in out.refresh,
                )
        oi = suite.engine.functions.openInterestOf(m.id).call()
        for long, short in zip(range(1, accounts + 1, 2), range(2, accounts + 1, 2), strict=True):
            sides = []
            for index, sign, fee in ((long, 1, m.taker_fee), (short, -1, m.maker_fee)):
                address = Account.from_key(keys[index]).address
                e, imr, positions = health(suite, address, extra.get(index, 0))
                size = positions.get(m.id, (0, 0))[0]
                if size * sign < 0:
                    out.notes.append(
                        f"account {index}: holds the other side of {m.name}; pair {long}/{short} left as is"
                    )
                    break
                sides.append(side_room(e, imr, size, m.price, lev, m.im_ratio, fee, suite.scale))
            else:
                q = pair_size(*sides)
                if q:
                    out.trades.append(Trade(long, short, m.name, q, m.price))
                    oi += q
                else:
                    out.notes.append(
                        f"pair {long}/{short}: already at {format_units(lev)}x in {m.name}, no trade"
                    )
        if oi > m.oi_cap:
            raise PopulateError(
                f"market {m.name}: the trades would raise open interest to {format_units(oi)} "
                f"(cap {format_units(m.oi_cap)}): fewer --accounts, less --collateral or --leverage"
            )
    return out


def _fresh(m: Market, now: int, refreshed: bool) -> None:
    if not refreshed and now > m.updated_at + m.heartbeat:
        raise PopulateError(
            f"market {m.name}: its price is stale ({now - m.updated_at} s old, heartbeat {m.heartbeat} s); "
            "add --refresh (mock feeds) or --move"
        )


def _accepts(w3: Any, fn: Any, sender: str) -> bool:
    """Whether ``fn`` from ``sender`` would succeed (an ``eth_estimateGas``); sends nothing."""
    try:
        w3.eth.estimate_gas({"from": sender, "to": fn.address, "data": fn._encode_transaction_data()})
    except (ContractLogicError, ValueError):
        return False
    return True


def _dev_node(w3: Any, why: str) -> None:
    """Refuses, before anything is sent, to fund or move prices through a node that is not anvil."""
    try:
        fork.dev_node(w3)
    except fork.ForkError as err:
        raise PopulateError(f"{why}, and {err}") from None


# --- sending -----------------------------------------------------------------------------------------------


def execute(suite: Suite, run: Plan, keys: Sequence[str], say: Any = print) -> None:
    """Sends the plan: advance, refreshes, deposits, trades, moves (each a line to ``say``)."""
    w3 = suite.w3
    operator = Account.from_key(keys[1])
    if run.advance:
        w3.provider.make_request("evm_increaseTime", [run.advance])
        w3.provider.make_request("evm_mine", [])
        say(f"advanced {run.advance} s: block {w3.eth.block_number}")
    for name in run.refresh:
        m = suite.markets[name]
        send(suite, m.feed.functions.setAnswer(m.answer), operator, f"refresh {name}")
        say(f"refreshed {name}: answer {m.answer} stamped now")
    for f in run.funding:
        key = Account.from_key(keys[f.index])
        if f.eth:
            w3.provider.make_request("anvil_setBalance", [f.address, hex(ETH_TOPUP)])
        if f.mint and run.mock_token:
            send(suite, suite.token.functions.mint(f.address, f.mint), key, f"mint for account {f.index}")
        elif f.mint:
            _through_the_node(fork.fund_token, w3, suite.token.address, f.address, f.mint)  # the balance slot
            given = format_units(f.mint, 10**suite.decimals)
            say(
                f"account {f.index}: {given} tokens put in its balance slot through the node (the token has no mint)"
            )
        if suite.token.functions.allowance(f.address, suite.vault.address).call() < f.deposit:
            send(suite, suite.token.functions.approve(suite.vault.address, 2**256 - 1), key, "approve")
        send(suite, suite.vault.functions.deposit(f.deposit), key, f"deposit of account {f.index}")
        say(f"account {f.index}: deposited {format_units(f.deposit, 10**suite.decimals)}")
    for t in run.trades:
        _trade(suite, t, Account.from_key(keys[t.long]), Account.from_key(keys[t.short]))
        say(
            f"accounts {t.long} long / {t.short} short: {format_units(t.size)} {t.market} at {format_units(t.price)}"
        )
    for mv in run.moves:
        m = suite.markets[mv.market]
        if mv.mock:
            send(suite, m.feed.functions.setAnswer(mv.new), operator, f"move {m.name}")
        else:
            _through_the_node(fork.set_feed_answer, w3, m.feed.address, mv.new)
        m.answer = mv.new
        old, new = format_units(mv.old, 10**m.decimals), format_units(mv.new, 10**m.decimals)
        how = "" if mv.mock else " (the feed's code replaced by MockAggregator on the fork)"
        say(f"moved {m.name}: {old} -> {new}{how}")


def _through_the_node(fn: Any, *args: Any) -> Any:
    """``fn(*args)``, a ``backstop.chain.fork`` primitive; its error stops the run as a failure."""
    try:
        return fn(*args)
    except fork.ForkError as err:
        raise PopulateFailed(str(err)) from None


def _trade(suite: Suite, t: Trade, long: Any, short: Any) -> None:
    """``matchOrders``: the short's sell order is the maker, the long's buy the taker, both at
    ``t.price``, with nonces no order of theirs has used; the long relays it."""
    m = suite.markets[t.market]
    engine, w3 = suite.engine, suite.w3
    expiry = w3.eth.get_block("latest")["timestamp"] + ORDER_TTL
    signed = []
    for who, is_buy in ((short, False), (long, True)):
        nonce = max(engine.functions.minNonceOf(who.address).call(), w3.eth.block_number)
        while True:
            order = Order(who.address, m.id, is_buy, t.size, t.price, nonce, expiry)
            digest = order_digest(order, suite.chain_id, engine.address)
            if (
                not engine.functions.filledOf(digest).call()
                and not engine.functions.isCancelled(who.address, digest).call()
            ):
                break
            nonce += 1
        signed += [to_tuple(order), sign_order(order, who.key, suite.chain_id, engine.address)]
    send(suite, engine.functions.matchOrders(*signed, t.size), long, f"trade {t.long}/{t.short}")


# --- reading back ------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One account in the closing table; ``equity`` and ``mmr`` are None when a price is unusable."""

    index: int
    address: str
    margin: int
    positions: dict[str, int]  # market name -> size (WAD)
    equity: int | None
    mmr: int | None

    @property
    def liquidatable(self) -> bool | None:
        if not self.positions:
            return False
        return None if self.equity is None else self.equity < self.mmr


def book(suite: Suite, keys: Sequence[str], include: Sequence[int] = ()) -> list[Row]:
    """The test accounts in ``include`` and every other one with margin or a position, through
    the engine's views (``equityOf``, ``maintenanceMarginOf``, ``positionOf``)."""
    rows = []
    engine = suite.engine.functions
    for index, key in enumerate(keys):
        address = Account.from_key(key).address
        margin = suite.vault.functions.marginOf(address).call()
        market_ids = engine.marketsOf(address).call()
        if index not in include and not margin and not market_ids:
            continue
        positions = {suite.market_of(i).name: engine.positionOf(address, i).call()[0] for i in market_ids}
        try:
            equity, mmr = engine.equityOf(address).call(), engine.maintenanceMarginOf(address).call()
        except ContractLogicError:
            equity = mmr = None
        rows.append(Row(index, address, margin, positions, equity, mmr))
    return rows
