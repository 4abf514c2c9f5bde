"""``fillOrder``: the sender takes the other side of a signed order, fresh or resting in the book
(the same hashes ``fill_resting`` fills through ``matchOrders``).

Its own mixin, listed first in ``BackstopMachine``'s bases, so that ``fill_order`` is the last
action of the sampling order: every earlier action keeps its index (tests/fuzz/test_harness_tables.py).
"""

from __future__ import annotations

from backstop.model import MAX_VALUE
from backstop.orders import FAR_EXPIRY, Order
from tests.fuzz.dsl import C, R, action
from tests.fuzz.params import ACTOR, BOOK_LIMIT, MARKET
from tests.fuzz.rules.trading import TradingRules
from tests.fuzz.world import N_ACTORS, Calls, Signed


class FillRules(TradingRules):
    """The taker-sent fill."""

    def _fill_order(self, label: str, maker: Signed, fill: int, taker: int) -> None:
        """``fillOrder`` of ``maker``'s order, sent by actor ``taker`` (the other side)."""
        maker_ok = self._signature_ok(maker)
        a = self.addr[taker]
        out, _ = self._run(
            label,
            lambda: self.model.fill_order(maker.order, maker_ok, a, fill),
            a,
            self.w.engine,
            Calls.fill(maker.order, maker.signature, fill),
        )
        if out is not None:
            # The same fill between two distinct accounts as a trade's, so the same bound: each
            # party's cost is rounded once (twice for a flip), each rounding by under 1 wei, and
            # the exact costs cancel; at most four roundings leave under 4 wei, so at most 3.
            self.dust_bound += 3

    @action(
        weight=3,
        maker=ACTOR,
        taker=ACTOR,
        market=MARKET,
        maker_buys=R(0, 1),
        size_kind=C((0, 1, 2, 2, 2, 3, 4)),
        lev=C((10, 40, 70, 90, 100, 110, 130, 160)),
        band=R(-1_100, 1_100),
        fill=R(1, 100),
        twist=R(0, 59),
        keep=R(0, 5),
        idx=R(0, BOOK_LIMIT - 1),
    )
    def fill_order(
        self,
        maker: int,
        taker: int,
        market: int,
        maker_buys: int,
        size_kind: int,
        lev: int,
        band: int,
        fill: int,
        twist: int,
        keep: int,
        idx: int,
    ) -> None:
        """The sender takes the other side of one signed order (``fillOrder``).

        With ``twist ≥ 45`` (and a book), a resting order, the same hash ``fill_resting`` fills
        through ``matchOrders``: ``fill`` % of what is left of it (59: one more than is left).
        Otherwise a fresh order, priced and sized as ``trade``'s maker order, with its maker-side
        twists: signed by another actor (2), expired (4), a zero fill (7), high-s (8), a nonce
        below the minimum (9), overfilled (10), expiring this second (11, valid), a truncated
        signature (12), a size or a price beyond 2^127 (15, 16)."""
        if twist >= 45 and self.book:
            ms = self.book[idx % len(self.book)]
            if taker == ms.owner and twist % 4:
                taker = (taker + 1) % N_ACTORS  # a self-trade now and then, not one fill in seven
            remaining = ms.order.size - self.model.filled_amount(ms.order)
            q = remaining + 1 if twist == 59 else max(remaining * fill // 100, 1)
            self._fill_order(f"fill_order(book {idx}, taker {taker}, q={q})", ms, q, taker)
            self._step()
            return
        if taker == maker and twist % 4:
            taker = (taker + 1) % N_ACTORS  # the sender is the maker now and then: SelfTrade
        price, _, size = self._limit_and_size(market, band, size_kind, lev, maker, taker)
        q = max(size * fill // 100, 1)
        if twist == 15:
            q = size = MAX_VALUE + 1  # beyond the 128-bit position storage: ValueOutOfRange
        elif twist == 16:
            price = MAX_VALUE + 1  # a limit price beyond it: ValueOutOfRange after the order checks
        elif twist == 7:
            q = 0
        elif twist == 10:
            q = size + 1
        expiry = self.now + 600 if keep == 4 else FAR_EXPIRY
        if twist == 4:
            expiry = self.now - 1
        elif twist == 11:
            expiry = self.now  # inclusive bound: still valid
        min_nonce = self.model.min_nonce(self.addr[maker])
        nonce = min_nonce - 1 if twist == 9 and min_nonce > 0 else self._next_nonce(maker)
        mo = Order(self.addr[maker], market, bool(maker_buys), size, price, nonce, expiry)
        ms = self._maker_signed(maker, mo, twist)
        self._keep(ms, keep, twist)
        self._fill_order(
            f"fill_order(m{market} {maker}->{taker} q={q} p={price} twist={twist})", ms, q, taker
        )
        self._step()
