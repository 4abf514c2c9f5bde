"""The keeper's fee gate (docs/keeper.md §"RPC failures, nonces and fees"): before a transaction
that passed its dry run and estimate is sent, the fees it would be signed with must be under the
operator's cap (``fee_capped`` otherwise: counted as failed, nothing sent) and the keeper reward
it pays (``K`` of docs/design.md §4) must cover its gas at those fees (``unprofitable``
otherwise: counted, nothing sent, the next pass looks again).

The reward is in the quote token (WAD), the gas in ETH: the cost is converted at ``eth_price``
(the quote value of 1 ETH, WAD), the operator's setting or else the price of the engine's market
named ``ETH`` at the pass's block. Without either there is no floor (one ``no_eth_price``
warning).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from web3.exceptions import ContractLogicError, Web3RPCError

from backstop.chain.tx import gwei
from backstop.decisions import Batch, Book, MarketTerms, PartialStep
from backstop.decisions.capital import step_reward, whole_reward
from backstop.keeper.risk import human
from backstop.keeper.sender import FeeCapped
from backstop.keeper.state import PassReport
from backstop.units import WAD

#: The name of the market whose price converts gas (ETH) into the quote token by default.
ETH_MARKET = "ETH"


def action_reward(
    action: Batch | PartialStep, books: Mapping[str, Book], terms: Mapping[int, MarketTerms]
) -> int:
    """The keeper reward of ``action`` (WAD): Σ ``whole_reward`` of a batch's accounts (an
    account without a book in ``books`` counts 0), or ``step_reward`` of a partial step."""
    if isinstance(action, PartialStep):
        return step_reward(terms[action.market_id], action.size)
    return sum(whole_reward(books[a], terms) for a in action.accounts if a in books)


def gas_cost(gas: int, max_fee_per_gas: int, eth_price: int) -> int:
    """What ``gas`` costs at ``max_fee_per_gas`` (wei) in the quote token (WAD), rounded up:
    ``⌈gas · maxFee · eth_price / 10¹⁸⌉`` with ``eth_price`` the quote value of 1 ETH (WAD)."""
    return -(-gas * max_fee_per_gas * eth_price // WAD)


def profitable(reward: int, cost: int) -> bool:
    """Whether a reward covers the gas: ``reward ≥ cost`` (both WAD, quote token)."""
    return reward >= cost


class FeeGate:
    """The fee gate of :class:`backstop.keeper.Keeper`'s act phase (a mixin over its state)."""

    # Set by Keeper.__init__ (declared for type checkers).
    eth_price: int | None
    market_names: dict[int, str]
    sender: Any
    books: Any
    _eth_warned: bool
    _pass_eth_price: int | None
    _event: Callable[..., None]

    def _read_eth_price(self, head: int) -> None:
        """The pass's ``eth_price``: the setting, else the ``ETH`` market's price at ``head``;
        None (no floor, one ``no_eth_price`` warning per keeper) without either."""
        if self.eth_price is not None:
            self._pass_eth_price = self.eth_price
            return
        ids = [m for m, name in self.market_names.items() if name.upper() == ETH_MARKET]
        price = None
        if ids:
            try:
                terms = self.books.terms({ids[0]}, head)
            except (ContractLogicError, Web3RPCError, ValueError):  # e.g. no such market id
                terms = {}
            price = terms[ids[0]].price if ids[0] in terms else None
        self._pass_eth_price = price
        if price is None and not self._eth_warned:
            self._eth_warned = True
            reason = "no market named ETH" if not ids else "the ETH market's price is unreadable"
            self._event(logging.WARNING, "no_eth_price", reason=reason, floor="off")

    def _fee_gate(
        self, gas: int, reward: int | None, accounts: tuple[str, ...], label: str, report: PassReport
    ) -> tuple[int, int] | None:
        """The fees to sign with, or None when the cap or the floor stops the transaction (logged
        and counted)."""
        try:
            fees = self.sender.fee_caps()
        except FeeCapped as err:
            self._fee_capped(err, accounts, label, report)
            return None
        price = self._pass_eth_price
        if reward is not None and price is not None:
            cost = gas_cost(gas, fees[0], price)
            if not profitable(reward, cost):
                report.unprofitable += len(accounts)
                self._event(
                    logging.INFO,
                    "unprofitable",
                    accounts=label,
                    reward=human(reward, 6),
                    gas_cost=human(cost, 6),
                    gas=gas,
                    max_fee_gwei=gwei(fees[0]),
                )
                return None
        return fees

    def _fee_capped(self, err: FeeCapped, accounts: tuple[str, ...], label: str, report: PassReport) -> None:
        report.failed += len(accounts)
        self._event(
            logging.WARNING,
            "fee_capped",
            accounts=label,
            base_fee_gwei=gwei(err.base_fee),
            max_fee_gwei=gwei(err.max_fee),
        )
