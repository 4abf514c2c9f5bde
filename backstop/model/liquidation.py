"""The engine's liquidation rule: docs/margin-math.md §Liquidation, read top to bottom as the waterfall."""

from __future__ import annotations

from typing import Any

from backstop.model.base import key_of
from backstop.model.fund import FundRules
from backstop.model.math import LONG, SHORT, ceil_div, mul_wad_down, mul_wad_floor, mul_wad_up, side_of
from backstop.model.rollback import atomic
from backstop.model.state import ModelRevert
from backstop.model.trading import TradingRules
from backstop.units import WAD


class LiquidationRules(TradingRules, FundRules):
    """``liquidate``: the fund covers what the account cannot, the rest is socialized."""

    @atomic
    def liquidate(self, account: str, liquidator: str) -> dict[str, Any]:
        """``liquidate(account)`` sent by ``liquidator``: docs/margin-math.md §Liquidation, steps 1-8.

        Returns the figures of the ``Liquidated`` event (WAD): ``notional`` Σ n_m, ``keeper_reward``
        K, ``insurance_fee`` F_if, ``deficit`` D (0 if none), ``covered`` (cover tokens · SCALE),
        ``socialized`` R, and ``index_deltas``: ``(market_id, side, R_m, ΔL)`` per ``LossSocialized``.
        """
        # 1. not by itself (checked first, before anything is read); touch; liquidatable, which
        #    needs fresh prices for all its markets (a flat account needs none)
        if key_of(liquidator) == key_of(account):
            raise ModelRevert("SelfLiquidation", account)
        acct = self._touch(account)
        h = self._health(acct)  # StalePrice for the first stale market of the account's list
        if not acct.positions or h.equity >= h.mmr:
            raise ModelRevert("NotLiquidatable", account, h.equity, h.mmr)

        # 2. close at fair value: realized u_m and notional n_m per market, in market-list order
        taken: list[tuple[int, int, int, int]] = []  # (market_id, size, price, u_m)
        notionals: list[int] = []
        keeper = raw_fee = reward_cap = 0
        for m, pos in acct.positions.items():
            price = self._price(m)
            params = self.markets[m].params
            notional = mul_wad_up(abs(pos.size), price)
            taken.append((m, pos.size, price, mul_wad_floor(pos.size, price) - pos.open_notional))
            notionals.append(notional)
            # 3.-4. keeper reward and the insurance fee's raw amount, each rounded down per market
            keeper += mul_wad_down(notional, params.keeper_reward_ratio)
            raw_fee += mul_wad_down(notional, params.insurance_fee_ratio)
            reward_cap += params.keeper_reward_cap
        # docs/design.md §4 step 1: K = min(Σ n_m·ratio_m, Σ cap_m)
        keeper = min(keeper, reward_cap)
        m0 = acct.margin + sum(u for *_, u in taken)

        # 4. insurance fee in whole token units, capped by what is left after the keeper reward
        fee_tokens = min(raw_fee, max(m0 - keeper, 0)) // self.scale
        fee = fee_tokens * self.scale

        # 5. waterfall: the account keeps m1 ≥ 0, or the fund covers the deficit, then socialize
        m1 = m0 - keeper - fee
        deficit = covered = socialized = 0
        if m1 >= 0:
            acct.margin = m1
        else:
            deficit = -m1
            cover_tokens = min(ceil_div(deficit, self.scale), self.coverable())
            self.fund_tokens -= cover_tokens
            self.vault_tokens += cover_tokens
            covered = cover_tokens * self.scale
            socialized = max(deficit - covered, 0)
            acct.margin = 0

        # 6. socialize R over the losing markets by realized loss (else all markets by notional)
        index_deltas: list[tuple[int, int, int, int]] = []
        if socialized > 0:
            weights = [-u if u < 0 else 0 for *_, u in taken]
            if not any(weights):
                weights = notionals
            total = sum(weights)
            last = max(i for i, w in enumerate(weights) if w > 0)
            charged = 0
            for i, (m, size, _, _) in enumerate(taken):
                if weights[i] == 0:
                    continue
                share = socialized - charged if i == last else socialized * weights[i] // total
                charged += share
                if share == 0:
                    continue
                market = self.markets[m]
                side = SHORT if size > 0 else LONG
                delta = ceil_div(share * WAD, market.open_interest[side])
                market.loss_index[side] += delta
                self.unsettled_loss += share
                index_deltas.append((m, side, share, delta))

        # 7. the liquidator, touched after the index moved, takes every position at P_m; K to it
        liq = self._touch(liquidator)
        for m, size, price, _ in taken:
            del acct.positions[m]
            self.markets[m].open_interest[side_of(size)] -= abs(size)
            self._apply_fill(liq, m, size, price)
            if len(liq.positions) > self.MAX_MARKETS_PER_ACCOUNT:
                raise ModelRevert("TooManyMarkets", liquidator)
        liq.margin += keeper
        # The vault books both accounts in one call, which pays the fee to the fund in tokens out
        # of the vault: after the takeover, before the liquidator's margin check.
        self._check_vault_balance(fee_tokens)
        self.vault_tokens -= fee_tokens
        self.fund_tokens += fee_tokens

        # 8. the liquidator must end with E ≥ IMR
        lh = self._health(liq)
        if lh.equity < lh.imr:
            raise ModelRevert("InsufficientMargin", liquidator, lh.equity, lh.imr)

        return {
            "notional": sum(notionals),
            "keeper_reward": keeper,
            "insurance_fee": fee,
            "deficit": deficit,
            "covered": covered,
            "socialized": socialized,
            "index_deltas": index_deltas,
        }
