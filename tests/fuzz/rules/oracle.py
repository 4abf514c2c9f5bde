"""Oracle and time rules: price moves (where the risk is), "tipping" moves that put an account at
an exact edge, feed ages around the heartbeat, and time steps (also up to a fund exit window)."""

from __future__ import annotations

from backstop.model import ModelRevert, mul_wad_down, mul_wad_up
from backstop.units import WAD
from tests.fuzz.core import MachineCore
from tests.fuzz.dsl import C, R, action
from tests.fuzz.lens import PART_PRICES
from tests.fuzz.params import MARKET, MOVES_BPS, TIME_STEPS, TIP_TARGETS
from tests.fuzz.world import FEED_UNIT, MARKETS, N_ACTORS, Calls, word


class OracleRules(MachineCore):
    """Feed answers, feed ages and the clock."""

    def _risky_market(self, market: int) -> int:
        """``market`` if it is a market id; above that, the market with the most open notional
        (prices are moved where the risk is)."""
        if market < len(MARKETS):
            return market
        return max(range(len(MARKETS)), key=lambda m: (self.model.open_interest(m) * self.prices[m], -m))

    @action(weight=5, market=R(0, 2 * len(MARKETS) - 1), move=C(MOVES_BPS))
    def move_price(self, market: int, move: int) -> None:
        """A fresh oracle answer ``move`` basis points away (crashes, spikes), on the feed grid."""
        market = self._risky_market(market)
        old = self.prices[market]
        if (move < 0 and old <= self.price_min[market]) or (move > 0 and old >= self.price_max[market]):
            move = -move
        self._set_price(market, max(old * (10_000 + move) // 10_000 // FEED_UNIT * FEED_UNIT, FEED_UNIT))
        self._step(need=PART_PRICES)

    def _set_price(self, market: int, price: int) -> None:
        """A fresh feed answer (on the feed grid) on chain and in the model."""
        self._admin(self.w.feeds[market], Calls.SET_ANSWER + word(price // FEED_UNIT))
        self.model.set_price(market, price)
        self.prices[market] = price
        self.updated[market] = self.now

    @action(weight=3, who=R(0, 2 * N_ACTORS - 1), pick=R(0, 7), target=C((*TIP_TARGETS, "fee")))
    def tip(self, who: int, pick: int, target: str) -> None:
        """Moves one market's price to where an account sits exactly at an edge (docs/design.md
        §4): ``edge``, the first feed price at which ``E < MMR`` (liquidatable); ``safe``, the last
        at which ``E ≥ MMR`` (the bound is strict: not liquidatable); ``fee``, where the equity left
        after the keeper reward is half the insurance fee (the fee is capped by it); ``bankrupt``,
        where nothing is left after the reward. ``who`` above the actor range picks the account
        closest to liquidation."""
        i = who if who < N_ACTORS else self._most_leveraged()
        held = self.model.markets_of(self.addr[i]) if i is not None else []
        price = self._tip_price(i, held[pick % len(held)], target) if held else None
        if price is None:
            self._step()
            return
        market = held[pick % len(held)]
        self._set_price(market, price)
        self._step(need=PART_PRICES)

    def _most_leveraged(self) -> int | None:
        best = None
        for i, a in enumerate(self.addr):
            if not self.model.markets_of(a):
                continue
            try:
                h = self.model.health(a)
            except ModelRevert:
                continue
            key = ((h.equity - h.mmr) * WAD // max(h.mmr, 1), i)
            best = min(best, key) if best else key
        return best[1] if best else None

    def _tip_price(self, i: int, market: int, target: str) -> int | None:
        """The feed price of ``market`` that puts actor ``i`` at ``target`` (see :meth:`tip`),
        found by bisection over the feed grid with the model's own valuation."""
        a = self.addr[i]
        size = self.model.position(a, market)[0]
        params = self.model.markets[market].params
        probe = self.model.copy()

        def gap(units: int) -> int | None:
            price = units * FEED_UNIT
            probe.markets[market].price = price
            try:
                h = probe.health(a)
            except ModelRevert:
                return None
            notional = mul_wad_up(abs(size), price)
            reward = mul_wad_down(notional, params.keeper_reward_ratio)
            fee = mul_wad_down(notional, params.insurance_fee_ratio)
            return {
                "edge": h.equity - h.mmr,
                "safe": h.equity - h.mmr,
                "fee": h.equity - reward - fee // 2,
                "bankrupt": h.equity - reward,
            }[target]

        # The gap grows with the price for a long and falls for a short: find the first grid
        # price on the side where it is non-negative.
        lo, hi = 1, self.price_max[market] // FEED_UNIT
        g_lo, g_hi = gap(lo), gap(hi)
        if g_lo is None or g_hi is None or (g_lo >= 0) == (g_hi >= 0):
            return None
        rising = size > 0
        while hi - lo > 1:
            mid = (lo + hi) // 2
            g = gap(mid)
            if g is None:
                return None
            if (g >= 0) == rising:
                hi = mid
            else:
                lo = mid
        # ``hi`` is on the non-negative side for a long, ``lo`` for a short.
        safe, under = (hi, lo) if rising else (lo, hi)
        return (safe if target == "safe" else under) * FEED_UNIT

    @action(weight=1, market=MARKET, mode=R(0, 3))
    def feed_age(self, market: int, mode: int) -> None:
        """Re-dates a feed: stale (heartbeat + 1 old), exactly heartbeat old (still fresh), one
        second younger, or fresh."""
        hb = MARKETS[market].heartbeat
        answer = self.prices[market] // FEED_UNIT
        if mode == 3:
            self._admin(self.w.feeds[market], Calls.SET_ANSWER + word(answer))
            self.updated[market] = self.now
        else:
            at = self.now - hb - (1, 0, -1)[mode]
            self._admin(self.w.feeds[market], Calls.SET_ANSWER_AT + word(answer) + word(at) + word(at))
            self.updated[market] = at
        self._step(need=PART_PRICES)

    @action(weight=2, kind=R(0, len(TIME_STEPS) - 1), refresh=C((0, 1, 1, 1, 1, 1)))
    def advance_time(self, kind: int, refresh: int) -> None:
        """Time passes; usually the oracle keepers then refresh every feed at its price."""
        self._advance(TIME_STEPS[kind], bool(refresh))
        self._step(need=PART_PRICES)

    @action(weight=3, offset=C((-1, 0, 1, 1_800, 3_599, 3_600, 3_601)), refresh=C((0, 1, 1, 1)))
    def wait_for_exit(self, offset: int, refresh: int) -> None:
        """Time passes until the earliest open fund redeem request matures, ``offset`` seconds
        around its window (before it, at its edges, inside, just after it); expired requests
        are left out."""
        last = self.now - self.model.cooldown - self.model.window  # a request from before expired
        pending = [r[2] for a in self.addr if (r := self.model.redeem_request(a)) and r[2] >= last]
        target = min(pending) + self.model.cooldown + offset if pending else self.now
        self._advance(max(target - self.now, 0), bool(refresh))
        self._step(need=PART_PRICES)

    def _advance(self, seconds: int, refresh: bool) -> None:
        self.step_changed = self.step_changed or seconds > 0
        self.now += seconds
        self.b.set_timestamp(self.now)
        if refresh:
            for m in range(len(MARKETS)):
                self._admin(self.w.feeds[m], Calls.SET_ANSWER + word(self.prices[m] // FEED_UNIT))
                self.updated[m] = self.now
