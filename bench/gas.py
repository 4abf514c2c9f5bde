"""Gas of every user-facing operation, each measured as the ``gasUsed`` of exactly that
transaction (receipt value: intrinsic cost included, refunds deducted).

One suite with four markets (ETH 2,000, BTC 50,000, SOL 200, ARB 0.5; the parameters of
``config/local.yaml``: IM 10 %, MM 5 %, keeper reward 1 %, insurance fee 1 %, band 5 %, maker fee
2 bp, taker fee 5 bp). Before anything is measured, warm-up accounts trade in every market at two
prices (open interest, Σ openNotional, the fund's token balance and its credit in the vault are
non-zero, as in any live market), a market maker, a short and a liquidator hold margin, and a staker holds 100 tokens in
the insurance fund. Groups of measurements run from
that base state and are reverted to it (``evm_snapshot``) so they do not influence each other.
The state of each measurement is written next to its number (``notes``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backstop.units import WAD
from bench import suites
from bench.chain import Actor, Chain, Suite, gas_used, make_actor
from bench.trace import breakdown

# Sizes with a notional of 2,000 at the initial prices.
UNIT = {"ETH": WAD, "BTC": WAD * 4 // 100, "SOL": 10 * WAD, "ARB": 4_000 * WAD}
PRICE = {"ETH": 2_000 * WAD, "BTC": 50_000 * WAD, "SOL": 200 * WAD, "ARB": WAD // 2}
MARKETS = ("ETH", "BTC", "SOL", "ARB")


def moved(market: str, pct: int) -> int:
    """The initial price moved by ``pct`` percent (exact for the feeds' 8 decimals)."""
    return PRICE[market] * (100 + pct) // 100


class GasBench:
    def __init__(self, chain: Chain, suite: Suite, log: Callable[[str], None]):
        self.chain = chain
        self.s = suite
        self.log = log
        self.gas: dict[str, int] = {}
        self.notes: dict[str, str] = {}
        self.events: dict[str, dict[str, int]] = {}
        self.breakdowns: dict[str, Any] = {}
        self.names = {
            suite.token.address: "Token",
            suite.vault.address: "CollateralVault",
            suite.fund.address: "InsuranceFund",
            suite.engine.address: "MarginEngine",
            suite.oracle.address: "OracleAdapter",
            **{feed.address: f"Feed[{name}]" for name, (_i, feed, _d) in suite.markets.items()},
        }
        self.op = make_actor("gas/operator")
        self.mm = make_actor("gas/market-maker")
        self.short = make_actor("gas/short")
        self.liq = make_actor("gas/liquidator")
        self.staker0 = make_actor("gas/staker0")
        self.warm = (make_actor("gas/warm-long"), make_actor("gas/warm-short"), make_actor("gas/warm-late"))
        self.actors = [self.op, self.mm, self.short, self.liq, self.staker0, *self.warm]

    def record(self, key: str, receipt: dict[str, Any], note: str, *, trace: bool = False) -> int:
        self.gas[key] = gas_used(receipt)
        self.notes[key] = note
        if trace:
            keys = {a.address: a.label.removeprefix("gas/") for a in self.actors}
            keys.update({str(mid): name for name, (mid, _f, _d) in self.s.markets.items()})
            order_names = ("buy order", "sell order")  # signed in this order by Suite.trade_data
            keys.update({"0x" + d.hex(): n for d, n in zip(self.s.recent_orders, order_names, strict=False)})
            self.breakdowns[key] = breakdown(self.chain, receipt["transactionHash"], self.names, keys)
        self.log(f"gas  {key:<34} {self.gas[key]:>9,}")
        return self.gas[key]

    def actor(self, label: str) -> Actor:
        a = make_actor(f"gas/{label}")
        self.chain.fund([a])
        self.actors.append(a)
        return a

    # --- base state --------------------------------------------------------------------------------

    def setup(self) -> None:
        s = self.s
        self.chain.fund([self.op, self.mm, self.short, self.liq, self.staker0, *self.warm])
        for a, tokens in (
            (self.warm[0], 100_000),
            (self.warm[1], 100_000),
            (self.warm[2], 100_000),
            (self.mm, 10_000_000),
        ):
            s.deposit(a, s.tokens(tokens))
        s.deposit(self.short, s.tokens(1_000_000))
        s.deposit(self.liq, s.tokens(1_000_000))
        for m in MARKETS:
            # The warm-up pair trades, then a third account buys half of it back at +0.5 %: the
            # market has traded at two prices, so Σ openNotional is non-zero as in any live market.
            s.trade(self.op, self.warm[0], self.warm[1], m, 2 * UNIT[m], PRICE[m])
            s.trade(self.op, self.warm[2], self.warm[0], m, UNIT[m], PRICE[m] * 1005 // 1000)
        s.stake(self.staker0, s.tokens(100))

    # --- measurements ------------------------------------------------------------------------------

    def vault_and_trades(self) -> None:
        s, op = self.s, self.op
        alice = self.actor("alice")
        s.chain.send(alice, s.token.address, s.data(s.token, "mint", alice.address, s.tokens(10_000)))
        s.chain.send(alice, s.token.address, s.data(s.token, "approve", s.vault.address, 2**256 - 1))
        dep = s.data(s.vault, "deposit", s.tokens(1_000))
        self.record(
            "deposit_first",
            s.chain.send(alice, s.vault.address, dep),
            "first deposit of the account: its margin slot goes from zero to non-zero; infinite "
            "approval; the depositor keeps a token balance; the vault already holds tokens",
            trace=True,
        )
        self.record(
            "deposit_repeat",
            s.chain.send(alice, s.vault.address, dep),
            "second deposit of the same account (margin slot non-zero)",
        )
        self.record(
            "withdraw_no_positions",
            s.withdraw(alice, s.tokens(100)),
            "account with no position: no oracle read; margin stays non-zero",
        )

        bob, carol = self.actor("bob"), self.actor("carol")
        for a in (bob, carol):
            s.deposit(a, s.tokens(10_000))
        eth, one = "ETH", UNIT["ETH"]
        self.record(
            "trade_open",
            s.trade(op, bob, carol, eth, one, PRICE[eth]),
            "both parties flat: two positions opened (new slots, market lists pushed); maker and "
            "taker fees booked to the fund's credit in the vault (no token transfer); market "
            "already has open interest",
            trace=True,
        )
        self.record(
            "trade_increase",
            s.trade(op, bob, carol, eth, one, PRICE[eth]),
            "both parties add to their positions (long 1→2, short 1→2)",
            trace=True,
        )
        self.record(
            "trade_reduce",
            s.trade(op, carol, bob, eth, one, PRICE[eth], maker="buyer"),
            "both parties reduce (2→1): the reduce-only rule values each account before and after",
        )
        self.record(
            "trade_close",
            s.trade(op, carol, bob, eth, one, PRICE[eth], maker="buyer"),
            "both parties close (1→0): positions cleared, market lists shrink (storage refunds)",
        )
        s.trade(op, bob, carol, eth, one, PRICE[eth])
        self.record(
            "trade_flip",
            s.trade(op, carol, bob, eth, 2 * one, PRICE[eth], maker="buyer"),
            "both parties flip (long 1 → short 1 and short 1 → long 1): realize, reopen on the other side",
        )
        erin, frank = self.actor("erin"), self.actor("frank")
        for a in (erin, frank):
            s.deposit(a, s.tokens(10_000))
        self.record(
            "fill_open",
            s.fill(frank, erin, eth, one, PRICE[eth]),
            "fillOrder: both parties flat, the taker sends (the maker, frank, signs a sell): two "
            "positions opened, the maker's fill recorded; maker and taker fees booked to the fund's "
            "credit",
            trace=True,
        )
        self.record(
            "fill_increase",
            s.fill(frank, erin, eth, one, PRICE[eth]),
            "fillOrder between accounts that already hold positions (long 1→2, short 1→2), taker sends",
            trace=True,
        )
        self.record(
            "withdraw_1m",
            s.withdraw(bob, s.tokens(100)),
            "account with a position in 1 market: settle + free-collateral check (1 oracle read)",
        )

        dave = self.actor("dave")
        s.deposit(dave, s.tokens(50_000))
        for m in MARKETS:
            s.trade(op, dave, self.mm, m, UNIT[m], PRICE[m])
        self.record(
            "withdraw_4m",
            s.withdraw(dave, s.tokens(100)),
            "account with positions in 4 markets: settle + free-collateral check (4 oracle reads)",
            trace=True,
        )

        staker = self.actor("staker1")
        self.record(
            "fund_stake",
            s.stake(staker, s.tokens(1_000)),
            "ERC-4626 deposit into the insurance fund by a new staker (fund already has stakers)",
        )

    def cover(self) -> None:
        """``cover`` is callable only by the engine: the engine's address is impersonated
        (``anvil_impersonateAccount``) and calls it directly as its own transaction."""
        s, engine = self.s, self.s.engine.address
        self.chain.rpc("anvil_impersonateAccount", [engine])
        self.chain.rpc("anvil_setBalance", [engine, hex(10**20)])
        try:
            tx = {
                "from": engine,
                "to": s.fund.address,
                "data": s.data(s.fund, "cover", s.tokens(50)),
                "gas": hex(10**6),
            }
            receipt = self.chain.receipt(self.chain.rpc("eth_sendTransaction", [tx]))
        finally:
            self.chain.rpc("anvil_stopImpersonatingAccount", [engine])
        assert int(receipt["status"], 16) == 1, "cover reverted"
        self.record(
            "cover",
            receipt,
            "fund.cover(50 tokens) sent by the (impersonated) engine as a transaction of its own: "
            "pays 50 of the fund's 100 tokens to the vault in one transfer (its ~17 tokens of "
            "credit in the vault are not needed)",
        )

    def sweep(self) -> None:
        """``vault.sweepToFund()`` by anyone: the fees of the warm-up trades (the fund's credit)
        move to the fund in one token transfer."""
        s = self.s
        self.record(
            "sweep",
            s.chain.send(self.op, s.vault.address, s.data(s.vault, "sweepToFund")),
            "vault.sweepToFund() by a third party: the fund's credit (the warm-up trades' fees, "
            "~17 tokens) goes to the fund in one transfer; the credit slot goes to zero (refund)",
        )

    def open_victim(self, label: str, kind: str, markets: tuple[str, ...], counterparty: Actor) -> Actor:
        s = self.s
        victim = self.actor(label)
        scale = 10 if kind == "socialized" else 1
        margin = {"solvent": 250, "covered": 210, "socialized": 2_100}[kind]
        if len(markets) == 4:
            margin = {"solvent": 1_000, "covered": 840, "socialized": 8_400}[kind]
        s.deposit(victim, s.tokens(margin))
        for m in markets:
            s.trade(self.op, victim, counterparty, m, scale * UNIT[m], PRICE[m], maker="seller")
        return victim

    def liquidation(self, kind: str, n_markets: int, *, steady: bool = False) -> None:
        """A long account in ``n_markets`` markets, liquidated after a fall:
        solvent (−10 %, keeps a remainder), covered (−15 %, fund staked 10,000 pays the whole
        deficit) or socialized (−15 %, ten times the size: the fund's ~100 tokens cover part,
        the rest is charged to the shorts). ``steady``: the same liquidator first liquidates
        another such account (not measured) and the fund is topped up again with 100 tokens."""
        s, op = self.s, self.op
        markets = MARKETS[:n_markets]
        counterparty = self.short if n_markets == 1 else self.mm
        victim = self.open_victim(
            f"victim-{kind}-{n_markets}m{'-steady' if steady else ''}", kind, markets, counterparty
        )
        earlier = (
            self.open_victim(f"earlier-{kind}-{n_markets}m", kind, markets, counterparty) if steady else None
        )
        if kind == "covered":
            s.stake(self.actor(f"staker-{kind}-{n_markets}m"), s.tokens(10_000))
        pct = -10 if kind == "solvent" else -15
        for m in markets:
            s.set_price(op, m, moved(m, pct))
        if earlier is not None:
            s.liquidate(self.liq, earlier)
            s.stake(self.actor(f"restaker-{kind}-{n_markets}m"), s.tokens(100))
        receipt = s.liquidate(self.liq, victim)
        [event] = s.events(receipt, "Liquidated")
        args = dict(event["args"])
        bankrupt = args["deficit"] > 0
        assert bankrupt == (kind != "solvent"), f"{kind}: deficit {args['deficit']}"
        assert (args["socialized"] > 0) == (kind == "socialized"), f"{kind}: socialized {args['socialized']}"
        assert kind != "covered" or args["covered"] == args["deficit"], "covered: fund did not pay it all"
        key = f"liquidate_{kind}_{n_markets}m" + ("_steady" if steady else "")
        money = {
            k: args[k] // WAD
            for k in ("notional", "keeperReward", "insuranceFee", "deficit", "covered", "socialized")
        }
        self.events[key] = money
        liquidator = (
            "steady state: the same liquidator liquidated an identical account just before, so it "
            "already holds the market"
            + (
                "; the loss index and the unsettled-loss total are already non-zero; the fund was "
                "topped up with 100 tokens"
                if kind == "socialized"
                else ""
            )
            if steady
            else "fresh liquidator (margin only, no position: its position slots go from zero to "
            "non-zero)"
            + (
                "; first socialization in the market(s): loss index goes zero → non-zero"
                if kind == "socialized"
                else ""
            )
        )
        what = {
            "solvent": "solvent: keeper reward and insurance fee paid, the account keeps the rest",
            "covered": "bankrupt, deficit fully covered by the insurance fund (one cover call)",
            "socialized": "bankrupt, the fund pays all it has (its balance goes to zero) and the rest "
            f"is socialized to the opposite side of {n_markets} market(s)",
        }[kind]
        self.record(
            key,
            receipt,
            f"{what}; {n_markets} market(s); {liquidator}; "
            + ", ".join(f"{k} {v:,}" for k, v in money.items() if v),
            trace=(kind == "socialized" or n_markets == 1),
        )
        if kind == "socialized" and not steady:
            settle_key = f"settle_{n_markets}m"
            self.record(
                settle_key,
                s.settle(op, counterparty),
                f"settle(account) by a third party for a winner with pending socialized loss in "
                f"{n_markets} market(s)",
            )

    def batch(self, n: int) -> None:
        """``liquidateMany`` of ``n`` solvent one-market accounts (the account of
        ``liquidate_solvent_1m``, ETH −10 %) by a fresh liquidator: the gas per account."""
        s = self.s
        victims = [self.open_victim(f"batch{n}-{i}", "solvent", ("ETH",), self.short) for i in range(n)]
        s.set_price(self.op, "ETH", moved("ETH", -10))
        receipt = s.liquidate_many(self.liq, victims)
        events = s.events(receipt, "Liquidated")
        assert len(events) == n, f"batch of {n}: {len(events)} liquidated"
        total = gas_used(receipt)
        self.gas[f"liquidate_many_{n}_total"] = total
        self.notes[f"liquidate_many_{n}_total"] = (
            f"liquidateMany of {n} solvent one-market accounts (each as in liquidate_solvent_1m) by a "
            "fresh liquidator, one transaction"
        )
        key = f"liquidate_many_{n}_per_account"
        self.gas[key] = total // n
        self.notes[key] = f"liquidate_many_{n}_total / {n}: what one account costs in a batch of {n}"
        self.log(f"gas  {key:<34} {self.gas[key]:>9,}  (total {total:,})")

    def partial(self) -> None:
        """``liquidatePosition`` of half of the ``liquidate_solvent_1m`` account's position."""
        s = self.s
        victim = self.open_victim("partial-1m", "solvent", ("ETH",), self.short)
        s.set_price(self.op, "ETH", moved("ETH", -10))
        receipt = s.liquidate_position(self.liq, victim, "ETH", UNIT["ETH"] // 2)
        [event] = s.events(receipt, "PositionLiquidated")
        self.record(
            "liquidate_partial_1m",
            receipt,
            "liquidatePosition of half of a solvent one-market position (the account of "
            "liquidate_solvent_1m) by a fresh liquidator: keeper reward "
            f"{event['args']['keeperReward'] / WAD:,}, insurance fee {event['args']['insuranceFee'] / WAD:,}",
        )

    # --- driver ------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.log("gas: setting up the base state")
        self.setup()
        base = self.chain.snapshot()
        steps: list[tuple[str, Callable[[], None]]] = [
            ("vault and trading", self.vault_and_trades),
            ("cover", self.cover),
            ("sweep", self.sweep),
        ]
        for n in (1, 4):
            for kind in ("solvent", "covered", "socialized"):
                steps.append((f"liquidation {kind} {n}m", lambda k=kind, n=n: self.liquidation(k, n)))
        steps.append(
            (
                "liquidation socialized 1m, steady state",
                lambda: self.liquidation("socialized", 1, steady=True),
            )
        )
        steps.append(
            ("liquidation solvent 1m, steady state", lambda: self.liquidation("solvent", 1, steady=True))
        )
        steps.append(("batch of 10", lambda: self.batch(10)))
        steps.append(("batch of 50", lambda: self.batch(50)))
        steps.append(("partial liquidation 1m", self.partial))
        for _name, step in steps:
            step()
            self.chain.revert(base)
            base = self.chain.snapshot()
            self.s.nonces.clear()
        return {
            "gas": self.gas,
            "notes": self.notes,
            "liquidations": self.events,
            "breakdown": self.breakdowns,
        }


def run(project, ape_chain, deployer, chain: Chain, log: Callable[[str], None]) -> dict[str, Any]:
    suite = suites.deploy(project, ape_chain, deployer, chain, suites.config(MARKETS))
    return GasBench(chain, suite, log).run()
