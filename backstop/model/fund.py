"""The insurance fund's rules (ERC-4626, OpenZeppelin 5.1 math, decimals offset 6): stakes, exit
requests, cooldown and window, and the fund's views (token units; shares are its ERC-20 units)."""

from __future__ import annotations

from backstop.model.base import ModelBase, key_of
from backstop.model.math import ceil_div
from backstop.model.rollback import atomic
from backstop.model.state import ModelRevert, WithdrawRequest


class FundRules(ModelBase):
    """Staking into and exiting from the insurance fund."""

    @atomic
    def stake(self, account: str, amount_tokens: int) -> int:
        """ERC-4626 ``deposit(amount, account)``: mints ``convertToShares(amount)`` (rounded down).

        A zero deposit is allowed and mints 0 shares, as in OpenZeppelin. Returns the shares minted.
        """
        if amount_tokens < 0:
            raise ValueError("token amounts are unsigned")
        shares = self.convert_to_shares(amount_tokens)
        self.fund_tokens += amount_tokens
        self.fund_total_shares += shares
        key = key_of(account)
        self.fund_balances[key] = self.fund_balances.get(key, 0) + shares
        return shares

    @atomic
    def donate_to_fund(self, amount_tokens: int) -> None:
        """A plain token transfer to the fund: raises ``totalAssets`` and so the share price."""
        if amount_tokens < 0:
            raise ValueError("token amounts are unsigned")
        self.fund_tokens += amount_tokens

    @atomic
    def request_unstake(self, account: str, shares: int) -> None:
        """``requestWithdraw(shares)``: ``0 < shares ≤ balance``; records the shares' value now.

        Replaces any earlier request of ``account``.
        """
        balance = self.fund_shares(account)
        if shares <= 0 or shares > balance:
            raise ModelRevert("InvalidWithdrawRequest", shares, balance)
        self.withdraw_requests[key_of(account)] = WithdrawRequest(
            shares=shares, assets=self.convert_to_assets(shares), requested_at=self.now
        )

    @atomic
    def unstake(self, account: str, shares: int) -> int:
        """``redeem(shares, account, account)`` of a matured request; returns the token units paid.

        Pays ``min(convertToAssets(shares), request.assets · shares // request.shares)``; what the min
        withholds stays in the fund. The request shrinks by ``shares`` and by that pro-rata value.
        """
        if shares < 0:
            raise ValueError("shares are unsigned")
        req = self._matured_request(account)
        if shares > req.shares:
            raise ModelRevert("ExceedsRequest", shares, req.shares)
        owed = req.assets * shares // req.shares
        paid = min(self.convert_to_assets(shares), owed)
        self._consume_request(account, req, shares, owed)
        self._burn_and_pay(account, shares, paid)
        return paid

    @atomic
    def fund_withdraw(self, account: str, assets: int) -> int:
        """``withdraw(assets, account, account)`` of a matured request: pays exactly ``assets``.

        Burns ``max(previewWithdraw(assets), ceilDiv(assets · request.shares, request.assets))``
        shares (a request worth 0 assets can pay nothing: ``ExceedsRequest``). Returns the shares.
        """
        if assets < 0:
            raise ValueError("token amounts are unsigned")
        req = self._matured_request(account)
        if req.assets == 0:
            raise ModelRevert("ExceedsRequest", 2**256 - 1, req.shares)
        shares = max(self.preview_withdraw(assets), ceil_div(assets * req.shares, req.assets))
        if shares > req.shares:
            raise ModelRevert("ExceedsRequest", shares, req.shares)
        self._consume_request(account, req, shares, req.assets * shares // req.shares)
        self._burn_and_pay(account, shares, assets)
        return shares

    # --- views ------------------------------------------------------------------------------------

    def fund_assets(self) -> int:
        """``totalAssets()``: the fund's token balance."""
        return self.fund_tokens

    def fund_supply(self) -> int:
        """``totalSupply()`` of fund shares."""
        return self.fund_total_shares

    def fund_shares(self, account: str) -> int:
        return self.fund_balances.get(key_of(account), 0)

    def coverable(self) -> int:
        """``min(max(totalAssets − floor, 0), perEventCap or ∞)`` token units."""
        amount = max(self.fund_tokens - self.floor_tokens, 0)
        if self.per_event_cap_tokens:
            amount = min(amount, self.per_event_cap_tokens)
        return amount

    def withdraw_request(self, account: str) -> tuple[int, int, int] | None:
        """``(shares, assets_at_request, requested_at)`` of ``account``'s pending request, or None."""
        req = self.withdraw_requests.get(key_of(account))
        return (req.shares, req.assets, req.requested_at) if req else None

    def convert_to_shares(self, assets: int) -> int:
        """``assets · (supply + 10^6) // (totalAssets + 1)`` (deposits round down)."""
        return assets * (self.fund_total_shares + 10**self.FUND_DECIMALS_OFFSET) // (self.fund_tokens + 1)

    def convert_to_assets(self, shares: int) -> int:
        """``shares · (totalAssets + 1) // (supply + 10^6)`` (redemptions round down)."""
        return shares * (self.fund_tokens + 1) // (self.fund_total_shares + 10**self.FUND_DECIMALS_OFFSET)

    def preview_withdraw(self, assets: int) -> int:
        """Shares burned to withdraw ``assets``: ``ceil(assets · (supply + 10^6) / (totalAssets + 1))``."""
        return ceil_div(
            assets * (self.fund_total_shares + 10**self.FUND_DECIMALS_OFFSET), self.fund_tokens + 1
        )

    # --- internals --------------------------------------------------------------------------------

    def _matured_request(self, account: str) -> WithdrawRequest:
        """The request of ``account``, if inside ``[requested_at + cooldown, ... + window]``."""
        req = self.withdraw_requests.get(key_of(account))
        if req is None:
            raise ModelRevert("NoWithdrawRequest", account)
        available_at = req.requested_at + self.cooldown
        if self.now < available_at:
            raise ModelRevert("CooldownNotElapsed", available_at, self.now)
        if self.now > available_at + self.window:
            raise ModelRevert("WithdrawalWindowExpired", available_at + self.window, self.now)
        return req

    def _consume_request(self, account: str, req: WithdrawRequest, shares: int, owed: int) -> None:
        """Shrinks the request by ``shares`` and the request value ``owed`` they carried."""
        if shares == req.shares:
            del self.withdraw_requests[key_of(account)]
        else:
            req.shares -= shares
            req.assets -= owed

    def _burn_and_pay(self, account: str, shares: int, assets: int) -> None:
        key = key_of(account)
        self.fund_balances[key] -= shares
        self.fund_total_shares -= shares
        self.fund_tokens -= assets
