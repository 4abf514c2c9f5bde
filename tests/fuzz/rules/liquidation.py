"""Liquidation rules: liquidations by anyone of anyone, the keeper's first choice, settlement."""

from __future__ import annotations

from backstop.decisions import plan_liquidations
from tests.fuzz.core import MachineCore
from tests.fuzz.dsl import R, action
from tests.fuzz.invariants import INV_LIQ_EVENT, expect
from tests.fuzz.params import ACTOR
from tests.fuzz.world import KEEPER, Calls, addr_word, liquidated_event

#: The fields of the ``Liquidated`` event, as the model's result names them.
_EVENT_FIELDS = ("notional", "keeper_reward", "insurance_fee", "deficit", "covered", "socialized")


class LiquidationRules(MachineCore):
    """Liquidations and settlement."""

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
            event = liquidated_event(out.logs, self.w.engine)
            expected = {k: result[k] for k in _EVENT_FIELDS}
            expect(
                event == expected,
                INV_LIQ_EVENT,
                lambda: f"Liquidated event {event}, model {expected}",
            )
            self.liquidated = (target, result["deficit"])
            for key in ("deficit", "covered", "socialized", "insurance_fee"):
                if result[key]:
                    type(self).outcomes[f"liquidate:{key}"] += 1
            self.dust_bound += 2 * taken + self.w.scale
        self._step()

    @action(weight=2, liquidator=ACTOR, account=ACTOR)
    def liquidate(self, liquidator: int, account: int) -> None:
        """Anyone liquidates anyone: healthy accounts, self-liquidation and poor liquidators must
        be refused exactly as the model says."""
        self._liquidate(liquidator, account)

    @action(weight=6, who=R(0, 9))
    def keeper(self, who: int) -> None:
        """The keeper's first choice (docs/design.md §4, ``backstop.decisions.plan_liquidations``):
        the most negative ``E − MMR`` first, ties by address."""
        liquidator = KEEPER if who >= 3 else who
        plan = plan_liquidations(self.model.health_snapshot(self.addr), self.addr[liquidator])
        if not plan.targets:
            type(self).outcomes["keeper:idle"] += 1
            self._step()
            return
        self._liquidate(liquidator, self.addr.index(plan.targets[0]))

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
