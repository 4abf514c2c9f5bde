"""``sweepToFund``: anyone moves the insurance fund's credit (fees booked in the vault) to the fund.

Its own mixin, listed first in ``BackstopMachine``'s bases, so that ``sweep_to_fund`` is the last
action of the sampling order, after ``fill_order``: every earlier action keeps its index
(tests/fuzz/test_harness_tables.py).
"""

from __future__ import annotations

from tests.fuzz.core import MachineCore
from tests.fuzz.dsl import action
from tests.fuzz.invariants import INV_FUND_CREDIT, expect
from tests.fuzz.lens import PART_SYSTEM_DETAIL
from tests.fuzz.params import ACTOR
from tests.fuzz.world import Calls


class SweepRules(MachineCore):
    """The permissionless sweep of the fund's credit."""

    @action(weight=1, who=ACTOR)
    def sweep_to_fund(self, who: int) -> None:
        """``vault.sweepToFund()`` sent by any actor: the credit becomes the fund's tokens; the
        fund's assets, and so its share price, stay exactly as they were (``NothingToSweep`` when
        there is no credit)."""
        a = self.addr[who]
        assets, value = self.model.fund_assets(), self.model.convert_to_assets(10**18)
        out, _ = self._run(f"sweepToFund(by {who})", self.model.sweep_to_fund, a, self.w.vault, Calls.SWEEP)
        if out is not None:
            after = (self.model.fund_credit, self.model.fund_assets(), self.model.convert_to_assets(10**18))
            expect(
                after == (0, assets, value),
                INV_FUND_CREDIT,
                lambda: f"after a sweep (credit, assets, value of 1e18 shares) {after}, before {(assets, value)}",
            )
        self._step(need=PART_SYSTEM_DETAIL)
