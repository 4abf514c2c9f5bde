"""The engine's trading and margin rules: deposits and withdrawals, order checks, matching, and the
fill arithmetic of docs/margin-math.md §"A fill"."""

from __future__ import annotations

from backstop.model.base import ModelBase, key_of
from backstop.model.math import (
    LONG,
    MAX_VALUE,
    ceil_div,
    mul_div_ceil,
    mul_wad_ceil,
    mul_wad_down,
    mul_wad_up,
    side_of,
)
from backstop.model.rollback import atomic
from backstop.model.state import AccountState, Market, ModelRevert, Position
from backstop.orders import Order, order_struct_hash


class TradingRules(ModelBase):
    """Margin in and out of the vault, orders, and matching."""

    @atomic
    def deposit(self, account: str, amount_tokens: int) -> None:
        """Credits ``amount_tokens · SCALE`` WAD of margin. Does not touch the account."""
        self._check_amount(amount_tokens)
        self._account(account).margin += amount_tokens * self.scale
        self.vault_tokens += amount_tokens

    @atomic
    def withdraw(self, account: str, amount_tokens: int) -> None:
        """Touches the account, then requires ``amount_tokens · SCALE ≤ F`` and debits it.

        The vault then transfers the tokens, which its own part (its tokens beyond the fund's
        credit) must hold (``InsufficientVaultTokens`` otherwise): realized profit is funded by the
        losers' margin, so while a bankrupt account awaits liquidation the vault can hold less than
        a winner's free collateral.
        """
        self._check_amount(amount_tokens)
        acct = self._touch(account)
        amount_wad = amount_tokens * self.scale
        free = self._health(acct).free_collateral
        if amount_wad > free:
            raise ModelRevert("InsufficientFreeCollateral", account, amount_wad, free)
        self._check_vault_balance(amount_tokens)
        acct.margin -= amount_wad
        self.vault_tokens -= amount_tokens

    @atomic
    def settle(self, account: str) -> None:
        """Touches ``account``: settles its pending socialized loss into its margin."""
        self._touch(account)

    # --- orders -----------------------------------------------------------------------------------

    @atomic
    def cancel(self, account: str, order: Order | bytes) -> None:
        """``account`` cancels an order hash (for itself: cancelling another's hash has no effect)."""
        order_hash = order if isinstance(order, bytes) else order_struct_hash(order)
        self.cancelled.add((key_of(account), order_hash))

    @atomic
    def set_min_nonce(self, account: str, nonce: int) -> None:
        """Invalidates every order of ``account`` with a nonce below ``nonce`` (strictly increasing)."""
        acct = self._account(account)
        if nonce <= acct.min_nonce:
            raise ModelRevert("NonceNotIncreasing", acct.min_nonce, nonce)
        acct.min_nonce = nonce

    @atomic
    def match(self, maker: Order, maker_signer_ok: bool, taker: Order, taker_signer_ok: bool, q: int) -> None:
        """``matchOrders``: fills ``q`` WAD base units between two orders at the maker's limit price.

        Checks run in the order of docs/margin-math.md; the first failure names the revert.
        """
        market = self._check_fill(maker, taker.market_id, taker.is_buy, taker.account, q)
        hashes = [
            self._check_order(o, ok, q) for o, ok in ((maker, maker_signer_ok), (taker, taker_signer_ok))
        ]
        p = maker.limit_price
        if (taker.limit_price < p) if taker.is_buy else (taker.limit_price > p):
            raise ModelRevert("PriceIncompatible", p, taker.limit_price)
        self._fill(market, maker, taker.account, hashes, q)

    @atomic
    def fill_order(self, order: Order, signer_ok: bool, taker: str, q: int) -> None:
        """``fillOrder`` sent by ``taker``: fills ``q`` of the maker's ``order`` at its limit price,
        the taker on the other side with no order of its own (so no taker checks and no
        ``PriceIncompatible``); otherwise exactly :meth:`match`."""
        market = self._check_fill(order, order.market_id, not order.is_buy, taker, q)
        self._fill(market, order, taker, [self._check_order(order, signer_ok, q)], q)

    def _check_fill(self, maker: Order, taker_market: int, taker_is_buy: bool, taker: str, q: int) -> Market:
        """Checks 1–6 of docs/margin-math.md; returns the market."""
        if q <= 0:
            raise ModelRevert("ZeroFill")
        if maker.market_id != taker_market:
            raise ModelRevert("MarketMismatch", maker.market_id, taker_market)
        market = self._market(maker.market_id)
        if self.paused_global or market.paused:
            raise ModelRevert("TradingPaused", maker.market_id)
        if maker.is_buy == taker_is_buy:
            raise ModelRevert("SameSide")
        if key_of(maker.account) == key_of(taker):
            raise ModelRevert("SelfTrade", taker)
        if q > MAX_VALUE:
            raise ModelRevert("ValueOutOfRange", q)
        return market

    def _fill(self, market: Market, maker: Order, taker: str, hashes: list[bytes], q: int) -> None:
        """Checks 9–12 and the fill itself, once the orders have passed checks 1–8: ``q`` at the
        maker's limit price, the maker on its order's side and ``taker`` on the other."""
        m, p = maker.market_id, maker.limit_price
        if p > MAX_VALUE:
            raise ModelRevert("ValueOutOfRange", p)
        oracle = self._price(m)
        if abs(p - oracle) > mul_wad_down(oracle, market.params.price_band_ratio):
            raise ModelRevert("PriceOutsideBand", m, p, oracle)

        # 10. touch both, apply the fill
        maker_delta = q if maker.is_buy else -q
        parties = [
            (maker.account, maker_delta, self._touch(maker.account), market.params.maker_fee_ratio),
            (taker, -maker_delta, self._touch(taker), market.params.taker_fee_ratio),
        ]
        before: list[int | None] = []
        for _, delta, acct, _ in parties:
            if self._only_reduces(acct, m, delta):
                h = self._health(acct)
                before.append(h.equity - h.mmr)
            else:
                before.append(None)
        oi_before = market.open_interest[LONG]
        for account, delta, acct, _ in parties:
            self._apply_fill(acct, m, delta, p)
            # A fill that opens a position in a new market needs a free slot (maker first).
            if len(acct.positions) > self.MAX_MARKETS_PER_ACCOUNT:
                raise ModelRevert("TooManyMarkets", account)
        for order_hash in hashes:
            self.filled[order_hash] = self.filled.get(order_hash, 0) + q

        # 11. open-interest cap, unless the fill did not raise open interest
        oi_after = market.open_interest[LONG]
        if oi_after > market.params.oi_cap and oi_after > oi_before:
            raise ModelRevert("OpenInterestCapExceeded", m, oi_after, market.params.oi_cap)

        # Fees: ``ceilDiv(fee, SCALE)`` whole token units each, booked to the fund's credit in the
        # vault (no token moves), whose own part must hold their sum if it is not 0.
        notional = mul_wad_up(q, p)
        fees = [ceil_div(mul_wad_up(notional, fee_ratio), self.scale) for *_, fee_ratio in parties]
        total_fees = sum(fees)
        if total_fees:
            self._book_fees(total_fees)
        for (_, _, acct, _), fee_tokens in zip(parties, fees, strict=True):
            acct.margin -= fee_tokens * self.scale

        # 12. margin: E ≥ IMR, or for a pure reduction E ≥ MMR and E - MMR not lower than before
        for (account, _, acct, _), headroom_before in zip(parties, before, strict=True):
            h = self._health(acct)
            if h.equity >= h.imr:
                continue
            if headroom_before is not None and h.equity >= h.mmr and h.equity - h.mmr >= headroom_before:
                continue
            raise ModelRevert("InsufficientMargin", account, h.equity, h.imr)

    # --- views ------------------------------------------------------------------------------------

    def filled_amount(self, order: Order) -> int:
        return self.filled.get(order_struct_hash(order), 0)

    def is_cancelled(self, account: str, order: Order) -> bool:
        return (key_of(account), order_struct_hash(order)) in self.cancelled

    # --- internals --------------------------------------------------------------------------------

    def _check_order(self, order: Order, signer_ok: bool, q: int) -> bytes:
        order_hash = order_struct_hash(order)
        if self.now > order.expiry:
            raise ModelRevert("OrderExpired", order_hash, order.expiry)
        if not signer_ok:
            raise ModelRevert("InvalidSignature", order_hash, order.account)
        min_nonce = self._peek(order.account).min_nonce
        if order.nonce < min_nonce:
            raise ModelRevert("NonceTooLow", order_hash, order.nonce, min_nonce)
        if (key_of(order.account), order_hash) in self.cancelled:
            raise ModelRevert("OrderIsCancelled", order_hash)
        filled = self.filled.get(order_hash, 0)
        if filled + q > order.size:
            raise ModelRevert("OrderOverfilled", order_hash, filled, q, order.size)
        return order_hash

    @staticmethod
    def _only_reduces(acct: AccountState, market_id: int, delta: int) -> bool:
        """The fill shrinks an existing position toward zero without crossing it (a close counts)."""
        pos = acct.positions.get(market_id)
        return pos is not None and (pos.size > 0) != (delta > 0) and abs(delta) <= abs(pos.size)

    def _apply_fill(self, acct: AccountState, market_id: int, delta: int, price: int) -> None:
        """Applies ``delta`` at ``price`` per docs/margin-math.md §"A fill" (realized PnL to margin)."""
        market = self.markets[market_id]
        pos = acct.positions.get(market_id)
        s, n = (pos.size, pos.open_notional) if pos else (0, 0)
        if s == 0 or (s > 0) == (delta > 0):  # increase (or open)
            new_size, new_notional, realized = s + delta, n + mul_wad_ceil(delta, price), 0
        elif abs(delta) < abs(s):  # reduce
            cost = mul_wad_ceil(delta, price)
            closed = mul_div_ceil(n, abs(delta), abs(s))
            new_size, new_notional, realized = s + delta, n - closed, -cost - closed
        elif abs(delta) == abs(s):  # close
            new_size, new_notional, realized = 0, 0, -mul_wad_ceil(delta, price) - n
        else:  # flip: close -s, then open delta + s from zero
            opened = delta + s
            realized = -mul_wad_ceil(-s, price) - n
            new_size, new_notional = opened, mul_wad_ceil(opened, price)
        # Position storage holds ±(2^127 − 1): a fill that would leave it is refused (check 10).
        if abs(new_size) > MAX_VALUE:
            raise ModelRevert("ValueOutOfRange", abs(new_size))
        if abs(new_notional) > MAX_VALUE:
            raise ModelRevert("ValueOutOfRange", abs(new_notional))
        acct.margin += realized

        if s != 0:
            market.open_interest[side_of(s)] -= abs(s)
        if new_size == 0:
            del acct.positions[market_id]
            return
        market.open_interest[side_of(new_size)] += abs(new_size)
        if pos is None:
            pos = acct.positions[market_id] = Position()
        if s == 0 or side_of(s) != side_of(new_size):  # opened or flipped: snapshot the new side
            pos.snapshot = market.loss_index[side_of(new_size)]
        pos.size, pos.open_notional = new_size, new_notional
