"""Admin and guardian rules: market-parameter updates (valid and out of bounds) and pauses."""

from __future__ import annotations

from tests.fuzz.core import MachineCore
from tests.fuzz.dsl import R, action
from tests.fuzz.lens import PART_PRICES
from tests.fuzz.params import MARKET, PARAM_VARIANTS
from tests.fuzz.world import DEPLOYER, MARKETS, Calls, addr_word, word


class AdminRules(MachineCore):
    """The admin's parameter changes and the guardian's pauses."""

    @action(weight=1, market=MARKET, variant=R(0, len(PARAM_VARIANTS) - 1))
    def update_market(self, market: int, variant: int) -> None:
        """The admin changes a market's risk and fee parameters (same feed and heartbeat): back to
        its listing values, tighter or looser requirements, other fees and caps, or values outside
        the hard bounds (``InvalidMarketParam``). Requirements change at once for every holder."""
        params = PARAM_VARIANTS[variant](MARKETS[market].params)
        cfg = MARKETS[market]
        data = Calls.UPDATE_MARKET + word(market) + addr_word(self.w.feeds[market]) + word(cfg.heartbeat)
        data += b"".join(
            word(x)
            for x in (
                params.im_ratio,
                params.mm_ratio,
                params.keeper_reward_ratio,
                params.insurance_fee_ratio,
                params.price_band_ratio,
                params.maker_fee_ratio,
                params.taker_fee_ratio,
                params.oi_cap,
            )
        )
        self._run(
            f"updateMarket({market}, variant {variant})",
            lambda: self.model.set_params(market, params),
            DEPLOYER,
            self.w.engine,
            data,
        )
        self._step()

    @action(weight=2, kind=R(0, 11), market=MARKET)
    def pause(self, kind: int, market: int) -> None:
        """Pauses a market (kind 0) or all trading (1), or resumes everything (2-11), so pauses
        are episodes rather than the norm. Liquidation, settlement and withdrawals go on."""
        if kind == 0:
            self._admin(self.w.engine, Calls.PAUSE_MARKET + word(market) + word(1))
            self.model.set_paused(market, True)
            self.paused[market] = True
        elif kind == 1:
            self._admin(self.w.engine, Calls.PAUSE_GLOBAL + word(1))
            self.model.set_global_paused(True)
            self.global_paused = True
        else:
            for m in range(len(MARKETS)):
                if self.paused[m]:
                    self._admin(self.w.engine, Calls.PAUSE_MARKET + word(m) + word(0))
                    self.model.set_paused(m, False)
                    self.paused[m] = False
            if self.global_paused:
                self._admin(self.w.engine, Calls.PAUSE_GLOBAL + word(0))
                self.model.set_global_paused(False)
                self.global_paused = False
        self._step(need=PART_PRICES)
