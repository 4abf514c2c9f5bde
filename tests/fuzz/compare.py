"""The comparison of the fuzz machine: the chain's lens snapshot against the model, field by field.

:meth:`Comparison.check` runs after every step; :meth:`Comparison.compare` predicts the lens's
whole answer from the model and the machine's records (``Prediction.expected_snapshot``,
tests/fuzz/predict.py), encodes it with the layout of ``tests/fuzz/lens.py`` and compares it with
the chain's bytes at once. Only when they differ is the answer decoded and compared field by field, with the ``expect``
calls that carry the invariant IDs of docs/invariants.md, so a failure reads exactly as if every
field had been compared one by one.
"""

from __future__ import annotations

from hypothesis.stateful import invariant

from backstop.model import ModelRevert
from tests.fuzz.invariants import (
    INV_CREDIT_BACKED,
    INV_EQUITY_EQ,
    INV_FLAT_NO_HAIRCUT,
    INV_FREE_COLLATERAL_EQ,
    INV_FUND_ASSETS,
    INV_FUND_CREDIT,
    INV_FUND_ESCROW,
    INV_FUND_REQUEST,
    INV_FUND_SHARES,
    INV_LIQ_MARGIN_ZERO,
    INV_LOSS_FUNDED,
    INV_LOSS_INDEX,
    INV_MARGIN_EQ,
    INV_NONCE,
    INV_OPEN_INTEREST,
    INV_ORACLE,
    INV_PAUSE,
    INV_PENDING_EQ,
    INV_POSITION_EQ,
    INV_REQUIREMENT_EQ,
    INV_SOLVENCY_DUST,
    INV_SOLVENCY_EQ,
    INV_TIME,
    INV_TOKENS,
    INV_ZERO_SUM,
    expect,
)
from tests.fuzz.lens import (
    ALL_PARTS,
    BLOCK_NUMBER_WORD,
    DUST_WORD,
    PART_ACCOUNT_DETAIL,
    PART_PRICES,
    PART_SYSTEM_DETAIL,
    AccountSnap,
    MarketSnap,
    Snapshot,
    decode_snapshot,
    encode_snapshot_words,
    snapshot_to_words,
    snapshot_words,
    word_of,
)
from tests.fuzz.predict import NO_REQUEST, Prediction
from tests.fuzz.world import DEPLOYER, MARKETS, N_ACTORS, Calls, addr_word


