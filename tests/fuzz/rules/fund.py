"""Insurance-fund rules: stakes, share transfers and approvals, operators, EIP-7540 redeem requests
(escrow), claims by redeem and withdraw, cancellations, donations."""

from __future__ import annotations

from collections.abc import Callable

from tests.fuzz.core import MachineCore
from tests.fuzz.dsl import R, action
from tests.fuzz.invariants import INV_FUND_EXIT, INV_FUND_MAX, INV_FUND_SHARES, expect
from tests.fuzz.lens import PART_ACCOUNT_DETAIL, PART_SYSTEM_DETAIL
from tests.fuzz.params import ACTOR
from tests.fuzz.world import N_ACTORS, Calls, addr_word, word

#: An actor index, or (at or above ``N_ACTORS``) "the acting account itself": two thirds of the draws.
SENDER = R(0, 3 * N_ACTORS - 1)
#: An actor index, or (at or above ``N_ACTORS``) a controller with an open request: two thirds.
REQUESTER = R(0, 3 * N_ACTORS - 1)
MAX_UINT = (1 << 256) - 1


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

    def _requester(self, who: int) -> int:
        """``who`` if it is an actor index; above that, a controller with an open redeem request."""
        return self._actor_or_one_with(who, self.model.redeem_request)

    @staticmethod
    def _or(index: int | None, default: int) -> int:
        """An optional actor index: ``default`` when None or not an actor index."""
        return default if index is None or index >= N_ACTORS else index

    @action(weight=3, who=R(0, 2 * N_ACTORS - 1), pct=R(0, 120), controller=R(0, 2 * N_ACTORS - 1), by=SENDER)
    def request_unstake(
        self, who: int, pct: int, controller: int | None = None, by: int | None = None
    ) -> None:
        """``requestRedeem(shares, controller, owner)`` sent by the owner, or by another actor (an
        operator of the owner, a spender of its allowance, or neither)."""
        who = self._staker(who)
        owner = self.addr[who]
        c, s = self.addr[self._or(controller, who)], self.addr[self._or(by, who)]
        shares = self.model.fund_shares(owner) * pct // 100
        self._run(
            f"requestRedeem({who}, {shares}, controller {self._or(controller, who)}, by {self._or(by, who)})",
            lambda: self.model.request_unstake(owner, shares, c, s),
            s,
            self.w.fund,
            Calls.REQUEST + word(shares) + addr_word(c) + addr_word(owner),
        )
        self._step(need=PART_ACCOUNT_DETAIL)

    def _check_max(self, i: int) -> None:
        """``maxRedeem`` / ``maxWithdraw`` of controller ``i`` equal the model's (EIP-7540: exactly
        what a claim would burn and pay now)."""
        a = self.addr[i]
        self._sync()
        got = tuple(
            int.from_bytes(self.b.view(a, self.w.fund, sel + addr_word(a))[:32], "big")
            for sel in (Calls.MAX_REDEEM, Calls.MAX_WITHDRAW)
        )
        want = (self.model.max_redeem(a), self.model.max_withdraw(a))
        expect(got == want, INV_FUND_MAX, lambda: f"actor {i}: maxRedeem/maxWithdraw {got}, model {want}")

    @action(weight=3, who=REQUESTER, pct=R(1, 120), by=SENDER)
    def unstake(self, who: int, pct: int, by: int | None = None) -> None:
        """``redeem(shares, receiver = sender, controller)``, ``pct`` % of the request (100: ``maxRedeem``)."""
        who = self._requester(who)
        sender = self._or(by, who)
        a, s = self.addr[who], self.addr[sender]
        self._check_max(who)
        req = self.model.redeem_request(a)
        base = req[0] if req else self.model.fund_shares(a)
        shares = max(base * pct // 100, 1)
        out, paid = self._run(
            f"redeem({who}, {shares}, by {sender})",
            lambda: self.model.unstake(a, shares, s),
            s,
            self.w.fund,
            Calls.REDEEM + word(shares) + addr_word(s) + addr_word(a),
        )
        if out is not None:
            got = int.from_bytes(out.output[:32], "big") if out.output else paid
            expect(got == paid, INV_FUND_EXIT, lambda: f"redeem paid {got}, model {paid}")
            self.wallets[sender] += paid
        self._step(need=PART_ACCOUNT_DETAIL)

    @action(weight=3, who=REQUESTER, pct=R(0, 120), by=SENDER)
    def fund_withdraw(self, who: int, pct: int, by: int | None = None) -> None:
        """``withdraw(assets, receiver = sender, controller)``, ``pct`` % of what the request pays
        (100: ``maxWithdraw``; above it, a revert)."""
        who = self._requester(who)
        sender = self._or(by, who)
        a, s = self.addr[who], self.addr[sender]
        self._check_max(who)
        req = self.model.redeem_request(a)
        most = min(self.model.convert_to_assets(req[0]), req[1]) if req else 10 * self.w.token_unit
        assets = most * pct // 100
        out, shares = self._run(
            f"fund.withdraw({who}, {assets}, by {sender})",
            lambda: self.model.fund_withdraw(a, assets, s),
            s,
            self.w.fund,
            Calls.FUND_WITHDRAW + word(assets) + addr_word(s) + addr_word(a),
        )
        if out is not None:
            got = int.from_bytes(out.output[:32], "big") if out.output else shares
            expect(got == shares, INV_FUND_EXIT, lambda: f"withdraw burned {got} shares, model {shares}")
            self.wallets[sender] += assets
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

    @action(weight=2, who=REQUESTER, by=SENDER)
    def cancel_unstake(self, who: int, by: int | None = None) -> None:
        """``cancelRedeemRequest(controller)``: the escrowed shares come back by the cancel rule."""
        who = self._requester(who)
        sender = self._or(by, who)
        a, s = self.addr[who], self.addr[sender]
        out, result = self._run(
            f"cancelRedeemRequest({who}, by {sender})",
            lambda: self.model.cancel_unstake(a, s),
            s,
            self.w.fund,
            Calls.CANCEL_REQUEST + addr_word(a),
        )
        if out is not None and out.output:
            got = (int.from_bytes(out.output[:32], "big"), int.from_bytes(out.output[32:64], "big"))
            expect(got == result, INV_FUND_EXIT, lambda: f"cancel returned/burned {got}, model {result}")
        self._step(need=PART_ACCOUNT_DETAIL)

    @action(weight=1, who=R(0, 2 * N_ACTORS - 1), to=ACTOR, pct=R(0, 120))
    def transfer_shares(self, who: int, to: int, pct: int) -> None:
        """An ERC-20 transfer of fund shares (escrowed shares are not the sender's to move)."""
        who = self._staker(who)
        a, b = self.addr[who], self.addr[to]
        shares = self.model.fund_shares(a) * pct // 100
        self._run(
            f"shares.transfer({who} -> {to}, {shares})",
            lambda: self.model.transfer_shares(a, b, shares),
            a,
            self.w.fund,
            Calls.TRANSFER + addr_word(b) + word(shares),
        )
        self._step(need=PART_ACCOUNT_DETAIL)

    @action(weight=1, who=ACTOR, spender=ACTOR, kind=R(0, 2))
    def approve_shares(self, who: int, spender: int, kind: int) -> None:
        """An ERC-20 approval of fund shares: none, half the balance, or unlimited."""
        a, b = self.addr[who], self.addr[spender]
        shares = (0, self.model.fund_shares(a) // 2, MAX_UINT)[kind]
        self._run(
            f"shares.approve({who} -> {spender}, {shares})",
            lambda: self.model.approve_shares(a, b, shares),
            a,
            self.w.fund,
            Calls.APPROVE + addr_word(b) + word(shares),
        )
        self._step()

    @action(weight=1, who=ACTOR, operator=ACTOR, approved=R(0, 1))
    def set_operator(self, who: int, operator: int, approved: int) -> None:
        """EIP-7540 ``setOperator``: ``operator`` may then request, claim and cancel for ``who``."""
        a, b = self.addr[who], self.addr[operator]
        self._run(
            f"setOperator({who}, {operator}, {bool(approved)})",
            lambda: self.model.set_operator(a, b, bool(approved)),
            a,
            self.w.fund,
            Calls.SET_OPERATOR + addr_word(b) + word(approved),
        )
        self._step()
