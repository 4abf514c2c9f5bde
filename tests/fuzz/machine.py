"""The stateful differential fuzz machine: the whole protocol against ``backstop/model/``.

One :class:`BackstopMachine` (a hypothesis ``RuleBasedStateMachine``) drives a deployed suite
(:class:`tests.fuzz.world.World`, on any :class:`backstop.chain.evm.Backend`) and the reference model in
lockstep. Every rule is one protocol action — deposits, withdrawals (valid and not), signed trades
of random sizes and prices inside and outside the band (with expired, cancelled, mis-signed,
over-filled and nonce-invalidated orders), partial fills of resting orders, price moves including
crashes and spikes, stale and boundary-age oracles, time, liquidations by random accounts and by a
keeper, ``settle``, insurance-fund stake / request / redeem / withdraw, donations, sweeps of the
fund's credit, market parameter updates and pauses.

The machine is assembled from mixins over :class:`tests.fuzz.core.MachineCore` (the state and the
lockstep execution: model first, then the chain must agree):

- ``tests/fuzz/rules/``: the rules by area — trading, oracle, liquidation, fund, admin;
- ``tests/fuzz/compare.py`` (with ``predict.py``): :meth:`~Comparison.check` after every step,
  the chain's lens snapshot against the model, with the invariant IDs of
  ``tests/fuzz/invariants.py`` (docs/invariants.md).

Rules are declared with :func:`tests.fuzz.dsl.action`, which records integer parameter ranges and
a weight once and derives both the hypothesis strategies (CI profile) and the seeded draws of the
deep driver (``tests/fuzz/driver.py``): one machine, two drivers, any backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

from tests.fuzz.compare import Comparison
from tests.fuzz.dsl import C, R, actions_of, weighted_action_names
from tests.fuzz.rules.admin import AdminRules
from tests.fuzz.rules.fill import FillRules
from tests.fuzz.rules.fund import FundRules
from tests.fuzz.rules.liquidation import LiquidationRules
from tests.fuzz.rules.oracle import OracleRules
from tests.fuzz.rules.sweep import SweepRules
from tests.fuzz.rules.trading import TradingRules
from tests.fuzz.world import World

#: The machine's failure type (``tools/mutation.py`` reads its ``inv``).
__all__ = ["BackstopMachine", "replay"]


# The areas are listed last first: ``actions_of`` reads the classes from the base up, so the actions
# come out in the order trading, oracle, liquidation, fund, admin — the order both drivers sample
# from, which fixes every pinned run (``test_harness_tables.py`` pins it). ``fill_order`` and then
# ``sweep_to_fund`` were appended later, each in a mixin listed first, so earlier indices stay.
class BackstopMachine(
    SweepRules, FillRules, AdminRules, FundRules, LiquidationRules, OracleRules, TradingRules, Comparison
):
    """Protocol actions against the chain and the model; :meth:`check` after every step.

    Configure before use: ``BackstopMachine.world`` (a :class:`World`) and ``full_every`` (see
    :class:`tests.fuzz.core.MachineCore`).
    """

    @rule(
        action=st.deferred(lambda: st.sampled_from(weighted_action_names(BackstopMachine))),
        data=st.data(),
    )
    def step(self, action: str, data: st.DataObject) -> None:
        """One protocol action, picked by weight, with its parameters drawn from its declaration.
        (One rule rather than one per action: hypothesis would otherwise switch random subsets of
        actions off per example, and a liquidation needs trades, price moves and a keeper.)"""
        params = _PARAMS[action]
        self.do(action, {name: data.draw(p.strategy(), label=name) for name, p in params.items()})


_PARAMS: dict[str, dict[str, R | C]] = {name: params for name, _, params in actions_of(BackstopMachine)}


def replay(world: World, steps: Sequence[tuple[str, dict[str, Any]]], full_every: int = 1) -> BackstopMachine:
    """Runs a recorded sequence of ``(rule, arguments)`` on a fresh machine, checking after every
    step; used by the regression tests and to reproduce deep-run failures."""
    BackstopMachine.world = world
    BackstopMachine.full_every = full_every
    machine = BackstopMachine()
    machine.check()
    for name, kwargs in steps:
        machine.do(name, kwargs)
        machine.check()
    machine.teardown()
    return machine
