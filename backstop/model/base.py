"""The model's shared core: its state attributes, copies, views, and the internal reads every rule
uses (markets, prices, accounts, health, touching an account to settle its socialized loss)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Self

from backstop.decisions import AccountHealth
from backstop.model.math import INT256_MAX, LONG, mul_wad_floor, mul_wad_up, side_of
from backstop.model.rollback import copy_state
from backstop.model.state import AccountState, Health, Market, MarketParams, ModelRevert, RedeemRequest
from backstop.units import token_scale


def key_of(account: str) -> str:
    """Accounts are address strings, compared case-insensitively."""
    return account.lower()


class ModelBase:
    """The model's state and views; the rules (:mod:`backstop.model.trading`, ``fund``,
    ``liquidation``) and the admin hooks (:mod:`backstop.model.engine`) build on it."""

    MAX_MARKETS_PER_ACCOUNT = 8
    #: ERC-4626 ``_decimalsOffset()`` of the insurance fund: 10**6 virtual shares, one virtual asset.
    FUND_DECIMALS_OFFSET = 6

    def __init__(
        self,
        token_decimals: int = 6,
        cooldown: int = 7 * 86400,
        window: int = 2 * 86400,
        floor_tokens: int = 0,
        per_event_cap_tokens: int = 0,
    ) -> None:
        if min(cooldown, window, floor_tokens, per_event_cap_tokens) < 0:
            raise ValueError("fund parameters are unsigned")
        self.scale: int = token_scale(token_decimals)
        self.vault_tokens: int = 0  # token units held by the vault (its own part and the fund's credit)
        self.fund_tokens: int = 0  # token units held by the insurance fund
        # Token units the vault holds for the fund (``fundCredit``): fees booked, not yet swept.
        # The fund's ERC-4626 totalAssets is ``fund_tokens + fund_credit``.
        self.fund_credit: int = 0
        # Insurance fund (immutable parameters, then ERC-4626 share ledger, EIP-7540 requests).
        self.cooldown: int = cooldown
        self.window: int = window
        self.floor_tokens: int = floor_tokens
        self.per_event_cap_tokens: int = per_event_cap_tokens  # 0 = no cap
        self.fund_total_shares: int = 0  # ERC-20 totalSupply of fund shares
        self.fund_balances: dict[str, int] = {}
        self.redeem_requests: dict[str, RedeemRequest] = {}  # by controller; shares held in escrow
        self.fund_operators: set[tuple[str, str]] = set()  # (controller, operator) pairs approved
        self.fund_allowances: dict[tuple[str, str], int] = {}  # (owner, spender) -> share allowance
        # Σ socialized loss not yet settled into margins (signed: settlements round up).
        self.unsettled_loss: int = 0
        self.now: int = 0  # block timestamp, set by the caller
        self.paused_global: bool = False
        self.stale: set[int] = set()  # markets whose oracle the caller declares unusable
        self.markets: list[Market] = []
        self.accounts: dict[str, AccountState] = {}
        self.filled: dict[bytes, int] = {}  # order struct hash -> WAD size filled
        self.cancelled: set[tuple[str, bytes]] = set()  # (account, order struct hash)
        # Timelocked market changes (docs/design.md §10): the engine's PARAMS_DELAY, and per
        # market the scheduled parameters with the timestamp they can be executed from.
        self.params_delay: int = 2 * 86400
        self.scheduled: dict[int, tuple[MarketParams, int]] = {}

    def copy(self) -> Self:
        """An independent copy of the model (same class, :func:`copy_state` of its state):
        what-if probes and fresh starts from a template, without ``copy.deepcopy``'s cost."""
        out = object.__new__(type(self))
        out.__dict__.update(copy_state(self.__dict__))
        return out

    # --- views ------------------------------------------------------------------------------------

    def margin(self, account: str) -> int:
        return self._peek(account).margin

    def position(self, account: str, market_id: int) -> tuple[int, int]:
        """``(size, open_notional)`` in WAD; ``(0, 0)`` when flat."""
        pos = self._peek(account).positions.get(market_id)
        return (pos.size, pos.open_notional) if pos else (0, 0)

    def loss_snapshot(self, account: str, market_id: int) -> int:
        """The position's snapshot of its side's loss index (0 when flat)."""
        pos = self._peek(account).positions.get(market_id)
        return pos.snapshot if pos else 0

    def markets_of(self, account: str) -> list[int]:
        """Markets with an open position, in the order they were opened."""
        return list(self._peek(account).positions)

    def min_nonce(self, account: str) -> int:
        return self._peek(account).min_nonce

    def loss_index(self, market_id: int, side: int) -> int:
        return self._market(market_id).loss_index[side]

    def pending_loss(self, account: str) -> int:
        """Σ ``mulWadUp(|size|, L[side] - snapshot)``: loss not yet settled into margin (no price)."""
        return self._pending(self._peek(account))

    def health(self, account: str) -> Health:
        """All figures at once; needs a usable price for every market of the account."""
        return self._health(self._peek(account))

    def health_snapshot(self, accounts: Iterable[str]) -> list[AccountHealth]:
        """The keeper's view of ``accounts`` (``healthOf``'s entries), for
        :func:`backstop.decisions.plan_liquidations`. An account whose health cannot be read (a
        stale or missing price) is left out, as the keeper leaves out what it cannot read."""
        out = []
        for account in accounts:
            try:
                h = self.health(account)
            except ModelRevert:
                continue
            out.append(
                AccountHealth(
                    account=account,
                    margin=h.margin,
                    pending_loss=h.pending,
                    equity=h.equity,
                    initial_margin=h.imr,
                    maintenance_margin=h.mmr,
                    has_positions=bool(self._peek(account).positions),
                )
            )
        return out

    def equity(self, account: str) -> int:
        return self.health(account).equity

    def initial_margin(self, account: str) -> int:
        return self.health(account).imr

    def maintenance_margin(self, account: str) -> int:
        return self.health(account).mmr

    def free_collateral(self, account: str) -> int:
        return self.health(account).free_collateral

    def open_interest(self, market_id: int) -> int:
        """Σ long sizes in ``market_id`` (WAD)."""
        return self._market(market_id).open_interest[LONG]

    def total_margin(self) -> int:
        return sum(a.margin for a in self.accounts.values())

    def net_open_notional(self) -> int:
        return sum(p.open_notional for a in self.accounts.values() for p in a.positions.values())

    def total_pending_loss(self) -> int:
        """Σ pending loss of every account (O(n); the chain keeps ``unsettled_loss`` instead)."""
        return sum(self._pending(a) for a in self.accounts.values())

    def solvency(self) -> dict[str, int]:
        """The §9 identity in O(1): ``vault_assets = liabilities + dust`` with dust ≥ 0 and tiny.

        ``liabilities = Σ margin + fund_credit − Σ openNotional − unsettled_loss`` (the credit the
        vault holds for the fund, in WAD); ``vault_assets`` is the vault's token balance in WAD. The
        same three numbers as ``engine.solvency()``.
        """
        vault_assets = self.vault_tokens * self.scale
        liabilities = (
            self.total_margin()
            + self.fund_credit * self.scale
            - self.net_open_notional()
            - self.unsettled_loss
        )
        return {"vault_assets": vault_assets, "liabilities": liabilities, "dust": vault_assets - liabilities}

    def liquidatable(self, account: str) -> bool:
        """Holds a position and ``E < MMR`` (strict); False for a flat account (needs no price)."""
        acct = self._peek(account)
        if not acct.positions:
            return False
        h = self._health(acct)
        return h.equity < h.mmr

    # --- internals --------------------------------------------------------------------------------

    def _check_amount(self, amount_tokens: int) -> None:
        if amount_tokens < 0:
            raise ValueError("token amounts are unsigned")
        if amount_tokens == 0:
            raise ModelRevert("ZeroAmount")
        if amount_tokens > INT256_MAX // self.scale:
            raise ModelRevert("AmountTooLarge", amount_tokens)

    def _market(self, market_id: int) -> Market:
        if not 0 <= market_id < len(self.markets):
            raise ModelRevert("UnknownMarket", market_id)
        return self.markets[market_id]

    def price(self, market_id: int) -> int:
        """The oracle price of ``market_id`` (WAD), as ``OracleAdapter.priceOf`` answers it:
        reverts ``StalePrice`` for a stale market and ``UnknownMarket`` for an unknown one."""
        return self._price(market_id)

    def _price(self, market_id: int) -> int:
        if market_id in self.stale:
            raise ModelRevert("StalePrice", market_id)
        return self._market(market_id).price

    def _account(self, account: str) -> AccountState:
        return self.accounts.setdefault(key_of(account), AccountState())

    def _peek(self, account: str) -> AccountState:
        return self.accounts.get(key_of(account)) or AccountState()

    def _pending(self, acct: AccountState) -> int:
        return sum(
            mul_wad_up(abs(p.size), self.markets[m].loss_index[side_of(p.size)] - p.snapshot)
            for m, p in acct.positions.items()
        )

    def _health(self, acct: AccountState) -> Health:
        upnl = imr = mmr = 0
        for m, pos in acct.positions.items():
            price = self._price(m)
            params = self.markets[m].params
            notional = mul_wad_up(abs(pos.size), price)
            upnl += mul_wad_floor(pos.size, price) - pos.open_notional
            imr += mul_wad_up(notional, params.im_ratio)
            mmr += mul_wad_up(notional, params.mm_ratio)
        return Health(margin=acct.margin, pending=self._pending(acct), upnl=upnl, imr=imr, mmr=mmr)

    def _touch(self, account: str) -> AccountState:
        """Settles every position's pending loss into margin and moves its snapshot to the index."""
        acct = self._account(account)
        for m, pos in acct.positions.items():
            index = self.markets[m].loss_index[side_of(pos.size)]
            settled = mul_wad_up(abs(pos.size), index - pos.snapshot)
            acct.margin -= settled
            self.unsettled_loss -= settled
            pos.snapshot = index
        return acct

    def _check_vault_balance(self, amount_tokens: int) -> None:
        """``amount_tokens`` must come out of the vault's own part, its tokens beyond the fund's
        credit (a withdrawal, or fees booked to the credit): ``InsufficientVaultTokens(available,
        needed)`` otherwise. So the vault always holds at least the credit."""
        available = self.vault_tokens - self.fund_credit
        if amount_tokens > available:
            raise ModelRevert("InsufficientVaultTokens", available, amount_tokens)

    def _book_fees(self, fee_tokens: int) -> None:
        """The vault books fees (already debited from margins) to the fund's credit: no token
        moves, but the vault's own part must hold them."""
        self._check_vault_balance(fee_tokens)
        self.fund_credit += fee_tokens
