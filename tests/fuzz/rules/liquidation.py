"""Liquidation rules: liquidations by anyone of anyone, partial steps of any size, batches with
repeats, healthy and flat accounts, the keeper's first choice and its whole batch, settlement."""

from __future__ import annotations

from typing import Any

from eth_abi import encode as abi_encode

from backstop.decisions import plan_liquidations
from backstop.model import ModelRevert
from tests.fuzz.core import MachineCore
from tests.fuzz.dsl import C, R, action
from tests.fuzz.invariants import INV_LIQ_EVENT, INV_PARTIAL_BUFFER, expect
from tests.fuzz.params import ACTOR, MARKET
from tests.fuzz.world import KEEPER, Calls, addr_word, liquidation_events

#: The fields of the ``Liquidated`` event, as the model's result names them.
_EVENT_FIELDS = ("notional", "keeper_reward", "insurance_fee", "deficit", "covered", "socialized")
#: The fields of ``PositionLiquidated``, as the model's ``liquidate_position`` result names them.
_PARTIAL_FIELDS = ("market", "size", "price", "keeper_reward", "insurance_fee")
#: How a partial step is sized from the account's position ``|s|`` (a percentage for "pct").
SIZE_MODES = ("all", "one_wei", "half", "pct", "zero", "over")
#: docs/design.md §4a: the dust by which a partial step may lower ``E − MMR``.
PARTIAL_BUFFER_DUST = 2