class Comparison(Prediction):
    """The chain against the model after every step (docs/invariants.md)."""

    @invariant()
    def check(self) -> None:
        """Every observable of the chain equals the model's (docs/invariants.md).

        Skipped when neither side changed since the last comparison (and no full check is due):
        every step since reverted on both sides or did nothing, and a reverted transaction leaves
        the EVM state as it was while a model method that raises restores its own state, so the
        comparison would read and predict exactly what the last one did."""
        every = type(self).full_every
        full = every <= 1 or self.steps % every == 0
        self._sync()
        if not full and not self.changed:
            return
        try:
            self.compare(full)
        except Exception as err:
            self._annotate(err)
            raise

    def teardown(self) -> None:
        """A run ends with a full comparison whatever ``full_every`` is."""
        if type(self).full_every > 1 and self.steps % type(self).full_every:
            self.compare(full=True)

    def compare(self, full: bool = True) -> None:
        """Reads every actor through the lens in one call and compares it with the model and the
        machine: the system figures (solvency identity, fund assets and supply), every market's
        open interest and loss indices, every account's core figures (margin, market list,
        positions, pending loss, priced flag, equity, IMR, MMR, free collateral, fund shares), and
        the optional lens parts — prices and pause flags; exit requests, wallets and nonces; the
        components of the solvency identity — when a step since the last comparison may have
        changed them, and all of them on a full check (with the whole-system sums).

        Fast path: the model's prediction of the whole answer, encoded as the lens encodes it, is
        compared with the chain's bytes at once. Only if they differ is the answer decoded and
        compared field by field (the ``expect`` calls carrying the invariant IDs), so a failure
        reads exactly as if every field had been compared one by one."""
        self._sync()
        parts = ALL_PARTS if full else self.need
        output = self.w.lens_output(parts)
        expected = snapshot_to_words(self.expected_snapshot(parts, word_of(output, BLOCK_NUMBER_WORD)))
        snap: Snapshot | None = None
        if output != encode_snapshot_words(expected):
            snap = decode_snapshot(output, N_ACTORS)
            self._compare_snapshot(snap)  # raises, with the invariant ID of the first difference
            self._unexplained_difference(output, expected)
        # One-sided checks; the chain's words are the expected ones from here on.
        dust = expected[DUST_WORD]
        expect(
            0 <= dust <= self.dust_bound,
            INV_SOLVENCY_DUST,
            lambda: f"dust {dust} outside [0, {self.dust_bound}]",
        )
        if full or self.liquidated:
            snap = snap or decode_snapshot(output, N_ACTORS)
            if full:
                self._compare_sums(snap)
            for target, deficit in self.liquidated:
                acc = snap.accounts[target]
                expect(
                    acc.margin >= 0 and not acc.markets and (deficit == 0 or acc.margin == 0),
                    INV_LIQ_MARGIN_ZERO,
                    lambda t=target, a=acc, d=deficit: (
                        f"liquidated actor {t}: margin {a.margin}, markets {a.markets}, deficit {d}"
                    ),
                )
            self.liquidated = []
        self.need = 0
        self.changed = False

    # --- field by field (the slow path, and the whole-system sums) -------------------------------

    def _compare_snapshot(self, snap: Snapshot) -> None:
        """Every field of a decoded snapshot against the model, one ``expect`` each."""
        self._compare_system(snap)
        detail = bool(snap.parts & PART_ACCOUNT_DETAIL)
        for i, acc in enumerate(snap.accounts):
            self._compare_account(i, acc, detail)

    @staticmethod
    def _unexplained_difference(output: bytes, expected: list[int]) -> None:
        """The chain's answer differs from the prediction in a word no field comparison covers
        (its layout, a part that should read as zeros): a lens or harness bug."""
        got = snapshot_words(output)
        i = next(
            (k for k, (x, y) in enumerate(zip(got, expected, strict=False)) if x != y),
            min(len(got), len(expected)),
        )
        raise AssertionError(
            f"lens snapshot word {i} of {len(got)}: chain {got[i] if i < len(got) else None}, "
            f"predicted {expected[i] if i < len(expected) else None} (of {len(expected)}), "
            "yet every field agrees: a lens layout or harness bug"
        )

    def _compare_system(self, snap: Snapshot) -> None:
        model = self.model
        expect(
            snap.timestamp == self.now, INV_TIME, lambda: f"chain time {snap.timestamp}, machine {self.now}"
        )
        solvency = model.solvency()
        got = (snap.vault_assets, snap.liabilities, snap.dust)
        want = (solvency["vault_assets"], solvency["liabilities"], solvency["dust"])
        expect(got == want, INV_SOLVENCY_EQ, lambda: f"engine.solvency() {got}, model {want}")
        expect(
            0 <= snap.dust <= self.dust_bound,
            INV_SOLVENCY_DUST,
            lambda: f"dust {snap.dust} outside [0, {self.dust_bound}]",
        )
        expect(
            snap.fund_assets == model.fund_assets(),
            INV_FUND_ASSETS,
            lambda: f"fund assets {snap.fund_assets}, model {model.fund_assets()}",
        )
        expect(
            snap.fund_supply == model.fund_supply(),
            INV_FUND_SHARES,
            lambda: f"fund share supply {snap.fund_supply}, model {model.fund_supply()}",
        )
        for m, ms in enumerate(snap.markets):
            self._compare_market(m, ms, bool(snap.parts & PART_PRICES))
        if not snap.parts & PART_SYSTEM_DETAIL:
            return
        expect(
            snap.vault_tokens == model.vault_tokens and snap.vault_assets == snap.vault_tokens * self.w.scale,
            INV_TOKENS,
            lambda: f"vault holds {snap.vault_tokens} tokens (assets {snap.vault_assets}), model {model.vault_tokens}",
        )
        expect(
            snap.total_margin == model.total_margin(),
            INV_MARGIN_EQ,
            lambda: f"vault.totalMargin {snap.total_margin}, model {model.total_margin()}",
        )
        expect(
            snap.net_open_notional == model.net_open_notional(),
            INV_POSITION_EQ,
            lambda: f"netOpenNotional {snap.net_open_notional}, model {model.net_open_notional()}",
        )
        expect(
            snap.unsettled_loss == model.unsettled_loss,
            INV_PENDING_EQ,
            lambda: f"unsettledLoss {snap.unsettled_loss}, model {model.unsettled_loss}",
        )
        expect(
            snap.fund_credit == model.fund_credit,
            INV_FUND_CREDIT,
            lambda: f"vault.fundCredit {snap.fund_credit}, model {model.fund_credit}",
        )
        expect(
            snap.fund_tokens + snap.fund_credit == snap.fund_assets and snap.fund_tokens == model.fund_tokens,
            INV_FUND_ASSETS,
            lambda: f"fund holds {snap.fund_tokens} tokens and {snap.fund_credit} of credit, "
            f"totalAssets {snap.fund_assets}, model tokens {model.fund_tokens}",
        )

        expect(
            snap.coverable == model.coverable(),
            INV_FUND_ASSETS,
            lambda: f"coverable {snap.coverable}, model {model.coverable()}",
        )

    def _compare_market(self, m: int, ms: MarketSnap, with_prices: bool) -> None:
        model = self.model
        expect(
            ms.open_interest == model.open_interest(m),
            INV_OPEN_INTEREST,
            lambda: f"market {m}: OI {ms.open_interest}, model {model.open_interest(m)}",
        )
        want_l = (model.loss_index(m, 0), model.loss_index(m, 1))
        expect(
            (ms.long_index, ms.short_index) == want_l,
            INV_LOSS_INDEX,
            lambda: f"market {m}: L {(ms.long_index, ms.short_index)}, model {want_l}",
        )
        if not with_prices:
            return
        paused, priced = bool(ms.paused), bool(ms.priced)
        expect(
            paused == (self.global_paused or self.paused[m]),
            INV_PAUSE,
            lambda: f"market {m}: paused {paused}, machine {self.global_paused or self.paused[m]}",
        )
        expect(
            priced == (not self.stale[m]) and (not priced or ms.price == self.prices[m]),
            INV_ORACLE,
            lambda: f"market {m}: priced {priced} at {ms.price}, machine stale {self.stale[m]} at {self.prices[m]}",
        )

    def _compare_account(self, i: int, acc: AccountSnap, detail: bool) -> None:
        model = self.model
        a = self.addr[i]
        expect(
            acc.margin == model.margin(a),
            INV_MARGIN_EQ,
            lambda: f"actor {i}: margin {acc.margin}, model {model.margin(a)}",
        )
        held = model.markets_of(a)
        expect(
            acc.markets == held, INV_POSITION_EQ, lambda: f"actor {i}: markets {acc.markets}, model {held}"
        )
        for m in range(len(MARKETS)):
            want = model.position(a, m)
            got = (acc.sizes[m], acc.notionals[m])
            expect(
                got == want,
                INV_POSITION_EQ,
                lambda m=m, got=got, want=want: f"actor {i} market {m}: position {got}, model {want}",
            )
        pending = model.pending_loss(a)
        expect(
            acc.pending == pending,
            INV_PENDING_EQ,
            lambda: f"actor {i}: pending loss {acc.pending}, model {pending}",
        )
        if not held:
            expect(acc.pending == 0, INV_FLAT_NO_HAIRCUT, lambda: f"flat actor {i} owes {acc.pending}")
        try:
            h = model.health(a)
        except ModelRevert:
            h = None
        priced = bool(acc.priced)
        expect(
            priced == (h is not None),
            INV_ORACLE,
            lambda: f"actor {i}: chain priced {priced}, model {h is not None}",
        )
        if h is not None:
            expect(
                acc.equity == h.equity,
                INV_EQUITY_EQ,
                lambda: f"actor {i}: equity {acc.equity}, model {h.equity}",
            )
            expect(
                (acc.imr, acc.mmr) == (h.imr, h.mmr),
                INV_REQUIREMENT_EQ,
                lambda: f"actor {i}: IMR/MMR {(acc.imr, acc.mmr)}, model {(h.imr, h.mmr)}",
            )
            expect(
                acc.free == h.free_collateral,
                INV_FREE_COLLATERAL_EQ,
                lambda: f"actor {i}: free collateral {acc.free}, model {h.free_collateral}",
            )
        shares = model.fund_shares(a)
        expect(
            acc.fund_shares == shares,
            INV_FUND_SHARES,
            lambda: f"actor {i}: shares {acc.fund_shares}, model {shares}",
        )
        if not detail:
            return
        req = model.redeem_request(a) or NO_REQUEST
        expect(acc.request == req, INV_FUND_REQUEST, lambda: f"actor {i}: request {acc.request}, model {req}")
        expect(
            acc.wallet == self.wallets[i],
            INV_TOKENS,
            lambda: f"actor {i}: wallet {acc.wallet}, expected {self.wallets[i]}",
        )
        expect(
            acc.min_nonce == model.min_nonce(a),
            INV_NONCE,
            lambda: f"actor {i}: min nonce {acc.min_nonce}, model {model.min_nonce(a)}",
        )

    def _compare_sums(self, snap: Snapshot) -> None:
        """Whole-system identities over every account (only meaningful on a full snapshot)."""
        for m, ms in enumerate(snap.markets):
            sizes = [acc.sizes[m] for acc in snap.accounts]
            longs = sum(s for s in sizes if s > 0)
            expect(
                sum(sizes) == 0 and longs == ms.open_interest,
                INV_ZERO_SUM,
                lambda m=m,
                sizes=sizes,
                ms=ms: f"market {m}: sizes {sizes} sum {sum(sizes)}, OI {ms.open_interest}",
            )
        escrow = int.from_bytes(
            self.b.view(DEPLOYER, self.w.fund, Calls.BALANCE_OF + addr_word(self.w.fund))[:32], "big"
        )
        expect(
            escrow == self.model.fund_escrow(),
            INV_FUND_ESCROW,
            lambda: f"fund's own share balance {escrow}, model escrow {self.model.fund_escrow()}",
        )
        total_shares = sum(acc.fund_shares for acc in snap.accounts) + escrow
        expect(
            total_shares == snap.fund_supply,
            INV_FUND_SHARES,
            lambda: f"Σ shares + escrow {total_shares} ≠ supply {snap.fund_supply}",
        )
        pending = sum(acc.pending for acc in snap.accounts)
        expect(
            pending >= snap.unsettled_loss,
            INV_LOSS_FUNDED,
            lambda: f"Σ pending loss {pending} < unsettled loss {snap.unsettled_loss}",
        )
        expect(
            snap.vault_tokens >= snap.fund_credit,
            INV_CREDIT_BACKED,
            lambda: f"vault holds {snap.vault_tokens} tokens, less than the fund's credit {snap.fund_credit}",
        )
        tokens = sum(acc.wallet for acc in snap.accounts) + snap.vault_tokens + snap.fund_tokens
        expect(
            tokens == N_ACTORS * self.w.mint_tokens,
            INV_TOKENS,
            lambda: f"tokens in wallets, vault and fund {tokens} ≠ minted {N_ACTORS * self.w.mint_tokens}",
        )
