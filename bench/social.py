"""Socialized loss is O(1): the gas of a socializing liquidation with N = 10, 100, 1,000
opposite-side traders.

One ETH market (IM 10 %, MM 5 %, keeper reward 1 %, insurance fee 1 %, trading fees off so that
the fund holds exactly its stake at every N). A whale sells 10 ETH at 2,000 to the account that
will go bankrupt (margin 2,100); N − 1 small traders each sell 1 ETH to a deep-pocketed buyer, so
the short side has exactly N holders. The fund holds a 50-token stake. At each N the chain is
snapshotted, ETH drops to 1,700, a fresh liquidator liquidates the account (deficit 1,070: the
fund pays 50, 1,020 is socialized to the N shorts) and the chain is reverted; then more shorts
are added. Only the number of winners differs between the three measurements.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from backstop.units import WAD
from bench import suites
from bench.chain import Chain, Suite, gas_used, make_actor

PRICE = 2_000 * WAD
CRASH = 1_700 * WAD


def run(
    project, ape_chain, deployer, chain: Chain, log: Callable[[str], None], sizes=(10, 100, 1000)
) -> dict[str, Any]:
    suite = suites.deploy(project, ape_chain, deployer, chain, suites.config(("ETH",), fees=False))
    return SocialBench(chain, suite, log).run(sizes)


class SocialBench:
    def __init__(self, chain: Chain, suite: Suite, log: Callable[[str], None]):
        self.chain = chain
        self.s = suite
        self.log = log

    def run(self, sizes) -> dict[str, Any]:
        s, c = self.s, self.chain
        op, sink, whale = make_actor("soc/op"), make_actor("soc/sink"), make_actor("soc/whale")
        bankrupt, liq, staker = (
            make_actor("soc/bankrupt"),
            make_actor("soc/liquidator"),
            make_actor("soc/staker"),
        )
        c.fund([op, sink, whale, bankrupt, liq, staker])
        s.deposit(sink, s.tokens(2 * max(sizes) * 1_000 + 1_000_000))
        s.deposit(whale, s.tokens(100_000))
        s.deposit(liq, s.tokens(1_000_000))
        s.deposit(bankrupt, s.tokens(2_100))
        s.stake(staker, s.tokens(50))
        s.trade(op, bankrupt, whale, "ETH", 10 * WAD, PRICE)
        # One buy order of the sink, filled 1 ETH at a time by every small short (partial fills).
        sink_order = s.order(sink, "ETH", True, max(sizes) * WAD, PRICE)

        gas: dict[str, int] = {}
        detail: dict[str, Any] = {}
        shorts = 0  # small shorts so far; the whale is the N-th holder
        for n in sorted(sizes):
            want = n - 1
            new = [make_actor(f"soc/short-{i}") for i in range(shorts, want)]
            if new:
                started = time.monotonic()
                c.fund(new)
                txs = []
                for a in new:
                    txs += s.deposit_txs(a, s.tokens(1_000))
                c.send_many(txs, what="deposits of small shorts")
                matches = []
                for a in new:
                    sell = s.order(a, "ETH", False, WAD, PRICE)
                    matches.append((a, s.engine.address, s.match_data(sink_order, sell, WAD)))
                c.send_many(matches, what="small shorts sell 1 ETH")
                shorts = want
                self.log(
                    f"social: {n} opposite-side traders ready ({len(new)} added, {4 * len(new)} transactions "
                    f"in {time.monotonic() - started:.1f} s)"
                )
            holders = shorts + 1
            assert s.view(s.engine, "openInterestOf", 0) == (10 + shorts) * WAD
            snap = c.snapshot()
            s.set_price(op, "ETH", CRASH)
            receipt = s.liquidate(liq, bankrupt)
            [event] = s.events(receipt, "Liquidated")
            [social] = s.events(receipt, "LossSocialized")
            assert event["args"]["covered"] > 0 and event["args"]["socialized"] > 0
            gas[f"socialize_n{n}"] = gas_used(receipt)
            detail[f"n{n}"] = {
                "opposite_side_traders": holders,
                "short_open_interest_eth": (10 + shorts),
                "covered": event["args"]["covered"] // WAD,
                "socialized": event["args"]["socialized"] // WAD,
                "index_delta_wad": social["args"]["indexDelta"],
            }
            self.log(
                f"gas  socialize_n{n:<24} {gas[f'socialize_n{n}']:>9,}  ({holders} shorts share the loss)"
            )
            c.revert(snap)
        lo, hi = min(sizes), max(sizes)
        if f"socialize_n{lo}" in gas and f"socialize_n{hi}" in gas:
            base = gas[f"socialize_n{lo}"]
            detail[f"delta_pct_n{hi}_vs_n{lo}"] = round(100 * (gas[f"socialize_n{hi}"] - base) / base, 4)
        return {"gas": gas, "socialization": detail}
