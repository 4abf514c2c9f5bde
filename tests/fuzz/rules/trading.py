"""Trading rules: margin deposits and withdrawals, signed trades with their twists, partial fills
of resting orders, cancellations and nonce raises (``fillOrder``: rules/fill.py)."""

from __future__ import annotations

from backstop.model import MAX_VALUE, mul_wad_down, mul_wad_up
from backstop.orders import FAR_EXPIRY, SECP256K1_N, Order
from backstop.units import WAD
from tests.fuzz.core import MachineCore
from tests.fuzz.dsl import C, R, action
from tests.fuzz.invariants import INV_FLAT_WITHDRAW, expect
from tests.fuzz.lens import PART_ACCOUNT_DETAIL
from tests.fuzz.params import ACTOR, BOOK_LIMIT, MARKET
from tests.fuzz.world import MARKETS, N_ACTORS, Calls, Signed, word


class TradingRules(MachineCore):
    """Vault and order-book actions."""

    def _next_nonce(self, i: int) -> int:
        nonce = max(self.nonces[i], self.model.min_nonce(self.addr[i]))
        self.nonces[i] = nonce + 1
        return nonce

    def _signed(self, i: int, o: Order, signer: int | None = None) -> Signed:
        return self.w.sign(i, o, signer)

    def _match(self, label: str, maker: Signed, taker: Signed, fill: int, sender: int) -> None:
        maker_ok = self._signature_ok(maker)
        taker_ok = self._signature_ok(taker)
        data = Calls.match(maker.order, maker.signature, taker.order, taker.signature, fill)
        out, _ = self._run(
            label,
            lambda: self.model.match(maker.order, maker_ok, taker.order, taker_ok, fill),
            self.addr[sender],
            self.w.engine,
            data,
        )
        if out is not None:
            self.dust_bound += 3  # one wei per party per rounding of the fill's cost, flips included

    def _limit_and_size(
        self, market: int, band: int, size_kind: int, lev: int, maker: int, taker: int
    ) -> tuple[int, int, int]:
        """A limit price ``band`` thousandths of the price band off the oracle price, the band's
        width, and an order size: a few wei, ``lev`` hundredths of a unit, or ``lev`` % of what the
        free collateral of both parties, the maker or the taker margins at that price (``size_kind``)."""
        params = self.model.markets[market].params
        oracle = self.prices[market]
        band_abs = mul_wad_down(oracle, params.price_band_ratio)
        price = max(oracle + band_abs * band // 1_000, 1)
        if size_kind == 0:
            size = lev  # a few wei of size: the rounding rules at their finest
        elif size_kind == 1:
            size = lev * WAD // 100
        else:
            budgets = {
                2: min(self._free(maker), self._free(taker)),
                3: self._free(maker),
                4: self._free(taker),
            }
            budget = max(budgets[size_kind], 10 * WAD)
            size = max(budget * lev // 100 * WAD // max(mul_wad_up(price, params.im_ratio), 1), 1)
        return price, band_abs, size

    def _maker_signed(self, maker: int, mo: Order, twist: int) -> Signed:
        """The maker's order signed, or mis-signed on purpose: by another actor (``twist`` 2), with
        the high-s twin of its signature (8) or a truncated one (12)."""
        ms = self._signed(maker, mo, (maker + 1) % N_ACTORS if twist == 2 else None)
        if twist == 8:
            ms = _high_s(ms)
        elif twist == 12:
            ms = _truncated(ms)
        return ms

    def _keep(self, ms: Signed, keep: int, twist: int) -> None:
        """Rests a validly signed order in the book (``1 ≤ keep ≤ 4``) for later fills and cancels."""
        # Orders beyond the 128-bit range are kept too: their partial fills take positions past
        # 2^127, where both sides refuse with ValueOutOfRange (test_regressions.py).
        if 1 <= keep <= 4 and twist not in (2, 8, 12):
            self.book.append(ms)
            if len(self.book) > BOOK_LIMIT:
                self.book.pop(0)

    @staticmethod
    def _signature_ok(s: Signed) -> bool:
        """Whether the signature recovers the order's account (what the engine accepts)."""
        return s.valid

    # --- vault ---------------------------------------------------------------------------------

    @action(weight=3, who=ACTOR, kind=R(0, 3), amount=R(1, 1_000_000))
    def deposit(self, who: int, kind: int, amount: int) -> None:
        unit = self.w.token_unit  # dust, up to 1,000 tokens, up to 10,000 tokens, zero
        tokens = (amount % 10_000 + 1, amount * unit // 1_000, amount * unit // 100, 0)[kind]
        a = self.addr[who]
        out, _ = self._run(
            f"deposit({who}, {tokens})",
            lambda: self.model.deposit(a, tokens),
            a,
            self.w.vault,
            Calls.DEPOSIT + word(tokens),
        )
        if out is not None:
            self.wallets[who] -= tokens
        self._step(need=PART_ACCOUNT_DETAIL)

    @action(weight=4, who=ACTOR, mode=R(0, 5), pct=R(1, 100))
    def withdraw(self, who: int, mode: int, pct: int) -> None:
        a = self.addr[who]
        margin = self.model.margin(a)
        free = max(self._free(who), 0) // self.w.scale
        whole = max(margin, 0) // self.w.scale
        tokens = (free, free + 1, free * pct // 100, whole, 0, whole + 1)[mode]
        if mode != 4:
            tokens = max(tokens, 1)
        flat = not self.model.markets_of(a) and self.model.pending_loss(a) == 0
        in_vault = self.model.vault_tokens - self.model.fund_credit  # the vault's own part
        out, result = self._run(
            f"withdraw({who}, {tokens})",
            lambda: self.model.withdraw(a, tokens),
            a,
            self.w.vault,
            Calls.WITHDRAW + word(tokens),
        )
        if flat and mode == 3 and 0 < tokens <= min(whole, in_vault):
            # docs/design.md §7: a flat account can always take out its whole positive margin, as
            # far as the vault holds the tokens beyond the fund's credit (realized profit is paid out
            # of the losers' margin: until a bankrupt loser is liquidated the vault may hold less,
            # and it refuses, InsufficientVaultTokens).
            expect(
                out is not None,
                INV_FLAT_WITHDRAW,
                lambda: f"flat actor {who} could not withdraw its margin {tokens}: {result}",
            )
        if out is not None:
            self.wallets[who] += tokens
        self._step(need=PART_ACCOUNT_DETAIL)

    # --- orders --------------------------------------------------------------------------------

    @action(
        weight=10,
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
    )
    def trade(
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
    ) -> None:
        """Two fresh signed orders, matched; ``twist`` makes one check fail on purpose."""
        if taker == maker and twist % 4:
            taker = (taker + 1) % N_ACTORS  # a self-trade now and then, not one trade in seven
        price, band_abs, size = self._limit_and_size(market, band, size_kind, lev, maker, taker)
        q = max(size * fill // 100, 1)
        if twist == 15:
            q = size = MAX_VALUE + 1  # beyond the 128-bit position storage: ValueOutOfRange
        elif twist == 16:
            price = MAX_VALUE + 1  # a limit price beyond it: ValueOutOfRange after the limit check
        is_buy = bool(maker_buys)
        expiry = self.now + 600 if keep == 4 else FAR_EXPIRY
        if twist == 4:
            expiry = self.now - 1
        elif twist == 11:
            expiry = self.now  # inclusive bound: still valid
        mo = Order(self.addr[maker], market, is_buy, size, price, self._next_nonce(maker), expiry)
        ms = self._maker_signed(maker, mo, twist)

        t_market = (market + 1) % len(MARKETS) if twist == 6 else market
        t_buy = is_buy if twist == 0 else not is_buy
        t_limit = price
        if twist == 1 and price > 1:
            t_limit = price - 1 if t_buy else price + 1
        elif twist in (13, 14):
            t_limit = price + band_abs if t_buy else max(price - band_abs, 0)
        t_nonce = self._next_nonce(taker)
        if twist == 9 and self.model.min_nonce(self.addr[taker]) > 0:
            t_nonce = self.model.min_nonce(self.addr[taker]) - 1
        if twist == 7:
            q = 0
        elif twist == 10:
            q = size + 1
        t_expiry = self.now - 1 if twist == 5 else FAR_EXPIRY
        to = Order(self.addr[taker], t_market, t_buy, max(q, 1), t_limit, t_nonce, t_expiry)
        ts = self._signed(taker, to, (taker + 2) % N_ACTORS if twist == 3 else None)
        self._keep(ms, keep, twist)
        self._match(f"trade(m{market} {maker}->{taker} q={q} p={price} twist={twist})", ms, ts, q, taker)
        self._step()

    @action(weight=4, idx=R(0, BOOK_LIMIT - 1), taker=ACTOR, pct=R(1, 130), sender=ACTOR)
    def fill_resting(self, idx: int, taker: int, pct: int, sender: int) -> None:
        """A taker fills part (or more than the rest) of a resting order from the book."""
        if not self.book:
            self._step()
            return
        ms = self.book[idx % len(self.book)]
        mo = ms.order
        if taker == ms.owner and pct % 4:
            taker = (taker + 1) % N_ACTORS  # a self-trade now and then, not one fill in seven
        remaining = mo.size - self.model.filled_amount(mo)
        q = max(remaining * pct // 100, 1) if pct <= 100 else remaining + 1 + pct
        to = Order(
            self.addr[taker],
            mo.market_id,
            not mo.is_buy,
            q,
            mo.limit_price,
            self._next_nonce(taker),
            FAR_EXPIRY,
        )
        self._match(f"fill_resting({idx}, taker {taker}, q={q})", ms, self._signed(taker, to), q, sender)
        self._step()

    @action(weight=1, idx=R(0, BOOK_LIMIT - 1), who=R(0, N_ACTORS))
    def cancel(self, idx: int, who: int) -> None:
        """Cancels a resting order's hash, by its owner (``who == N_ACTORS``) or by anyone."""
        if not self.book:
            self._step()
            return
        ms = self.book[idx % len(self.book)]
        canceller = ms.owner if who == N_ACTORS else who
        a = self.addr[canceller]
        self._run(
            f"cancel({idx}) by {canceller}",
            lambda: self.model.cancel(a, ms.order),
            a,
            self.w.engine,
            Calls.CANCEL + word(32) + word(1) + ms.digest,
        )
        self._step()

    @action(weight=1, who=ACTOR, bump=R(0, 3))
    def raise_nonce(self, who: int, bump: int) -> None:
        a = self.addr[who]
        nonce = self.model.min_nonce(a) + bump
        self._run(
            f"raiseMinNonce({who}, {nonce})",
            lambda: self.model.set_min_nonce(a, nonce),
            a,
            self.w.engine,
            Calls.RAISE_NONCE + word(nonce),
        )
        self._step(need=PART_ACCOUNT_DETAIL)


def _high_s(s: Signed) -> Signed:
    """The malleable twin of a signature (``s' = n − s``, v flipped): same signer, refused."""
    r, sv, v = s.signature[:32], int.from_bytes(s.signature[32:64], "big"), s.signature[64]
    return Signed(
        s.order, s.digest, r + (SECP256K1_N - sv).to_bytes(32, "big") + bytes([55 - v]), s.owner, False
    )


def _truncated(s: Signed) -> Signed:
    return Signed(s.order, s.digest, s.signature[:64], s.owner, False)
