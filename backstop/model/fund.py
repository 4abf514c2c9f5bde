"""The insurance fund's rules (ERC-4626, OpenZeppelin 5.1 math, decimals offset 6, EIP-7540
asynchronous redemption): stakes, share transfers, operators, escrowed redeem requests, the cooldown
and window, claims, cancellations, and the fund's views (token units; shares are its ERC-20 units).

Requests are keyed by controller (request id 0). Escrowed shares leave the owner's balance but stay
in the share supply (:meth:`FundRules.fund_escrow` sums them: the fund's own share balance)."""

from __future__ import annotations

from backstop.model.base import ModelBase, key_of
from backstop.model.math import ceil_div
from backstop.model.rollback import atomic
from backstop.model.state import ModelRevert, RedeemRequest

MAX_UINT256 = 2**256 - 1
ZERO_ADDRESS = "0x" + "0" * 40


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
    def sweep_to_fund(self) -> int:
        """``vault.sweepToFund()``, by anyone: the vault transfers the fund's whole credit to the
        fund (``NothingToSweep`` if it is 0). The fund's assets, and so every share's value, stay
        the same. Returns the token units moved."""
        amount = self.fund_credit
        if amount == 0:
            raise ModelRevert("NothingToSweep")
        self._sweep()
        return amount

    @atomic
    def transfer_shares(self, sender: str, to: str, shares: int) -> None:
        """ERC-20 ``transfer(to, shares)`` of fund shares (escrowed shares are not the sender's)."""
        if shares < 0:
            raise ValueError("shares are unsigned")
        self._move_shares(sender, to, shares)

    @atomic
    def approve_shares(self, owner: str, spender: str, shares: int) -> None:
        """ERC-20 ``approve(spender, shares)`` of fund shares."""
        self.fund_allowances[(key_of(owner), key_of(spender))] = shares

    @atomic
    def set_operator(self, controller: str, operator: str, approved: bool) -> None:
        """EIP-7540 ``setOperator(operator, approved)`` sent by ``controller``."""
        pair = (key_of(controller), key_of(operator))
        if approved:
            self.fund_operators.add(pair)
        else:
            self.fund_operators.discard(pair)

    @atomic
    def request_unstake(
        self, owner: str, shares: int, controller: str | None = None, sender: str | None = None
    ) -> None:
        """``requestRedeem(shares, controller, owner)`` sent by ``sender`` (defaults: ``owner``).

        In order: a zero controller reverts ``ZeroAddress``; a sender that is neither the owner nor
        its operator spends the owner's share allowance; a controller's live request reverts
        ``RedeemRequestOpen``, an expired one is first given back (:meth:`cancel_unstake`'s rule);
        then ``0 < shares ≤ balance`` (``InvalidRedeemRequest``). Records ``(shares,
        convertToAssets(shares), now)`` for the controller and moves the shares into escrow.
        """
        if shares < 0:
            raise ValueError("shares are unsigned")
        controller = owner if controller is None else controller
        sender = owner if sender is None else sender
        if key_of(controller) == ZERO_ADDRESS:
            raise ModelRevert("ZeroAddress", "controller")
        if key_of(sender) != key_of(owner) and not self.is_operator(owner, sender):
            self._spend_allowance(owner, sender, shares)
        open_request = self.redeem_requests.get(key_of(controller))
        if open_request is not None:
            deadline = open_request.requested_at + self.cooldown + self.window
            if self.now <= deadline:
                raise ModelRevert("RedeemRequestOpen", controller, deadline)
            self._give_back(controller, open_request)
        balance = self.fund_shares(owner)
        if shares == 0 or shares > balance:
            raise ModelRevert("InvalidRedeemRequest", shares, balance)
        self.redeem_requests[key_of(controller)] = RedeemRequest(
            shares=shares, assets=self.convert_to_assets(shares), requested_at=self.now
        )
        self.fund_balances[key_of(owner)] -= shares

    @atomic
    def unstake(self, controller: str, shares: int, sender: str | None = None) -> int:
        """``redeem(shares, receiver, controller)`` sent by ``sender`` (default: the controller)
        inside the window; returns the token units paid.

        Pays ``min(convertToAssets(shares), request.assets · shares // request.shares)``; what the
        min withholds stays in the fund. The request shrinks by ``shares`` and by that pro-rata
        value; the shares are burnt from escrow.
        """
        if shares < 0:
            raise ValueError("shares are unsigned")
        req = self._claimable(controller, sender)
        if shares > req.shares:
            raise ModelRevert("ERC4626ExceededMaxRedeem", controller, shares, req.shares)
        owed = req.assets * shares // req.shares
        paid = min(self.convert_to_assets(shares), owed)
        self._claim(controller, req, shares, owed, paid)
        return paid

    @atomic
    def fund_withdraw(self, controller: str, assets: int, sender: str | None = None) -> int:
        """``withdraw(assets, receiver, controller)`` inside the window: pays exactly ``assets``.

        ``assets ≤ maxWithdraw`` (else ``ERC4626ExceededMaxWithdraw``). Burns
        ``max(ceil(assets · S'/A'), ceil(assets · request.shares / request.assets))`` escrowed
        shares (the second term only if ``assets > 0``). Returns the shares burnt.
        """
        if assets < 0:
            raise ValueError("token amounts are unsigned")
        req = self._claimable(controller, sender)
        most = self._payable(req)
        if assets > most:
            raise ModelRevert("ERC4626ExceededMaxWithdraw", controller, assets, most)
        shares = ceil_div(assets * self._virtual_supply(), self._virtual_assets())
        if assets:
            shares = max(shares, ceil_div(assets * req.shares, req.assets))
        self._claim(controller, req, shares, req.assets * shares // req.shares, assets)
        return shares

    @atomic
    def cancel_unstake(self, controller: str, sender: str | None = None) -> tuple[int, int]:
        """``cancelRedeemRequest(controller)`` sent by ``sender`` (default: the controller), at any
        time. Returns ``(returned, burned)`` shares, by :meth:`returnable_shares`."""
        self._check_controller(controller, sender)
        req = self.redeem_requests.get(key_of(controller))
        if req is None:
            raise ModelRevert("NoRedeemRequest", controller)
        return self._give_back(controller, req)

    # --- views ------------------------------------------------------------------------------------

    def fund_assets(self) -> int:
        """``totalAssets()``: the fund's token balance plus its credit in the vault."""
        return self.fund_tokens + self.fund_credit

    def fund_supply(self) -> int:
        """``totalSupply()`` of fund shares (escrowed shares included)."""
        return self.fund_total_shares

    def fund_shares(self, account: str) -> int:
        """``balanceOf(account)``: shares in the account's wallet (not its escrowed shares)."""
        return self.fund_balances.get(key_of(account), 0)

    def fund_escrow(self) -> int:
        """``balanceOf(fund)``: Σ shares of every open request."""
        return sum(r.shares for r in self.redeem_requests.values())

    def share_allowance(self, owner: str, spender: str) -> int:
        return self.fund_allowances.get((key_of(owner), key_of(spender)), 0)

    def is_operator(self, controller: str, operator: str) -> bool:
        return (key_of(controller), key_of(operator)) in self.fund_operators

    def coverable(self) -> int:
        """``min(max(totalAssets − floor, 0), perEventCap or ∞)`` token units."""
        amount = max(self.fund_assets() - self.floor_tokens, 0)
        if self.per_event_cap_tokens:
            amount = min(amount, self.per_event_cap_tokens)
        return amount

    def redeem_request(self, controller: str) -> tuple[int, int, int] | None:
        """``(shares, assets_at_request, requested_at)`` of ``controller``'s request, or None."""
        req = self.redeem_requests.get(key_of(controller))
        return (req.shares, req.assets, req.requested_at) if req else None

    def pending_redeem(self, controller: str) -> int:
        """``pendingRedeemRequest(0, controller)``: the request's shares while in its cooldown."""
        req = self.redeem_requests.get(key_of(controller))
        return req.shares if req and self.now < req.requested_at + self.cooldown else 0

    def max_redeem(self, controller: str) -> int:
        """``maxRedeem`` = ``claimableRedeemRequest(0, ·)``: the request's shares inside its window."""
        req = self.redeem_requests.get(key_of(controller))
        return req.shares if req and self._in_window(req) else 0

    def max_withdraw(self, controller: str) -> int:
        """``maxWithdraw``: ``min(convertToAssets(shares), assets at request)`` inside the window."""
        req = self.redeem_requests.get(key_of(controller))
        return self._payable(req) if req and self._in_window(req) else 0

    def returnable_shares(self, shares: int, value: int) -> int:
        """The cancel rule: of ``shares`` escrowed shares requested at value ``value``, how many go
        back. With ``S' = supply + 10^6`` and ``A' = totalAssets + 1``: all of them if
        ``shares · A' ≤ value · S'``, else ``⌊value · (S' − shares) / (A' − value)⌋``."""
        s, a = self._virtual_supply(), self._virtual_assets()
        if shares * a <= value * s:
            return shares
        return value * (s - shares) // (a - value)

    def convert_to_shares(self, assets: int) -> int:
        """``assets · (supply + 10^6) // (totalAssets + 1)`` (deposits round down)."""
        return assets * self._virtual_supply() // self._virtual_assets()

    def convert_to_assets(self, shares: int) -> int:
        """``shares · (totalAssets + 1) // (supply + 10^6)`` (redemptions round down)."""
        return shares * self._virtual_assets() // self._virtual_supply()

    # --- internals --------------------------------------------------------------------------------

    def _virtual_supply(self) -> int:
        return self.fund_total_shares + 10**self.FUND_DECIMALS_OFFSET

    def _virtual_assets(self) -> int:
        return self.fund_assets() + 1

    def _sweep(self) -> None:
        """The vault transfers the fund's whole credit to the fund."""
        self.vault_tokens -= self.fund_credit
        self.fund_tokens += self.fund_credit
        self.fund_credit = 0

    def _pay_cover(self, cover_tokens: int) -> None:
        """``cover``'s payment to the vault: out of the fund's tokens first (a transfer), the rest
        out of its credit in the vault (no token moves)."""
        from_tokens = min(cover_tokens, self.fund_tokens)
        self.fund_tokens -= from_tokens
        self.vault_tokens += from_tokens
        self.fund_credit -= cover_tokens - from_tokens

    def _in_window(self, req: RedeemRequest) -> bool:
        available_at = req.requested_at + self.cooldown
        return available_at <= self.now <= available_at + self.window

    def _payable(self, req: RedeemRequest) -> int:
        return min(self.convert_to_assets(req.shares), req.assets)

    def _check_controller(self, controller: str, sender: str | None) -> None:
        sender = controller if sender is None else sender
        if key_of(sender) != key_of(controller) and not self.is_operator(controller, sender):
            raise ModelRevert("NotControllerOrOperator", sender, controller)

    def _claimable(self, controller: str, sender: str | None) -> RedeemRequest:
        """The request of ``controller``, if ``sender`` may claim it and it is inside its window."""
        self._check_controller(controller, sender)
        req = self.redeem_requests.get(key_of(controller))
        if req is None:
            raise ModelRevert("NoRedeemRequest", controller)
        available_at = req.requested_at + self.cooldown
        if self.now < available_at:
            raise ModelRevert("CooldownNotElapsed", available_at, self.now)
        if self.now > available_at + self.window:
            raise ModelRevert("ClaimWindowExpired", available_at + self.window, self.now)
        return req

    def _claim(self, controller: str, req: RedeemRequest, shares: int, owed: int, paid: int) -> None:
        """Shrinks the request by ``shares`` and the request value ``owed`` they carried, burns the
        shares from escrow and pays ``paid`` out of the fund."""
        if shares == req.shares:
            del self.redeem_requests[key_of(controller)]
        else:
            req.shares -= shares
            req.assets -= owed
        self.fund_total_shares -= shares
        if self.fund_tokens < paid:  # the fund pulls its credit when the tokens it holds fall short
            self._sweep()
        self.fund_tokens -= paid

    def _give_back(self, controller: str, req: RedeemRequest) -> tuple[int, int]:
        """Closes ``controller``'s request by the cancel rule: returns shares worth at most the
        request's value to the controller, burns the rest from escrow."""
        del self.redeem_requests[key_of(controller)]
        returned = self.returnable_shares(req.shares, req.assets)
        burned = req.shares - returned
        self.fund_total_shares -= burned
        key = key_of(controller)
        self.fund_balances[key] = self.fund_balances.get(key, 0) + returned
        return returned, burned

    def _move_shares(self, sender: str, to: str, shares: int) -> None:
        balance = self.fund_shares(sender)
        if shares > balance:
            raise ModelRevert("ERC20InsufficientBalance", sender, balance, shares)
        self.fund_balances[key_of(sender)] = balance - shares
        key = key_of(to)
        self.fund_balances[key] = self.fund_balances.get(key, 0) + shares

    def _spend_allowance(self, owner: str, spender: str, shares: int) -> None:
        """OpenZeppelin's ``_spendAllowance``: an infinite allowance is never decreased."""
        allowance = self.share_allowance(owner, spender)
        if allowance == MAX_UINT256:
            return
        if allowance < shares:
            raise ModelRevert("ERC20InsufficientAllowance", spender, allowance, shares)
        self.fund_allowances[(key_of(owner), key_of(spender))] = allowance - shares
