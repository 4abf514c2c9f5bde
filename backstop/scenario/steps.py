"""The typed form of a scenario (docs/scenario-format.md): its steps and the scenario itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from backstop.config import MarketConfig, SuiteConfig

#: ``withdraw: {amount: max}``: all free collateral, floored to a token unit.
MAX = "max"
#: ``request_unstake: {shares: all}`` / ``unstake: {shares: all}``: every share.
ALL = "all"
#: A trade's ``via``: two signed orders matched by the relayer (``matchOrders``, the default) ...
MATCH = "match"
#: ... or the maker's signed order filled by the taker itself (``fillOrder``, sent by the taker).
FILL = "fill"
#: The values a trade's ``maker`` (default "seller") and ``via`` (default ``MATCH``) may take.
TRADE_MAKERS = ("buyer", "seller")
TRADE_VIAS = (MATCH, FILL)

#: The insurance fund's ERC-4626 ``_decimalsOffset()``: share tokens have collateral decimals + 6.
FUND_DECIMALS_OFFSET = 6

DEFAULT_COOLDOWN = 7 * 86_400
DEFAULT_WINDOW = 2 * 86_400


class ScenarioError(ValueError):
    """The scenario file is malformed; the message says where and why."""


# --- typed steps -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """A scenario step. ``index`` is its 0-based position; ``expect_revert`` is False, True, or the
    name of the custom error the step must revert with."""

    index: int
    expect_revert: bool | str = False
    action: ClassVar[str] = ""
    #: Keys of the step's mapping that name accounts (checked against ``accounts``).
    account_keys: ClassVar[tuple[str, ...]] = ()

    @property
    def expects_revert(self) -> bool:
        return self.expect_revert is not False

    def accounts(self) -> list[str]:
        """Every account the step names, in key order."""
        return [getattr(self, k) for k in self.account_keys if getattr(self, k) is not None]


@dataclass(frozen=True)
class Stake(Step):
    """Deposit ``amount`` token units into the insurance fund (ERC-4626 ``deposit``)."""

    account: str = ""
    amount: int = 0
    action: ClassVar[str] = "stake"
    account_keys: ClassVar[tuple[str, ...]] = ("account",)


@dataclass(frozen=True)
class Trade(Step):
    """``size`` (WAD) at ``price`` between ``buyer`` and ``seller``, in full. ``via`` ``MATCH``: two
    signed orders matched by the relayer (``matchOrders``); ``FILL``: the maker signs its order and
    the taker sends ``fillOrder`` itself. ``maker`` ("seller" or "buyer") says whose order makes."""

    buyer: str = ""
    seller: str = ""
    market: str = ""
    size: int = 0
    price: int = 0
    maker: str = "seller"  # "buyer" or "seller"
    via: str = MATCH  # MATCH or FILL
    action: ClassVar[str] = "trade"
    account_keys: ClassVar[tuple[str, ...]] = ("buyer", "seller")

    @property
    def maker_account(self) -> str:
        """The account whose order makes (the one that signs, with ``via: fill``)."""
        return self.buyer if self.maker == "buyer" else self.seller

    @property
    def taker_account(self) -> str:
        """The other account (the sender of ``fillOrder``, with ``via: fill``)."""
        return self.seller if self.maker == "buyer" else self.buyer


@dataclass(frozen=True)
class Price(Step):
    """New oracle answers (WAD per market name), stamped with the current chain time."""

    prices: Mapping[str, int] = field(default_factory=dict)
    action: ClassVar[str] = "price"


@dataclass(frozen=True)
class Advance(Step):
    """Moves chain time forward by ``seconds``."""

    seconds: int = 0
    action: ClassVar[str] = "advance"


@dataclass(frozen=True)
class Liquidate(Step):
    """``by`` calls ``liquidate(account)``; with ``market`` and ``size`` (WAD base units), the
    partial step ``liquidatePosition(account, market, size)`` instead (docs/design.md §4a)."""

    account: str = ""
    by: str = ""
    market: str | None = None
    size: int | None = None
    action: ClassVar[str] = "liquidate"
    account_keys: ClassVar[tuple[str, ...]] = ("account", "by")

    @property
    def partial(self) -> bool:
        return self.market is not None


@dataclass(frozen=True)
class LiquidateMany(Step):
    """``by`` calls ``liquidateMany(accounts)`` (docs/design.md §4b); a name may repeat."""

    targets: tuple[str, ...] = ()
    by: str = ""
    action: ClassVar[str] = "liquidate_many"
    account_keys: ClassVar[tuple[str, ...]] = ("by",)

    def accounts(self) -> list[str]:
        return [*self.targets, self.by]


@dataclass(frozen=True)
class KeeperPass(Step):
    """One pass of the real keeper, signing as ``by``."""

    by: str = ""
    action: ClassVar[str] = "keeper"
    account_keys: ClassVar[tuple[str, ...]] = ("by",)


@dataclass(frozen=True)
class Settle(Step):
    """``settle(account)``, sent by ``by`` (default: the relayer)."""

    account: str = ""
    by: str | None = None
    action: ClassVar[str] = "settle"
    account_keys: ClassVar[tuple[str, ...]] = ("account", "by")


@dataclass(frozen=True)
class Deposit(Step):
    """Deposit ``amount`` token units of margin."""

    account: str = ""
    amount: int = 0
    action: ClassVar[str] = "deposit"
    account_keys: ClassVar[tuple[str, ...]] = ("account",)


@dataclass(frozen=True)
class Withdraw(Step):
    """Withdraw ``amount`` token units of margin, or ``MAX``: all free collateral."""

    account: str = ""
    amount: int | str = 0
    action: ClassVar[str] = "withdraw"
    account_keys: ClassVar[tuple[str, ...]] = ("account",)


@dataclass(frozen=True)
class RequestUnstake(Step):
    """``requestRedeem(shares, account, account)``: escrow ``shares`` (raw share units) or ``ALL``
    of the account's shares and start the fund's cooldown."""

    account: str = ""
    shares: int | str = ALL
    action: ClassVar[str] = "request_unstake"
    account_keys: ClassVar[tuple[str, ...]] = ("account",)


@dataclass(frozen=True)
class Unstake(Step):
    """Redeem ``shares`` (raw share units) of the claimable request, or ``ALL`` of the request."""

    account: str = ""
    shares: int | str = ALL
    action: ClassVar[str] = "unstake"
    account_keys: ClassVar[tuple[str, ...]] = ("account",)


@dataclass(frozen=True)
class UpdateMarket(Step):
    """The admin (the deployer) sends ``scheduleMarketUpdate`` for ``market``: ``params`` is the
    market as listed with the step's keys (e.g. ``maintenance_margin``) changed."""

    market: str = ""
    params: MarketConfig | None = None
    action: ClassVar[str] = "update_market"


