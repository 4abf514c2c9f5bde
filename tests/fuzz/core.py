"""The lockstep core of the fuzz machine: its state, and how one action runs on both sides.

:class:`MachineCore` holds what the machine tracks beside the model (clock, prices, feed ages,
pauses, the order book, nonces, wallets, the dust bound) and runs every action model first: if the
model raises :class:`ModelRevert`, the same call must revert on chain with the custom error of that
name (simulated, so nothing changes); otherwise the transaction must succeed. The rules
(``tests/fuzz/rules/``) and the comparison (``tests/fuzz/compare.py``) are mixins over this core,
combined in ``tests/fuzz/machine.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from hypothesis.stateful import RuleBasedStateMachine

from backstop.chain.evm import Ok, Revert
from backstop.model import ModelRevert
from tests.fuzz.invariants import INV_REVERT_MATCH, fail
from tests.fuzz.lens import ALL_PARTS, PART_PRICES
from tests.fuzz.world import DEPLOYER, MARKETS, N_ACTORS, Signed, World


class MachineCore(RuleBasedStateMachine):
    """The machine's state and lockstep execution (see the module docstring).

    Configure before use: ``world`` (a :class:`World`) and ``full_every`` (1: the whole snapshot
    every step; ``k > 1``: after every step that changed anything, the system, every market and
    every account's core figures, plus the optional lens parts the step may have changed; the whole
    snapshot every ``k`` steps and at the end of a run). See ``Comparison.compare``.
    """

    world: ClassVar[World | None] = None
    full_every: ClassVar[int] = 1
    #: Steps executed by every instance of this class (the throughput counter).
    steps_total: ClassVar[int] = 0
    #: Outcomes by action: ``"trade:ok"``, ``"trade:PriceOutsideBand"``, ``"liquidate:socialized"``...
    outcomes: ClassVar[Counter[str]] = Counter()

    def __init__(self) -> None:
        super().__init__()
        w = type(self).world
        assert w is not None, "BackstopMachine.world is not configured"
        self.w = w
        self.b = w.backend
        self.model = w.reset()
        self.now = self.b.now
        self.model.now = self.now
        self.addr = w.addresses
        self.keys = [a.lower() for a in self.addr]  # the model's account keys
        self.prices = [m.price for m in MARKETS]
        self.updated = [w.genesis_time] * len(MARKETS)
        self.stale = [False] * len(MARKETS)
        self.paused = [False] * len(MARKETS)
        self.global_paused = False
        self.book: list[Signed] = []
        self.nonces = [0] * N_ACTORS
        self.wallets = list(w.genesis_wallets)
        self.dust_bound = 0
        self.steps = 0
        self.program: list[tuple[str, dict[str, Any]]] = []
        self.need = ALL_PARTS  # optional lens parts the next (non-full) check must read
        self.changed = True  # whether anything changed since the last comparison
        self.step_changed = False  # whether the current step changed anything
        self.liquidated: list[tuple[int, int]] = []  # (actor, deficit) per liquidation of the step
        self.price_min = [m.price // 1_000 for m in MARKETS]
        self.price_max = [m.price * 1_000 for m in MARKETS]

    def do(self, action: str, kwargs: dict[str, Any]) -> None:
        """Runs one action and records it in :attr:`program` (what a failure report replays)."""
        self.program.append((action, kwargs))
        try:
            getattr(self, action)(**kwargs)
        except Exception as err:
            self._annotate(err)
            raise

    def _annotate(self, err: BaseException) -> None:
        if not getattr(err, "_fuzz_annotated", False):
            err._fuzz_annotated = True  # type: ignore[attr-defined]
            err.fuzz_program = list(self.program)  # type: ignore[attr-defined]
            lines = ",\n".join(f"    ({name!r}, {kwargs!r})" for name, kwargs in self.program)
            err.add_note(f"replay with tests.fuzz.machine.replay(world, [\n{lines},\n])")

    # --- lockstep execution -------------------------------------------------------------------

    def _sync(self) -> None:
        """Model clock and oracle staleness follow the chain's block time and feed ages."""
        self.model.now = self.now
        for m, cfg in enumerate(MARKETS):
            stale = self.now - self.updated[m] > cfg.heartbeat
            if stale != self.stale[m]:
                self.stale[m] = stale
                self.model.set_stale(m, stale)
                self.need |= PART_PRICES
                self.changed = True

    def _run(
        self, label: str, model_call: Callable[[], Any], sender: str, to: str, data: bytes
    ) -> tuple[Ok | None, Any]:
        """Model first; then the chain must agree: ``(outcome, model value)`` if both accept,
        ``(None, ModelRevert)`` if both reject with the same custom error."""
        self._sync()
        kind = label.split("(", 1)[0]
        try:
            value = model_call()
        except ModelRevert as err:
            expected = err
        else:
            expected = None
        if expected is not None:
            type(self).outcomes[f"{kind}:{expected.name}"] += 1
            out = self.b.call(sender, to, data)
            if not isinstance(out, Revert):
                fail(INV_REVERT_MATCH, f"{label}: model reverts {expected}, chain accepts")
            if out.selector != self.w.errors.get(expected.name):
                fail(
                    INV_REVERT_MATCH,
                    f"{label}: model reverts {expected}, chain reverts {self.w.describe_revert(out.data)}",
                )
            return None, expected
        type(self).outcomes[f"{kind}:ok"] += 1
        self.step_changed = True
        out = self.b.transact(sender, to, data)
        if isinstance(out, Revert):
            fail(
                INV_REVERT_MATCH,
                f"{label}: model accepts, chain reverts {self.w.describe_revert(out.data)}",
            )
        return out, value

    def _admin(self, to: str, data: bytes) -> None:
        """A call that must succeed (oracle and guardian operations)."""
        self.step_changed = True
        out = self.b.transact(DEPLOYER, to, data)
        if isinstance(out, Revert):
            fail(INV_REVERT_MATCH, f"admin call reverted: {self.w.describe_revert(out.data)}")

    def _step(self, need: int = 0) -> None:
        """Ends a rule: counts it and, if it changed anything, marks that the next check must
        compare and which optional lens parts (``need``) it must read. A step that changed nothing
        (its transaction reverted on both sides, or it had nothing to do) leaves both states as
        they were — a reverted transaction changes no EVM state, a model method that raises
        restores its state — so there is nothing new to compare."""
        self.steps += 1
        type(self).steps_total += 1
        if self.step_changed:
            self.need |= need
            self.changed = True
            self.step_changed = False

    # --- helpers -------------------------------------------------------------------------------

    def _free(self, i: int) -> int:
        """The model's free collateral of actor ``i`` (its margin if a price is unusable)."""
        try:
            return self.model.free_collateral(self.addr[i])
        except ModelRevert:
            return self.model.margin(self.addr[i])
