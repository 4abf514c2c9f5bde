"""The engine's liquidation rule: docs/margin-math.md §Liquidation, read top to bottom as the waterfall."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backstop.model.base import key_of
from backstop.model.fund import FundRules
from backstop.model.math import LONG, SHORT, ceil_div, mul_wad_down, mul_wad_floor, mul_wad_up, side_of
from backstop.model.rollback import atomic
from backstop.model.state import ModelRevert
from backstop.model.trading import TradingRules
from backstop.units import WAD


class LiquidationRules(TradingRules, FundRules):
    """``liquidate``: the fund covers what the account cannot, the rest is socialized; its batch
    ``liquidate_many``; and the partial step ``liquidate_position`` for solvent accounts."""

    @atomic
    def liquidate(self, account: str, liquidator: str) -> dict[str, Any]:
        """``liquidate(account)`` sent by ``liquidator``: docs/margin-math.md §Liquidation, steps 1-8.

        Returns the figures of the ``Liquidated`` event (WAD): ``notional`` Σ n_m, ``keeper_reward``
        K, ``insurance_fee`` F_if, ``deficit`` D (0 if none), ``covered`` (cover tokens · SCALE),
        ``socialized`` R, and ``index_deltas``: ``(market_id, side, R_m, ΔL)`` per ``LossSocialized``.
        """
        result = self._liquidate(account, liquidator)
        if "skipped" in result:
            raise ModelRevert("NotLiquidatable", account, result["equity"], result["mmr"])
        self._check_liquidator(liquidator)
        return result

    @atomic
    def liquidate_many(self, accounts: Sequence[str], liquidator: str) -> dict[str, Any]:
        """``liquidateMany(accounts)`` sent by ``liquidator`` (docs/design.md §4b): :meth:`liquidate`
        for each account in order, without its margin check; an account that is not liquidatable
        when its turn comes (healthy, flat, or listed again) is skipped. Then one ``E ≥ IMR``
        check of the liquidator, if anything was liquidated.

        Returns ``entries``: per listed account, in order, its :meth:`liquidate` result or
        ``{"skipped": True, "equity": E, "mmr": MMR}`` (``LiquidationSkipped``), each with its
        ``account``; ``liquidated``: the entries of the accounts liquidated; ``skipped``:
        ``(account, equity, mmr)`` of the others.
        """
        if not accounts:
            raise ModelRevert("EmptyBatch")
        entries = [{"account": account, **self._liquidate(account, liquidator)} for account in accounts]
        liquidated = [e for e in entries if "skipped" not in e]
        if liquidated:
            self._check_liquidator(liquidator)
        skipped = [(e["account"], e["equity"], e["mmr"]) for e in entries if "skipped" in e]
        return {"entries": entries, "liquidated": liquidated, "skipped": skipped}

    @atomic
    def liquidate_position(self, account: str, market_id: int, size: int, liquidator: str) -> dict[str, Any]:
        """``liquidatePosition(account, marketId, size)`` sent by ``liquidator`` (docs/design.md
        §4a, docs/margin-math.md §"Partial liquidation"): a reducing fill of ``size`` at the oracle
        price for the account, ``K = min(N·keeperRewardRatio, cap)`` with ``N = size·P`` rounded
        up, the fee ``min(N·insuranceFeeRatio, E₁)`` in whole token units (down), and the
        liquidator's takeover and ``E ≥ IMR`` check.

        Returns the figures of ``PositionLiquidated`` (WAD): ``market``, ``size``, ``price``,
        ``keeper_reward``, ``insurance_fee``.
        """
        if key_of(liquidator) == key_of(account):
            raise ModelRevert("SelfLiquidation", account)
        params = self._market(market_id).params
        acct = self._touch(account)
        h = self._health(acct)
        if not acct.positions or h.equity >= h.mmr:
            raise ModelRevert("NotLiquidatable", account, h.equity, h.mmr)
        pos = acct.positions.get(market_id)
        if pos is None:
            raise ModelRevert("NoPositionInMarket", account, market_id)
        if size == 0 or size > abs(pos.size):
            raise ModelRevert("InvalidLiquidationSize", account, market_id, size, abs(pos.size))

        price = self._price(market_id)
        delta = -size if pos.size > 0 else size
        self._apply_fill(acct, market_id, delta, price)  # realized PnL into margin
        notional = mul_wad_up(size, price)
        keeper = min(mul_wad_down(notional, params.keeper_reward_ratio), params.keeper_reward_cap)
        acct.margin -= keeper
        # E₁: equity after realizing and paying K; a partial step must leave the account solvent
        equity_after = self._health(acct).equity
        if equity_after < 0:
            raise ModelRevert("PartialLiquidationBankrupt", account, equity_after)
        fee_tokens = min(mul_wad_down(notional, params.insurance_fee_ratio), equity_after) // self.scale
        acct.margin -= fee_tokens * self.scale

        liq = self._touch(liquidator)
        self._apply_fill(liq, market_id, -delta, price)
        if len(liq.positions) > self.MAX_MARKETS_PER_ACCOUNT:
            raise ModelRevert("TooManyMarkets", liquidator)
        liq.margin += keeper
        self._pay_fee(fee_tokens)
        self._check_liquidator(liquidator)
        return {
            "market": market_id,
            "size": size,
            "price": price,
            "keeper_reward": keeper,
            "insurance_fee": fee_tokens * self.scale,
        }

    def _check_liquidator(self, liquidator: str) -> None:
        """The liquidator must end with ``E ≥ IMR`` (step 8)."""
        lh = self._health(self._account(liquidator))
        if lh.equity < lh.imr:
            raise ModelRevert("InsufficientMargin", liquidator, lh.equity, lh.imr)

    def _pay_fee(self, fee_tokens: int) -> None:
        """The vault books an insurance fee to the fund's credit (inside its ledger call)."""
        if fee_tokens:
            self._book_fees(fee_tokens)

    def _liquidate(self, account: str, liquidator: str) -> dict[str, Any]:
        """Steps 1-7 of :meth:`liquidate` (not atomic: its callers are). An account that is not
        liquidatable is only touched: ``{"skipped": True, "equity": E, "mmr": MMR}``."""
        # 1. not by itself (checked first, before anything is read); touch; liquidatable, which
        #    needs fresh prices for all its markets (a flat account needs none)
        if key_of(liquidator) == key_of(account):
            raise ModelRevert("SelfLiquidation", account)
        acct = self._touch(account)
        h = self._health(acct)  # StalePrice for the first stale market of the account's list
        if not acct.positions or h.equity >= h.mmr:
            return {"skipped": True, "equity": h.equity, "mmr": h.mmr}

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
            self._pay_cover(cover_tokens)
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
        # of the vault: after the takeover, before the liquidator's margin check (the caller's).
        self._pay_fee(fee_tokens)
        return {
            "notional": sum(notionals),
            "keeper_reward": keeper,
            "insurance_fee": fee,
            "deficit": deficit,
            "covered": covered,
            "socialized": socialized,
            "index_deltas": index_deltas,
        }
