"""The seam between the stress runner and what it plays a scenario on.

:class:`ScenarioBackend` is the protocol the runner needs (a scenario player; not to be confused
with :class:`backstop.chain.evm.Backend`, an EVM). :data:`STEP_HANDLERS` is the one dispatch over
the step kinds: each backend implements one ``play_<kind>`` method per step kind, and
:func:`dispatch` finds it. :class:`Players` holds what both backends share (account names, fresh
order nonces).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from backstop.orders import FAR_EXPIRY, Order
from backstop.scenario import (
    Advance,
    CancelUnstake,
    CancelUpdate,
    Deposit,
    ExecuteUpdate,
    KeeperPass,
    Liquidate,
    LiquidateMany,
    Price,
    RequestUnstake,
    Scenario,
    ScenarioError,
    Settle,
    Stake,
    Step,
    Trade,
    Unstake,
    UpdateMarket,
    Withdraw,
)
from backstop.stress.results import AccountView, Outcome
from backstop.units import mul_wad_up

#: Step kind → the name of the backend method that plays it (``play_<name>(step) -> Outcome``).
STEP_HANDLERS: dict[type[Step], str] = {
    Advance: "play_advance",
    Price: "play_price",
    Deposit: "play_deposit",
    Withdraw: "play_withdraw",
    Stake: "play_stake",
    RequestUnstake: "play_request_unstake",
    Unstake: "play_unstake",
    CancelUnstake: "play_cancel_unstake",
    Settle: "play_settle",
    Liquidate: "play_liquidate",
    LiquidateMany: "play_liquidate_many",
    Trade: "play_trade",
    KeeperPass: "play_keeper",
    UpdateMarket: "play_update_market",
    ExecuteUpdate: "play_execute_update",
    CancelUpdate: "play_cancel_update",
}


class ScenarioBackend(Protocol):
    """Plays steps and reads views. ``addresses`` maps account names to addresses after ``setup``."""

    name: str
    title: str
    chain_id: int | None
    addresses: dict[str, str]

    def setup(self, scenario: Scenario) -> None:
        """Deploys, funds wallets and makes the initial margin deposits."""
        ...

    def execute(self, step: Step) -> Outcome:
        """Plays one step (through :func:`dispatch`)."""
        ...

    def solvency(self) -> tuple[int, int, int]:
        """``(vault_assets, liabilities, dust)`` as ``engine.solvency()`` returns them."""
        ...

    def account(self, name: str) -> AccountView: ...

    def equities(self) -> dict[str, int | None]:
        """Every account's equity (None where a price is unusable)."""
        ...

    def prices(self) -> dict[str, int]:
        """The oracle answer of every market (WAD), stale or not."""
        ...

    def fund(self) -> tuple[int, int]:
        """The insurance fund's ``(totalAssets in token units, totalSupply in share units)``."""
        ...

    def fund_shares(self, names: Sequence[str]) -> dict[str, int]:
        """Each named account's fund shares: held, plus escrowed in a pending redeem request."""
        ...

    def clock(self) -> int:
        """Seconds since the end of ``setup`` on the backend's clock (the chain's block time)."""
        ...

    def checks(self) -> list[str]:
        """Extra invariants after a step (problems as text)."""
        ...

    def name_of(self, address: str) -> str:
        """The account name of ``address`` (the address itself if it has none)."""
        ...


def dispatch(backend: Any, step: Step, player: str) -> Outcome:
    """Plays ``step`` with ``backend``'s handler for its kind (:data:`STEP_HANDLERS`); ``player``
    names the backend in the error for a kind it cannot play."""
    handler: Callable[[Any], Outcome] | None = getattr(backend, STEP_HANDLERS.get(type(step), ""), None)
    if handler is None:
        raise ScenarioError(f"steps[{step.index}]: {player} cannot play {step.action!r}")
    return handler(step)


class Players:
    """What both backends share: account names ↔ addresses, and orders with fresh nonces."""

    name = "backend"
    title = "a backend"
    chain_id: int | None = None

    def __init__(self) -> None:
        self.addresses: dict[str, str] = {}
        self.scenario: Scenario | None = None
        self._nonces: dict[str, int] = {}

    def checks(self) -> list[str]:
        """No extra invariants unless a backend has some."""
        return []

    def _orders(self, step: Trade) -> tuple[Order, Order]:
        """``(maker, taker)`` orders of a ``via: match`` trade: one per side at the step's price,
        fresh nonces (the buyer's first)."""
        buy, sell = self._order(step, step.buyer, True), self._order(step, step.seller, False)
        return (sell, buy) if step.maker == "seller" else (buy, sell)

    def _maker_order(self, step: Trade) -> tuple[Order, str]:
        """A ``via: fill`` trade: the maker's order (fresh nonce) and the name of the taker, who
        sends ``fillOrder`` itself and signs no order."""
        order = self._order(step, step.maker_account, step.maker == "buyer")
        return order, step.taker_account

    def _order(self, step: Trade, name: str, is_buy: bool) -> Order:
        """``name``'s order for ``step`` on side ``is_buy``, with its next nonce."""
        assert self.scenario is not None
        nonce = self._nonces.get(name, 0)
        self._nonces[name] = nonce + 1
        market_id = self.scenario.market_id(step.market)
        return Order(self.addresses[name], market_id, is_buy, step.size, step.price, nonce, FAR_EXPIRY)

    def name_of(self, address: str) -> str:
        for name, addr in self.addresses.items():
            if addr.lower() == address.lower():
                return name
        return address


def partial_record(
    account: str, liquidator: str, market: str, size: int, price: int, keeper_reward: int, insurance_fee: int
) -> dict[str, Any]:
    """The report entry of a partial liquidation (``PositionLiquidated``): the fields of a whole one,
    with ``notional = size·price`` rounded up as the engine sizes it and no deficit (a partial step
    leaves the account solvent), plus ``market`` and ``size``."""
    return {
        "account": account,
        "liquidator": liquidator,
        "notional": mul_wad_up(size, price),
        "keeper_reward": keeper_reward,
        "insurance_fee": insurance_fee,
        "deficit": 0,
        "covered": 0,
        "socialized": 0,
        "market": market,
        "size": size,
    }


def keeper_outcome(
    liquidations: list[dict[str, Any]],
    failed: int,
    gas: int | None,
    name_of: Callable[[str], str],
    skipped: Sequence[str] = (),
) -> Outcome:
    """A keeper pass's or a ``liquidate_many`` batch's outcome: who was liquidated, who was skipped
    (``LiquidationSkipped``: no longer liquidatable), how many attempts failed."""
    names = ", ".join(name_of(liq["account"]) for liq in liquidations) or "nobody"
    note = f"liquidated {names}" + (f"; {failed} failed" if failed else "")
    if skipped:
        note += "; skipped " + ", ".join(name_of(a) for a in skipped)
    return Outcome(
        reverted=failed > 0,
        error=f"KeeperFailed({failed})" if failed else None,
        gas_used=gas,
        liquidations=liquidations,
        note=note,
    )
