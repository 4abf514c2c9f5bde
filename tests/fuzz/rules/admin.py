"""Admin and guardian rules: timelocked market-parameter changes (valid and out of bounds),
cancellations, instant open-interest cap cuts and pauses."""

from __future__ import annotations

from backstop.model.engine import EXECUTION_WINDOW
from tests.fuzz.core import MachineCore
from tests.fuzz.dsl import R, action
from tests.fuzz.lens import PART_PRICES
from tests.fuzz.params import MARKET, PARAM_VARIANTS
from tests.fuzz.world import DEPLOYER, MARKETS, Calls, addr_word, word


class AdminRules(MachineCore):
    """The admin's parameter changes and the guardian's pauses."""

    @action(weight=1, market=MARKET, variant=R(0, len(PARAM_VARIANTS) - 1))
    def schedule_update(self, market: int, variant: int) -> None:
        """The admin schedules a change of a market's risk and fee parameters (same feed and
        heartbeat): back to its listing values, tighter or looser requirements, other fees and
        caps, or values outside the hard bounds (``InvalidMarketParam``, refused at once). A second
        schedule while one is live reverts ``UpdateAlreadyScheduled``."""
        params = PARAM_VARIANTS[variant](MARKETS[market].params)
        cfg = MARKETS[market]
        data = Calls.SCHEDULE_UPDATE + word(market) + addr_word(self.w.feeds[market]) + word(cfg.heartbeat)
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
                params.keeper_reward_cap,
            )
        )
        out, _ = self._run(
            f"scheduleMarketUpdate({market}, variant {variant})",
            lambda: self.model.schedule_market_update(market, params),
            DEPLOYER,
            self.w.engine,
            data,
        )
        if out is not None:  # an impatient admin: executing in the same block is UpdateNotReady
            self._run(
                f"executeMarketUpdate({market}) at once",
                lambda: self.model.execute_market_update(market),
                DEPLOYER,
                self.w.engine,
                Calls.EXECUTE_UPDATE + word(market),
            )
        self._step()

    @action(weight=2, market=MARKET, wait=R(0, 3))
    def execute_update(self, market: int, wait: int) -> None:
        """The admin executes a scheduled change (a market with one, if any), after waiting:
        nothing (0: ``UpdateNotReady``), until the eta (1), or past the execution window (2:
        ``UpdateExpired``); 3 executes a market with no change (``NoUpdateScheduled``). Requirements
        then change for every holder at once."""
        pending = sorted(self.model.scheduled)
        if pending and wait != 3:
            market = pending[market % len(pending)]
            eta = self.model.scheduled[market][1]
            target = (self.now, eta, eta + EXECUTION_WINDOW + 1)[wait]
            if target > self.now:
                self._advance(target - self.now, True)  # type: ignore[attr-defined]  # OracleRules
        self._run(
            f"executeMarketUpdate({market})",
            lambda: self.model.execute_market_update(market),
            DEPLOYER,
            self.w.engine,
            Calls.EXECUTE_UPDATE + word(market),
        )
        self._step(need=PART_PRICES)

    @action(weight=1, market=MARKET, lower=R(0, 3))
    def guard_market(self, market: int, lower: int) -> None:
        """The guardian cancels a market's scheduled change (``lower`` 0), or lowers its
        open-interest cap at once to a half, a tenth or 1 wei below (1-3); the engine refuses a
        cap that is not lower (``InvalidMarketParam``)."""
        if lower == 0:
            label, model_call = (
                f"cancelMarketUpdate({market})",
                lambda: self.model.cancel_market_update(market),
            )
            data = Calls.CANCEL_UPDATE + word(market)
        else:
            cap = self.model.markets[market].params.oi_cap
            new = (cap // 2, cap // 10, cap - 1)[lower - 1]
            label = f"lowerOpenInterestCap({market}, {new})"
            model_call = lambda: self.model.lower_open_interest_cap(market, new)  # noqa: E731
            data = Calls.LOWER_OI_CAP + word(market) + word(new)
        self._run(label, model_call, DEPLOYER, self.w.engine, data)
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
