"""Exact-integer reference model of the collateral vault, the margin engine and the insurance fund.

The executable spec of docs/design.md §2-§6 and §9, with the rounding of docs/margin-math.md bit for bit:
Python ints only, money and prices in WAD, sizes in signed WAD base units, token amounts in the
token's own units (``SCALE = 10**(18 - decimals)`` WAD each).

Every mutating method is a transaction: if it raises :class:`ModelRevert` (a Solidity custom error,
same name) the model is left exactly as it was, as a reverted call leaves the chain.

Socialized loss is kept as per-market, per-side cumulative indices ``L[m][LONG|SHORT]`` (WAD loss per
WAD of size) and a per-position snapshot. :meth:`Model.liquidate` raises an index when the insurance
fund cannot cover a deficit; touching an account (trade, withdraw, liquidation, ``settle``) moves
``mulWadUp(|size|, L - snapshot)`` from its margin and resets the snapshot. The signed running total
``unsettled_loss`` (+R_m at socialization, -s at each settlement) makes the solvency identity O(1).

The insurance fund is an ERC-4626 vault (OpenZeppelin 5.1 math, decimals offset 6) whose assets are
``fund_tokens + fund_credit`` (fees are booked as a credit in the vault, ``sweep_to_fund`` moves it); stakers exit by EIP-7540 asynchronous redemption: ``request_unstake`` escrows the
shares -> cooldown -> ``unstake``/``fund_withdraw`` inside a window, paid ``min(value at request,
value at exit)``; or ``cancel_unstake`` (docs/design.md §6). Stakers' wallets are not modelled.
"""

from __future__ import annotations

import copy
import dataclasses

from backstop.model.liquidation import LiquidationRules
from backstop.model.math import LONG, MAX_VALUE, SHORT
from backstop.model.rollback import atomic
from backstop.model.state import MAX_KEEPER_REWARD_CAP, Market, MarketParams, ModelRevert
from backstop.units import WAD

#: How long a scheduled change stays executable after its eta (``UpdateTimelock.EXECUTION_WINDOW``).
EXECUTION_WINDOW = 14 * 86400


