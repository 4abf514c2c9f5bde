"""The keeper's act phase (docs/keeper.md): plan the pass with its own capital, then send the plan.

:meth:`Acting.act` reads the books and market terms of the pass's targets and of the keeper itself
(:class:`~backstop.keeper.books.BookReader`), plans with
:func:`backstop.decisions.plan_pass` (whole takeovers in ``liquidateMany`` batches under the gas
budget, ``liquidatePosition`` steps for solvent accounts too large to take whole, the rest logged
as ``unabsorbable`` with the capital they need), and plays the plan with
:func:`backstop.decisions.play_actions`: every transaction is dry-run (``eth_call``) and estimated
first and never sent if that fails; a batch whose dry run fails is split in halves, down to single
accounts. Then the fee gate (:mod:`backstop.keeper.fees`): nothing is sent while the base fee is
above the operator's cap (``fee_capped``) or when the action's keeper reward is below its gas at
the capped fee (``unprofitable``; a batch is not split then: each account alone would pay less). Transactions go out in windows of ``max_in_flight``, whose receipts are awaited before
the next window's dry runs, so those see every earlier liquidation mined. Once a stop is requested
(``request_stop``), no further action is dry-run or sent; the window in flight is awaited.

With an inherit ceiling (``max_inherit_notional``), accounts whose whole takeover would take the
keeper's gross notional past it are stepped into partially or left (``unabsorbable
reason=ceiling``), and one ``inherit_ceiling reached`` line says so.

A receipt is read event by event: each ``Liquidated`` by the keeper is a liquidated account, each
``PositionLiquidated`` a partial step, each ``LiquidationSkipped`` a lost race (a competitor got
there first, or a price move made the account healthy).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from hexbytes import HexBytes
from web3.exceptions import ContractLogicError, Web3RPCError

from backstop.chain.rpc import RpcUnavailable, rpc_message
from backstop.chain.tx import gas_limit, gwei
from backstop.decisions import (
    AccountHealth,
    Batch,
    PartialStep,
    PassPlan,
    gross_notional,
    plan_pass,
    play_actions,
)
from backstop.keeper.fees import FeeGate, action_reward
from backstop.keeper.index import topic_address
from backstop.keeper.risk import human
from backstop.keeper.sender import FeeCapped, SendError, Sent
from backstop.keeper.state import PassReport


@dataclass
class _InFlight:
    label: str  # the accounts (a batch) or "account market size" (a step), for the log
    accounts: tuple[str, ...]
    sent: Sent  # the signed fields and every hash signed for its nonce


class Acting(FeeGate):
    """The act phase of :class:`backstop.keeper.Keeper` (a mixin over its state)."""

    # Set by Keeper.__init__ (declared for type checkers).
    address: str
    engine_address: str
    dry_run: bool
    max_in_flight: int
    gas_margin_pct: int
    max_inherit_notional: int | None
    stopping: bool
    _own_book: Any  # (block, the keeper's Book, terms) of the last plan
    _reward_basis: Any  # (the targets' books by account, terms) of the last plan

    def act(
        self, targets: list[AccountHealth], head: int, report: PassReport, own: AccountHealth | None
    ) -> None:
        """Plans the pass over ``targets`` (ordered, the keeper excluded) with the keeper's own
        health ``own`` (read at ``head``) and plays the plan."""
        if not targets:
            return
        if self.stopping:
            report.stopped = True
            return
        plan = self._plan(targets, head, own)
        if plan is None:
            report.failed += len(targets)
            return
        self._read_eth_price(head)
        books, terms = self._reward_basis

        def reward(action: Batch | PartialStep) -> int | None:  # only with a floor to compare it to
            return None if self._pass_eth_price is None else action_reward(action, books, terms)

        for u in plan.unabsorbable:
            report.unabsorbable.append(u)
            self._event(
                logging.WARNING,
                "unabsorbable",
                account=u.account,
                equity=human(u.equity),
                capital_needed=human(u.capital_needed),
                reason=u.reason,
            )
        if plan.ceiling_limited:
            report.ceiling_limited.extend(plan.ceiling_limited)
            _, before, terms = self._own_book  # type: ignore[misc]
            untaken = {u.account for u in plan.unabsorbable}
            self._event(
                logging.WARNING,
                "inherit_ceiling",
                word="reached",
                ceiling=human(self.max_inherit_notional or 0),
                notional_before=human(gross_notional(before, terms)),
                notional_after=human(gross_notional(plan.keeper_after, terms)),
                partial=sum(1 for a in plan.ceiling_limited if a not in untaken),
                untaken=sum(1 for a in plan.ceiling_limited if a in untaken),
            )
        window: list[_InFlight] = []

        def flush() -> None:
            for tx in window:
                self._await(tx, report)
            window.clear()

        def stop_seen() -> bool:
            if self.stopping and not report.stopped:
                report.stopped = True
                self._event(logging.INFO, "stopping", in_flight=len(window))
            return report.stopped

        def batch(b: Batch) -> bool:
            if len(window) >= self.max_in_flight and not stop_seen():
                flush()
            if stop_seen():  # also a signal that came while the window's receipts were awaited
                return True  # nothing more is sent; not a dry-run verdict, so not split
            data = self.engine_abi.liquidate_many_call(b.accounts)
            label = ",".join(b.accounts)
            ok, sent = self._try(data, b.accounts, label, report, batch=True, reward=reward(b))
            if sent is not None:
                window.append(sent)
                report.batches += 1
            return ok

        def step(s: PartialStep) -> None:
            if len(window) >= self.max_in_flight and not stop_seen():
                flush()
            if stop_seen():
                return
            data = self.engine_abi.liquidate_position_call(s.account, s.market_id, s.size)
            label = f"{s.account} {s.market_id} {s.size}"
            _, sent = self._try(data, (s.account,), label, report, batch=False, reward=reward(s))
            if sent is not None:
                window.append(sent)

        def split(b: Batch, halves: tuple[Batch, Batch]) -> None:
            self._event(logging.INFO, "batch_split", accounts=len(b.accounts), into=len(halves[0].accounts))

        play_actions(plan.actions, self.gas_model, batch=batch, step=step, on_split=split)
        flush()

    # --- planning ----------------------------------------------------------------------------------

    def _plan(self, targets: list[AccountHealth], head: int, own: AccountHealth | None) -> PassPlan | None:
        """The capital plan of the pass, or None if the keeper's own book cannot be valued."""
        if own is None:
            self._event(logging.ERROR, "failed", stage="plan", error="own health unreadable")
            return None
        books = self.books.books([*targets, own], head)
        keeper_book, target_books = books[-1], books[:-1]
        held = {m for b in books for m in b.positions}
        terms = self.books.terms(held, head)
        if not set(keeper_book.positions) <= set(terms):
            self._event(logging.ERROR, "failed", stage="plan", error="a market of the keeper is unpriced")
            return None
        self._own_book = (head, keeper_book, terms)
        priced = [b for b in target_books if set(b.positions) <= set(terms)]
        self._reward_basis = ({b.account: b for b in priced}, terms)
        for b in target_books:
            if b not in priced:
                self._event(logging.WARNING, "failed", account=b.account, stage="plan", error="unpriced")
        return plan_pass(
            priced,
            keeper_book,
            terms,
            buffer_ratio=self.buffer_ratio,
            min_step_notional=self.min_step_notional,
            gas=self.gas_model,
            max_notional=self.max_inherit_notional,
        )

    # --- sending -----------------------------------------------------------------------------------

    def _try(
        self,
        data: bytes,
        accounts: tuple[str, ...],
        label: str,
        report: PassReport,
        *,
        batch: bool,
        reward: int | None = None,
    ) -> tuple[bool, _InFlight | None]:
        """Dry-run, estimate, pass the fee gate (``reward``: the keeper reward, WAD) and (unless in
        dry-run mode) send one transaction. Returns whether the dry run passed (a fee verdict
        counts as passed: not split) and what was sent."""
        call = {"from": self.address, "to": self.engine_address, "data": HexBytes(data)}
        try:
            answer = self.rpc.call("eth_call", lambda: self._w3.eth.call(call, "latest"))
            gas = self.rpc.call("eth_estimateGas", lambda: self._w3.eth.estimate_gas(call, "latest"))
        except ContractLogicError as err:
            name = self._why(err)
            if batch and len(accounts) > 1:
                self._event(logging.INFO, "dry_run_failed", accounts=len(accounts), error=name)
            elif name == "NotLiquidatable":
                report.lost_races += 1
                self._event(logging.INFO, "lost_race", account=accounts[0], stage="dry_run", reason=name)
            else:
                report.failed += 1
                self._event(logging.WARNING, "failed", account=accounts[0], stage="dry_run", error=name)
            return False, None
        except (RpcUnavailable, Web3RPCError) as err:
            report.failed += len(accounts)
            error = rpc_message(err) if isinstance(err, Web3RPCError) else str(err)
            self._event(logging.ERROR, "failed", accounts=label, stage="rpc", error=error)
            return True, None  # not a dry-run verdict: do not split, the next pass retries
        if batch and abi_decode(["uint256"], bytes(answer))[0] == 0:
            report.lost_races += len(accounts)  # nobody is liquidatable any more: nothing to send
            self._event(logging.INFO, "lost_race", accounts=label, stage="dry_run", reason="all skipped")
            return True, None
        fees = self._fee_gate(gas, reward, accounts, label, report)
        if fees is None:
            return True, None
        if self.dry_run:
            self._event(logging.INFO, "would_liquidate", accounts=label, gas=gas)
            return True, None
        limit = gas_limit(gas, self.gas_margin_pct)
        try:
            sent = self.sender.send({"to": self.engine_address, "data": data, "gas": limit, "value": 0}, fees)
        except FeeCapped as err:  # the base fee rose over the cap while the send was retried
            self._fee_capped(err, accounts, label, report)
            return True, None
        except RpcUnavailable as err:
            self.sender.forget_nonce()  # the transaction may or may not have reached the node
            report.failed += len(accounts)
            self._event(logging.ERROR, "failed", accounts=label, stage="send", error=str(err))
            return True, None
        except (Web3RPCError, SendError) as err:
            report.failed += len(accounts)
            error = rpc_message(err) if isinstance(err, Web3RPCError) else str(err)
            self._event(logging.ERROR, "failed", accounts=label, stage="send", error=error)
            return True, None
        report.sent += 1
        report.tx_hashes.append(sent.tx_hash)
        self._event(
            logging.INFO,
            "sent",
            accounts=label,
            tx=sent.tx_hash,
            nonce=sent.nonce,
            gas_limit=limit,
            max_fee_gwei=gwei(sent.fees[0]),
            priority_fee_gwei=gwei(sent.fees[1]),
        )
        return True, _InFlight(label, accounts, sent)

    def _await(self, tx: _InFlight, report: PassReport) -> None:
        """Waits for the receipt of ``tx`` (of any hash signed for its nonce, re-priced while it
        waits) and counts what its events say."""
        try:
            receipt = self._wait_receipt(tx.sent)
        except (RpcUnavailable, TimeoutError) as err:
            report.failed += len(tx.accounts)
            hashes = ",".join(tx.sent.hashes)
            self._event(
                logging.ERROR, "failed", accounts=tx.label, stage="receipt", tx=hashes, error=str(err)
            )
            return
        mined = tx.sent.mined or tx.sent.tx_hash
        if mined != tx.sent.hashes[0]:  # a replacement mined: the pass's hashes name it instead
            report.tx_hashes = [mined if h == tx.sent.hashes[0] else h for h in report.tx_hashes]
        if receipt["status"] != 1:
            report.failed += len(tx.accounts)
            self._event(logging.ERROR, "failed", accounts=tx.label, stage="mined", tx=mined)
            return
        report.confirmed += 1
        abi = self.engine_abi
        for log in receipt["logs"]:
            if log["address"].lower() != self.engine_address.lower() or not log["topics"]:
                continue
            topic = bytes(log["topics"][0])
            if (
                topic == abi.topic_liquidated
                and topic_address(log["topics"][2]).lower() == self.address.lower()
            ):
                report.liquidated.append(topic_address(log["topics"][1]))
            elif topic == abi.topic_position_liquidated:
                report.partial_steps += 1
            elif topic == abi.topic_skipped:
                report.lost_races += 1
                account = topic_address(log["topics"][1])
                self._event(logging.INFO, "lost_race", account=account, stage="mined", tx=mined)
        self._event(
            logging.INFO,
            "confirmed",
            accounts=tx.label,
            tx=mined,
            block=receipt["blockNumber"],
            gas_used=receipt["gasUsed"],
        )
