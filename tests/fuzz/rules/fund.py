"""Insurance-fund rules: stakes, exit requests, redemptions and withdrawals, donations."""

from __future__ import annotations

from collections.abc import Callable

from tests.fuzz.core import MachineCore
from tests.fuzz.dsl import R, action
from tests.fuzz.invariants import INV_FUND_EXIT, INV_FUND_SHARES, expect
from tests.fuzz.lens import PART_ACCOUNT_DETAIL, PART_SYSTEM_DETAIL
from tests.fuzz.params import ACTOR
from tests.fuzz.world import N_ACTORS, Calls, addr_word, word


class FundRules(MachineCore):
    """Stakers' actions on the insurance fund."""

    @action(weight=2, who=ACTOR, kind=R(0, 2), amount=R(0, 1_000_000))
    def stake(self, who: int, kind: int, amount: int) -> None:
        tokens = (amount, amount * self.w.token_unit // 1_000, 0)[kind]
        a = self.addr[who]
        out, shares = self._run(
            f"stake({who}, {tokens})",
            lambda: self.model.stake(a, tokens),
            a,
            self.w.fund,
            Calls.STAKE + word(tokens) + addr_word(a),
        )
        if out is not None:
            got = int.from_bytes(out.output[:32], "big") if out.output else shares
            expect(got == shares, INV_FUND_SHARES, lambda: f"stake minted {got} shares, model {shares}")
            self.wallets[who] -= tokens
        self._step(need=PART_ACCOUNT_DETAIL)

    def _actor_or_one_with(self, who: int, has: Callable[[str], object]) -> int:
        """``who`` if it is an actor index; above that, an actor for which ``has`` is truthy
        (any actor if none is)."""
        if who < N_ACTORS:
            return who
        chosen = [i for i, a in enumerate(self.addr) if has(a)]
        return chosen[who % len(chosen)] if chosen else who % N_ACTORS

    def _staker(self, who: int) -> int:
        """``who`` if it is an actor index; above that, an actor holding fund shares."""
        return self._actor_or_one_with(who, self.model.fund_shares)

    @action(weight=3, who=R(0, 2 * N_ACTORS - 1), pct=R(0, 120))
    def request_unstake(self, who: int, pct: int) -> None:
        who = self._staker(who)
        a = self.addr[who]
        shares = self.model.fund_shares(a) * pct // 100
        self._run(
            f"requestWithdraw({who}, {shares})",
            lambda: self.model.request_unstake(a, shares),
            a,
            self.w.fund,
            Calls.REQUEST + word(shares),
        )
        self._step(need=PART_ACCOUNT_DETAIL)

    def _requester(self, who: int) -> int:
        """``who`` if it is an actor index; above that, an actor with a pending exit request."""
        return self._actor_or_one_with(who, self.model.withdraw_request)

    @action(weight=3, who=R(0, 2 * N_ACTORS - 1), pct=R(1, 120))
    def unstake(self, who: int, pct: int) -> None:
        who = self._requester(who)
        a = self.addr[who]
        req = self.model.withdraw_request(a)
        base = req[0] if req else self.model.fund_shares(a)
        shares = max(base * pct // 100, 1)
        out, paid = self._run(
            f"redeem({who}, {shares})",
            lambda: self.model.unstake(a, shares),
            a,
            self.w.fund,
            Calls.REDEEM + word(shares) + addr_word(a) + addr_word(a),
        )
        if out is not None:
            got = int.from_bytes(out.output[:32], "big") if out.output else paid
            expect(got == paid, INV_FUND_EXIT, lambda: f"redeem paid {got}, model {paid}")
            self.wallets[who] += paid
        self._step(need=PART_ACCOUNT_DETAIL)

    @action(weight=3, who=R(0, 2 * N_ACTORS - 1), pct=R(0, 120))
    def fund_withdraw(self, who: int, pct: int) -> None:
        who = self._requester(who)
        a = self.addr[who]
        req = self.model.withdraw_request(a)
        most = min(self.model.convert_to_assets(req[0]), req[1]) if req else 10 * self.w.token_unit
        assets = most * pct // 100
        out, shares = self._run(
            f"fund.withdraw({who}, {assets})",
            lambda: self.model.fund_withdraw(a, assets),
            a,
            self.w.fund,
            Calls.FUND_WITHDRAW + word(assets) + addr_word(a) + addr_word(a),
        )
        if out is not None:
            got = int.from_bytes(out.output[:32], "big") if out.output else shares
            expect(got == shares, INV_FUND_EXIT, lambda: f"withdraw burned {got} shares, model {shares}")
            self.wallets[who] += assets
        self._step(need=PART_ACCOUNT_DETAIL)

    @action(weight=1, who=ACTOR, amount=R(1, 10**9))
    def donate(self, who: int, amount: int) -> None:
        """A plain token transfer to the fund (up to 1,000 tokens): raises the share price."""
        amount = max(amount * self.w.token_unit // 10**6, 1)
        a = self.addr[who]
        self._run(
            f"donate({who}, {amount})",
            lambda: self.model.donate_to_fund(amount),
            a,
            self.w.token,
            Calls.TRANSFER + addr_word(self.w.fund) + word(amount),
        )
        self.wallets[who] -= amount
        self._step(need=PART_ACCOUNT_DETAIL | PART_SYSTEM_DETAIL)