class Model(LiquidationRules):
    """The vault + margin engine in exact integers. Accounts are address strings (case-insensitive)."""

    # --- admin, oracle and test hooks -------------------------------------------------------------

    @atomic
    def add_market(self, params: MarketParams, price_wad: int) -> int:
        """Lists a market at oracle price ``price_wad``; ids count from 0."""
        self._check_params(params)
        if price_wad <= 0:
            raise ValueError("price must be positive")
        self.markets.append(Market(params=copy.copy(params), price=price_wad))
        return len(self.markets) - 1

    @atomic
    def set_params(self, market_id: int, params: MarketParams) -> None:
        """Applies ``params`` at once: the engine's ``executeMarketUpdate`` (and a test hook)."""
        self._check_params(params)
        self._market(market_id).params = copy.copy(params)

    @atomic
    def schedule_market_update(self, market_id: int, params: MarketParams) -> int:
        """``scheduleMarketUpdate``: checked now, executable from ``now + params_delay``; one per
        market unless the earlier one has expired. Returns the eta."""
        self._market(market_id)
        self._check_params(params)
        pending = self.scheduled.get(market_id)
        if pending is not None and self.now <= pending[1] + EXECUTION_WINDOW:
            raise ModelRevert("UpdateAlreadyScheduled", market_id, pending[1])
        eta = self.now + self.params_delay
        self.scheduled[market_id] = (copy.copy(params), eta)
        return eta

    @atomic
    def execute_market_update(self, market_id: int) -> None:
        """``executeMarketUpdate``: from the eta, for ``EXECUTION_WINDOW`` seconds."""
        pending = self.scheduled.get(market_id)
        if pending is None:
            raise ModelRevert("NoUpdateScheduled", market_id)
        params, eta = pending
        if self.now < eta:
            raise ModelRevert("UpdateNotReady", market_id, eta, self.now)
        if self.now > eta + EXECUTION_WINDOW:
            raise ModelRevert("UpdateExpired", market_id, eta + EXECUTION_WINDOW, self.now)
        del self.scheduled[market_id]
        self._market(market_id).params = copy.copy(params)

    @atomic
    def cancel_market_update(self, market_id: int) -> None:
        """``cancelMarketUpdate`` (admin or guardian), expired or not."""
        if market_id not in self.scheduled:
            raise ModelRevert("NoUpdateScheduled", market_id)
        del self.scheduled[market_id]

    @atomic
    def lower_open_interest_cap(self, market_id: int, cap: int) -> None:
        """``lowerOpenInterestCap`` (guardian, instant): ``0 < cap <`` the current cap."""
        market = self._market(market_id)
        if not 0 < cap < market.params.oi_cap:
            raise ModelRevert("InvalidMarketParam", "openInterestCap", cap)
        market.params = dataclasses.replace(market.params, oi_cap=cap)  # never in place: copies share params

    # set_price and set_stale check everything before their one write, so they need no rollback
    # (and skip atomic's copy of the whole state: the stress runner calls them every step).
    def set_price(self, market_id: int, price_wad: int) -> None:
        if price_wad <= 0:
            raise ValueError("price must be positive")
        self._market(market_id).price = price_wad

    def set_stale(self, market_id: int, stale: bool) -> None:
        self._market(market_id)
        if stale:
            self.stale.add(market_id)
        else:
            self.stale.discard(market_id)

    @atomic
    def set_paused(self, market_id: int, paused: bool) -> None:
        self._market(market_id).paused = paused

    def set_global_paused(self, paused: bool) -> None:
        self.paused_global = paused

    @atomic
    def bump_loss_index(self, market_id: int, side: int, delta: int) -> None:
        """Test hook: ``L[market_id][side] += delta`` (WAD loss per WAD of size, delta ≥ 0).

        Deprecated: only real liquidations socialize losses now. The bump moves the index and nothing
        else (``unsettled_loss`` is untouched), so the loss it creates has no counterpart anywhere:
        when settled it leaves margins and ``unsettled_loss`` by the same amount, so ``solvency()``
        stays an exact identity with unchanged dust, but it no longer means "every liability is
        funded" for the bumped amount. There is no such hook on chain.
        """
        if side not in (LONG, SHORT) or delta < 0:
            raise ValueError("side must be LONG or SHORT and delta non-negative")
        self._market(market_id).loss_index[side] += delta

    # --- internals --------------------------------------------------------------------------------

    @staticmethod
    def _check_params(params: MarketParams) -> None:
        """The admin's hard bounds (docs/design.md §10), in the engine's order: ``InvalidMarketParam``."""
        mm = params.mm_ratio
        keeper = params.keeper_reward_ratio
        bounds = (
            ("mmRatio", mm, mm > 0),
            ("imRatio", params.im_ratio, mm < params.im_ratio <= WAD),
            ("keeperRewardRatio", keeper, 0 <= keeper <= mm),
            ("insuranceFeeRatio", params.insurance_fee_ratio, 0 <= params.insurance_fee_ratio <= mm - keeper),
            ("makerFeeRatio", params.maker_fee_ratio, 0 <= params.maker_fee_ratio < mm),
            ("takerFeeRatio", params.taker_fee_ratio, 0 <= params.taker_fee_ratio < mm),
            ("priceBandRatio", params.price_band_ratio, 0 < params.price_band_ratio < WAD),
            ("openInterestCap", params.oi_cap, 0 < params.oi_cap <= MAX_VALUE),
            (
                "keeperRewardCap",
                params.keeper_reward_cap,
                0 < params.keeper_reward_cap <= MAX_KEEPER_REWARD_CAP,
            ),
        )
        for name, value, ok in bounds:
            if not ok:
                raise ModelRevert("InvalidMarketParam", name, value)
