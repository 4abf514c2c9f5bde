"""The fuzz machine's prediction of the lens: what ``BackstopLens.snapshotWords`` must answer.

:meth:`Prediction.expected_snapshot` builds the whole answer from the model and the machine's own
records, field by field in the named tuples of ``tests/fuzz/lens.py`` (the lens layout, written
once), so ``lens.snapshot_to_words`` encodes it word for word as the lens does.
"""

from __future__ import annotations

from backstop.model import ModelRevert
from tests.fuzz.core import MachineCore
from tests.fuzz.lens import (
    PART_ACCOUNT_DETAIL,
    PART_PRICES,
    PART_SYSTEM_DETAIL,
    AccountSnap,
    MarketSnap,
    Snapshot,
)

#: An account's exit request when it has none (or the part is left out).
NO_REQUEST = (0, 0, 0)


class Prediction(MachineCore):
    """The lens's answer as the model and the machine's records predict it."""

    def expected_snapshot(self, parts: int, block_number: int) -> Snapshot:
        """What ``BackstopLens.snapshotWords(every actor, parts)`` must answer, by the model and
        the machine's own records (clock, prices, feed ages, pauses, wallets). Parts left out read
        as zeros. The block number, which neither tracks, is the chain's."""
        model = self.model
        solvency = model.solvency()
        n_markets = len(model.markets)
        markets = []
        prices = parts & PART_PRICES
        for m, market in enumerate(model.markets):
            priced = prices and not self.stale[m]
            markets.append(
                MarketSnap(
                    open_interest=market.open_interest[0],
                    long_index=market.loss_index[0],
                    short_index=market.loss_index[1],
                    paused=int(bool(prices) and (self.global_paused or self.paused[m])),
                    priced=int(bool(priced)),
                    price=self.prices[m] if priced else 0,
                )
            )
        detail = parts & PART_ACCOUNT_DETAIL
        accounts = []
        model_accounts = model.accounts
        for i, a in enumerate(self.addr):
            try:
                h = model.health(a)
            except ModelRevert:  # a market of the account has no usable price: the health words
                h = None  # read 0, margin and pending loss are still reported
            request = (model.redeem_request(a) or NO_REQUEST) if detail else NO_REQUEST
            acct = model_accounts.get(self.keys[i])
            positions = acct.positions if acct is not None else {}
            sizes = [0] * n_markets
            notionals = [0] * n_markets
            for m, pos in positions.items():
                sizes[m] = pos.size
                notionals[m] = pos.open_notional
            accounts.append(
                AccountSnap(
                    margin=model.margin(a) if h is None else h.margin,
                    pending=model.pending_loss(a) if h is None else h.pending,
                    priced=0 if h is None else 1,
                    equity=0 if h is None else h.equity,
                    imr=0 if h is None else h.imr,
                    mmr=0 if h is None else h.mmr,
                    free=0 if h is None else h.free_collateral,
                    fund_shares=model.fund_shares(a),
                    request_shares=request[0],
                    request_assets=request[1],
                    requested_at=request[2],
                    wallet=self.wallets[i] if detail else 0,
                    min_nonce=model.min_nonce(a) if detail else 0,
                    market_count=len(positions),
                    markets=list(positions),  # in opening order
                    sizes=sizes,
                    notionals=notionals,
                )
            )
        system_detail = parts & PART_SYSTEM_DETAIL
        return Snapshot(
            parts=parts,
            block_number=block_number,
            timestamp=self.now,
            vault_assets=solvency["vault_assets"],
            liabilities=solvency["liabilities"],
            dust=solvency["dust"],
            total_margin=model.total_margin() if system_detail else 0,
            net_open_notional=model.net_open_notional() if system_detail else 0,
            unsettled_loss=model.unsettled_loss if system_detail else 0,
            vault_tokens=model.vault_tokens if system_detail else 0,
            fund_tokens=model.fund_tokens if system_detail else 0,
            fund_credit=model.fund_credit if system_detail else 0,
            fund_assets=model.fund_assets(),
            fund_supply=model.fund_supply(),
            coverable=model.coverable() if system_detail else 0,
            market_count=n_markets,
            markets=markets,
            accounts=accounts,
        )