@dataclass(frozen=True)
class ExecuteUpdate(Step):
    """The admin sends ``executeMarketUpdate`` for ``market``."""

    market: str = ""
    action: ClassVar[str] = "execute_update"


@dataclass(frozen=True)
class CancelUpdate(Step):
    """The admin sends ``cancelMarketUpdate`` for ``market``."""

    market: str = ""
    action: ClassVar[str] = "cancel_update"


@dataclass(frozen=True)
class CancelUnstake(Step):
    """``cancelRedeemRequest(account)``: the escrowed shares come back by the cancel rule."""

    account: str = ""
    action: ClassVar[str] = "cancel_unstake"
    account_keys: ClassVar[tuple[str, ...]] = ("account",)


STEP_TYPES: dict[str, type[Step]] = {
    cls.action: cls
    for cls in (
        Stake,
        Trade,
        Price,
        Advance,
        Liquidate,
        LiquidateMany,
        KeeperPass,
        Settle,
        Deposit,
        Withdraw,
        RequestUnstake,
        Unstake,
        UpdateMarket,
        ExecuteUpdate,
        CancelUpdate,
        CancelUnstake,
    )
}


# --- the scenario ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A validated scenario. Token amounts are token units, sizes and prices WAD integers."""

    name: str
    collateral_decimals: int
    markets: tuple[MarketConfig, ...]
    accounts: Mapping[str, int]  # name -> initial margin deposit (token units), in declared order
    steps: tuple[Step, ...]
    cooldown: int = DEFAULT_COOLDOWN
    window: int = DEFAULT_WINDOW
    floor_tokens: int = 0
    per_event_cap_tokens: int = 0
    description: str = ""
    source: str | None = None

    @property
    def scale(self) -> int:
        """WAD per token unit."""
        return 10 ** (18 - self.collateral_decimals)

    @property
    def share_decimals(self) -> int:
        return self.collateral_decimals + FUND_DECIMALS_OFFSET

    @property
    def market_names(self) -> list[str]:
        return [m.name for m in self.markets]

    def market_id(self, name: str) -> int:
        """Market ids follow the scenario's order, from 0."""
        return self.market_names.index(name)

    def market(self, name: str) -> MarketConfig:
        return self.markets[self.market_id(name)]

    def account_names(self) -> list[str]:
        """Every account, in order of first appearance (the ``accounts`` mapping, then the steps)."""
        names = list(self.accounts)
        for step in self.steps:
            for name in step.accounts():
                if name not in names:
                    names.append(name)
        return names

    def suite_config(self) -> SuiteConfig:
        """The deployment config (mock token and feeds) of ``backstop.chain.deploy``."""
        return SuiteConfig(
            markets=self.markets,
            collateral_decimals=self.collateral_decimals,
            cooldown=self.cooldown,
            window=self.window,
            fund_floor_tokens=self.floor_tokens,
            fund_per_event_cap_tokens=self.per_event_cap_tokens,
        )

    def stakers(self) -> list[str]:
        """The accounts that stake into the insurance fund, in order of first appearance."""
        names = self.account_names()
        staking = {step.account for step in self.steps if isinstance(step, Stake)}
        return [n for n in names if n in staking]

    def wallet_needs(self) -> dict[str, tuple[int, int]]:
        """Per account, token units it must hold to make every deposit and every stake it is
        asked to: ``(for the vault, for the fund)``. Withdrawals only add to a wallet."""
        needs = {name: [self.accounts.get(name, 0), 0] for name in self.account_names()}
        for step in self.steps:
            if isinstance(step, Deposit):
                needs[step.account][0] += step.amount
            elif isinstance(step, Stake):
                needs[step.account][1] += step.amount
        return {name: (v, f) for name, (v, f) in needs.items()}