class LiquidationRules(MachineCore):
    """Liquidations (whole, partial, batched) and settlement."""

    def _record_liquidation(self, target: int, result: dict[str, Any]) -> None:
        """Bookkeeping of one whole liquidation the model accepted: its outcome counters, the
        account to check flat afterwards, and the dust it may create."""
        self.liquidated.append((target, result["deficit"]))
        for key in ("deficit", "covered", "socialized", "insurance_fee"):
            if result[key]:
                type(self).outcomes[f"liquidate:{key}"] += 1

    def _liquidate(self, liquidator: int, target: int) -> None:
        t, lq = self.addr[target], self.addr[liquidator]
        taken = len(self.model.markets_of(t))
        out, result = self._run(
            f"liquidate({target}) by {liquidator}",
            lambda: self.model.liquidate(t, lq),
            lq,
            self.w.engine,
            Calls.LIQUIDATE + addr_word(t),
        )
        if out is not None:
            events = liquidation_events(out.logs, self.w.engine)
            expected = [("Liquidated", t.lower(), {k: result[k] for k in _EVENT_FIELDS})]
            expect(events == expected, INV_LIQ_EVENT, lambda: f"events {events}, model {expected}")
            self._record_liquidation(target, result)
            self.dust_bound += 2 * taken + self.w.scale
        self._step()

    @action(weight=2, liquidator=ACTOR, account=ACTOR)
    def liquidate(self, liquidator: int, account: int) -> None:
        """Anyone liquidates anyone: healthy accounts, self-liquidation and poor liquidators must
        be refused exactly as the model says."""
        self._liquidate(liquidator, account)

    @action(
        weight=3, who=R(0, 9), aim=R(0, 9), account=ACTOR, market=MARKET, mode=C(SIZE_MODES), pct=R(1, 99)
    )
    def liquidate_position(self, who: int, aim: int, account: int, market: int, mode: str, pct: int) -> None:
        """A partial step (docs/design.md §4a) by the keeper or anyone, of any size: the whole
        position, 1 wei, half, a percentage, 0 and one wei too many; bankrupt, healthy and flat
        accounts and markets the account does not hold must be refused as the model says. Mostly
        (``aim ≥ 3``) aimed at a liquidatable account and a market it holds, when there is one. An
        accepted step must not lower the account's ``E − MMR`` (``INV-PARTIAL-BUFFER``)."""
        liquidator = KEEPER if who >= 5 else who
        lq = self.addr[liquidator]
        if aim >= 3:
            targets = plan_liquidations(self.model.health_snapshot(self.addr), lq).targets
            if targets:
                account = self.addr.index(targets[(account + aim) % len(targets)])
                held = self.model.markets_of(self.addr[account])
                market = held[market % len(held)]
        t = self.addr[account]
        s = abs(self.model.position(t, market)[0])
        size = {"all": s, "one_wei": 1, "half": s // 2, "pct": s * pct // 100, "zero": 0, "over": s + 1}[mode]
        before = self._buffer(t)
        out, result = self._run(
            f"liquidatePosition({account}, {market}, {size}) by {liquidator}",
            lambda: self.model.liquidate_position(t, market, size, lq),
            lq,
            self.w.engine,
            Calls.LIQUIDATE_POSITION + addr_word(t) + market.to_bytes(32, "big") + size.to_bytes(32, "big"),
        )
        if out is not None:
            events = liquidation_events(out.logs, self.w.engine)
            expected = [("PositionLiquidated", t.lower(), {k: result[k] for k in _PARTIAL_FIELDS})]
            expect(events == expected, INV_LIQ_EVENT, lambda: f"events {events}, model {expected}")
            after = self._buffer(t)
            assert before is not None and after is not None  # both priced: the step read every price
            expect(
                after >= before - PARTIAL_BUFFER_DUST,
                INV_PARTIAL_BUFFER,
                lambda: f"actor {account}: E − MMR {before} -> {after} after {size} of market {market}",
            )
            type(self).outcomes[f"liquidate_position:{mode}"] += 1
            if result["insurance_fee"]:
                type(self).outcomes["liquidate_position:insurance_fee"] += 1
            self.dust_bound += 3  # the two fills' cost roundings, as a trade
        self._step()

    @action(weight=3, who=R(0, 9), a=ACTOR, b=ACTOR, c=ACTOR, d=ACTOR, n=R(0, 4))
    def liquidate_many(self, who: int, a: int, b: int, c: int, d: int, n: int) -> None:
        """A batch (docs/design.md §4b) of up to four accounts, repeats, healthy and flat ones and
        the caller itself included, by the keeper or anyone: one margin check at the end."""
        liquidator = KEEPER if who >= 5 else who
        self._batch(liquidator, [a, b, c, d][:n])

    @action(weight=2, who=R(0, 9))
    def keeper_batch(self, who: int) -> None:
        """The keeper's whole pass as one batch: every target of ``plan_liquidations`` in order."""
        liquidator, targets = self._keeper_targets(who, "keeper_batch")
        if targets:
            self._batch(liquidator, targets)

    def _keeper_targets(self, who: int, kind: str) -> tuple[int, list[int]]:
        """The liquidator (the keeper, or actor ``who`` for ``who < 3``) and its pass's targets in
        ``plan_liquidations`` order; with none, the step is counted idle and ended."""
        liquidator = KEEPER if who >= 3 else who
        plan = plan_liquidations(self.model.health_snapshot(self.addr), self.addr[liquidator])
        if not plan.targets:
            type(self).outcomes[f"{kind}:idle"] += 1
            self._step()
        return liquidator, [self.addr.index(t) for t in plan.targets]

    def _batch(self, liquidator: int, targets: list[int]) -> None:
        accounts, lq = [self.addr[i] for i in targets], self.addr[liquidator]
        taken = {i: len(self.model.markets_of(self.addr[i])) for i in targets}
        out, result = self._run(
            f"liquidateMany({targets}) by {liquidator}",
            lambda: self.model.liquidate_many(accounts, lq),
            lq,
            self.w.engine,
            Calls.LIQUIDATE_MANY + abi_encode(["address[]"], [accounts]),
        )
        if out is None:
            self._step()
            return
        expected = [
            ("LiquidationSkipped", e["account"].lower(), {"equity": e["equity"], "mmr": e["mmr"]})
            if "skipped" in e
            else ("Liquidated", e["account"].lower(), {k: e[k] for k in _EVENT_FIELDS})
            for e in result["entries"]
        ]
        events = liquidation_events(out.logs, self.w.engine)
        expect(events == expected, INV_LIQ_EVENT, lambda: f"events {events}, model {expected}")
        for r in result["liquidated"]:
            target = self.addr.index(r["account"])
            self._record_liquidation(target, r)
            self.dust_bound += 2 * taken[target] + self.w.scale
        type(self).outcomes[f"liquidate_many:{len(result['liquidated'])}of{len(accounts)}"] += 1
        self._step()

    def _buffer(self, account: str) -> int | None:
        """The model's ``E − MMR`` of ``account`` (None if a price it needs is unusable)."""
        try:
            h = self.model.health(account)
        except ModelRevert:
            return None
        return h.equity - h.mmr

    @action(weight=6, who=R(0, 9))
    def keeper(self, who: int) -> None:
        """The keeper's first choice (docs/design.md §4, ``backstop.decisions.plan_liquidations``):
        the most negative ``E − MMR`` first, ties by address."""
        liquidator, targets = self._keeper_targets(who, "keeper")
        if targets:
            self._liquidate(liquidator, targets[0])

    @action(weight=2, sender=ACTOR, account=ACTOR)
    def settle(self, sender: int, account: int) -> None:
        t = self.addr[account]
        self._run(
            f"settle({account}) by {sender}",
            lambda: self.model.settle(t),
            self.addr[sender],
            self.w.engine,
            Calls.SETTLE + addr_word(t),
        )
        self._step()
