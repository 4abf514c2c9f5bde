"""The stress runner: plays a scenario (``SCENARIOS.md``) through a backend and builds the report.

Two backends implement the same small seam (``Backend``):

- ``ChainBackend`` deploys a fresh suite with ``backstop.chain.deploy`` on the connected (local) chain,
  funds every named account's wallet from the mock token, signs orders with the test accounts'
  keys and matches them from a relayer (test account 0), and runs the real keeper
  (``backstop.keeper.Keeper.run_once``) for ``keeper`` steps;
- ``ModelBackend`` plays the same steps on the exact-integer reference model
  (``backstop.model.Model``); its keeper step is ``backstop.decisions.plan_liquidations`` over the model's
  health of every account, then ``Model.liquidate`` in that order, re-checking each first.

Both produce a ``RunResult`` from their own views, so the two reports of one scenario must be
equal except for ``gas_used`` and ``chain_id``. After every step the runner checks the solvency
identity (DESIGN §9): ``vault_assets = liabilities + dust`` with ``dust ≥ 0``. A step whose
outcome differs from its ``expect_revert`` fails the run; the run always plays every step, so the
report is complete, and ``RunResult.ok`` says whether it passed.

Account names map to test accounts in order of first appearance (index 1, 2, ...; index 0 deploys
and relays). ``withdraw: max`` withdraws the free collateral floored to a token unit; when that is
≤ 0 the withdrawal of 0 reverts (``ZeroAmount``). ``unstake`` without ``shares`` redeems the whole
pending request (0 shares, hence ``NoWithdrawRequest``, when there is none).
"""

from __future__ import annotations

import functools
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backstop.decisions import plan_liquidations
from backstop.model import MarketParams, Model, ModelRevert
from backstop.orders import Order, sign_order, to_tuple
from backstop.scenario import (
    ALL,
    MAX,
    Advance,
    Deposit,
    KeeperPass,
    Liquidate,
    Price,
    RequestUnstake,
    Scenario,
    ScenarioError,
    Settle,
    Stake,
    Step,
    Trade,
    Unstake,
    Withdraw,
    describe,
)
from backstop.units import WAD

#: Orders never expire within a scenario.
FAR_FUTURE = 2**40
#: The mnemonic of Ape's (and anvil's) default test accounts (ape-config.yaml ``test.mnemonic``).
TEST_MNEMONIC = "test test test test test test test test test test test junk"
#: Model time at the start of a run (any value works: only differences matter).
MODEL_START_TIME = 1_700_000_000

TOTAL_KEYS = (
    "bad_debt",
    "insurance_covered",
    "socialized",
    "keeper_rewards",
    "insurance_fees",
    "trading_fees",
)
LIQUIDATION_FIELDS = ("notional", "keeper_reward", "insurance_fee", "deficit", "covered", "socialized")

log = logging.getLogger("backstop.stress")


# --- results ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one step did on a backend. ``liquidations`` hold addresses and WAD integers."""

    reverted: bool = False
    error: str | None = None
    gas_used: int | None = None
    liquidations: list[dict[str, Any]] = field(default_factory=list)
    trading_fees: int = 0  # WAD
    flow: int = 0  # token units into (+) or out of (-) the acting account's wallet
    note: str = ""
    crashed: bool = False  # the runner itself failed (a node error, a bug): never expected


@dataclass(frozen=True)
class AccountView:
    """An account's state read from a backend's views (WAD). ``equity`` / ``free_collateral`` are
    None when a price it needs is unusable (stale). ``positions``: market name -> (size, openNotional),
    non-zero sizes only. ``fund_shares`` in raw share units."""

    margin: int
    equity: int | None
    free_collateral: int | None
    pending_loss: int
    positions: Mapping[str, tuple[int, int]]
    fund_shares: int


@dataclass
class StepRecord:
    index: int
    action: str
    description: str
    ok: bool
    reverted: bool
    gas_used: int | None
    error: str | None
    expect_revert: bool | str
    note: str = ""


@dataclass
class LiquidationRecord:
    step: int
    account: str
    liquidator: str
    notional: int
    keeper_reward: int
    insurance_fee: int
    deficit: int
    covered: int
    socialized: int


@dataclass
class Series:
    """Values after setup (x = -1) and after every step (x = its index), for the chart. Floats in
    whole tokens / quote units: for plotting only."""

    x: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    prices: dict[str, list[float]] = field(default_factory=dict)
    equity: dict[str, list[float]] = field(default_factory=dict)
    fund_assets: list[float] = field(default_factory=list)
    socialized: list[float] = field(default_factory=list)


@dataclass
class RunResult:
    scenario: Scenario
    backend: str
    chain_id: int | None
    steps: list[StepRecord]
    accounts: dict[str, AccountView]
    insurance_assets: int  # WAD
    insurance_supply: int  # raw share units
    liquidations: list[LiquidationRecord]
    totals: dict[str, int]
    solvency: tuple[int, int, int]
    failures: list[str]
    series: Series
    flows: dict[str, int] = field(default_factory=dict)  # token units each wallet received (+) or paid (-)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


# --- the backend seam ------------------------------------------------------------------------------------


class Backend(ABC):
    """Plays steps and reads views. ``addresses`` maps account names to addresses after ``setup``."""

    name = "backend"
    title = "a backend"
    chain_id: int | None = None

    def __init__(self) -> None:
        self.addresses: dict[str, str] = {}
        self.scenario: Scenario | None = None
        self._nonces: dict[str, int] = {}

    @abstractmethod
    def setup(self, scenario: Scenario) -> None:
        """Deploys, funds wallets and makes the initial margin deposits."""

    @abstractmethod
    def execute(self, step: Step) -> Outcome: ...

    @abstractmethod
    def solvency(self) -> tuple[int, int, int]:
        """``(vault_assets, liabilities, dust)`` as ``engine.solvency()`` returns them."""

    @abstractmethod
    def account(self, name: str) -> AccountView: ...

    @abstractmethod
    def equities(self) -> dict[str, int | None]:
        """Every account's equity (None where a price is unusable)."""

    @abstractmethod
    def prices(self) -> dict[str, int]:
        """The oracle answer of every market (WAD), stale or not."""

    @abstractmethod
    def fund(self) -> tuple[int, int]:
        """The insurance fund's ``(totalAssets in token units, totalSupply in share units)``."""

    def checks(self) -> list[str]:
        """Extra invariants after a step (problems as text)."""
        return []

    # shared helpers -----------------------------------------------------------------------------------

    def _orders(self, step: Trade) -> tuple[Order, Order]:
        """``(maker, taker)`` orders of a trade: one per side at the step's price, fresh nonces."""
        assert self.scenario is not None
        market_id = self.scenario.market_id(step.market)

        def order(name: str, is_buy: bool) -> Order:
            nonce = self._nonces.get(name, 0)
            self._nonces[name] = nonce + 1
            return Order(self.addresses[name], market_id, is_buy, step.size, step.price, nonce, FAR_FUTURE)

        buy, sell = order(step.buyer, True), order(step.seller, False)
        return (sell, buy) if step.maker == "seller" else (buy, sell)

    def name_of(self, address: str) -> str:
        for name, addr in self.addresses.items():
            if addr.lower() == address.lower():
                return name
        return address


# --- the reference model --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def derive_test_addresses(count: int, mnemonic: str = TEST_MNEMONIC) -> tuple[str, ...]:
    """Addresses of the first ``count`` test accounts of ``mnemonic`` (``m/44'/60'/0'/0/i``)."""
    from eth_account import Account
    from eth_account.hdaccount import key_from_seed, seed_from_mnemonic

    seed = seed_from_mnemonic(mnemonic, "")
    return tuple(Account.from_key(key_from_seed(seed, f"m/44'/60'/0'/0/{i}")).address for i in range(count))


class ModelBackend(Backend):
    """The scenario on ``backstop.model.Model``. Time is ``MODEL_START_TIME`` plus the advances; a
    market's price is stale once more than its heartbeat has passed since its last price step."""

    name = "model"
    title = "the reference model"

    def __init__(self, addresses: Mapping[str, str] | None = None, start_time: int = MODEL_START_TIME):
        super().__init__()
        self._given = dict(addresses or {})
        self.start_time = start_time
        self.now = start_time
        self.model: Model | None = None
        self._price_time: list[int] = []

    def setup(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.now, self._price_time, self._nonces = self.start_time, [], {}
        names = scenario.account_names()
        if all(n in self._given for n in names):
            self.addresses = {n: self._given[n] for n in names}
        else:
            derived = derive_test_addresses(len(names) + 1)[1:]
            self.addresses = dict(zip(names, derived, strict=True))
        self.model = Model(
            scenario.collateral_decimals,
            cooldown=scenario.cooldown,
            window=scenario.window,
            floor_tokens=scenario.floor_tokens,
            per_event_cap_tokens=scenario.per_event_cap_tokens,
        )
        for m in scenario.markets:
            params = MarketParams(
                im_ratio=m.im_ratio,
                mm_ratio=m.mm_ratio,
                keeper_reward_ratio=m.keeper_reward_ratio,
                insurance_fee_ratio=m.insurance_fee_ratio,
                price_band_ratio=m.price_band_ratio,
                maker_fee_ratio=m.maker_fee_ratio,
                taker_fee_ratio=m.taker_fee_ratio,
                oi_cap=m.open_interest_cap,
            )
            self.model.add_market(params, m.mock_price)
            self._price_time.append(self.now)
        self._sync()
        for name, amount in scenario.accounts.items():
            if amount:
                self.model.deposit(self.addresses[name], amount)

    def _sync(self) -> None:
        """Model time and staleness as the chain would see them now."""
        assert self.model is not None and self.scenario is not None
        self.model.now = self.now
        for m, market in enumerate(self.scenario.markets):
            self.model.set_stale(m, self.now - self._price_time[m] > market.heartbeat)

    def _call(self, fn: Callable[[], Any]) -> tuple[Any, Outcome | None]:
        try:
            return fn(), None
        except ModelRevert as err:
            return None, Outcome(reverted=True, error=err.name)

    def execute(self, step: Step) -> Outcome:
        assert self.model is not None and self.scenario is not None
        model, scale = self.model, self.scenario.scale
        self._sync()
        addr = self.addresses.get(getattr(step, "account", ""), "")
        if isinstance(step, Advance):
            self.now += step.seconds
            self._sync()
            return Outcome()
        if isinstance(step, Price):
            for market, price in step.prices.items():
                m = self.scenario.market_id(market)
                model.set_price(m, price)
                self._price_time[m] = self.now
            self._sync()
            return Outcome()
        if isinstance(step, Deposit):
            return self._call(lambda: model.deposit(addr, step.amount))[1] or Outcome(flow=-step.amount)
        if isinstance(step, Withdraw):
            amount = step.amount
            if amount == MAX:
                free, failed = self._call(lambda: model.free_collateral(addr))
                if failed:
                    return failed
                amount = max(free // scale, 0)
            return self._call(lambda: model.withdraw(addr, amount))[1] or Outcome(flow=amount)
        if isinstance(step, Stake):
            return self._call(lambda: model.stake(addr, step.amount))[1] or Outcome(flow=-step.amount)
        if isinstance(step, RequestUnstake):
            shares = model.fund_shares(addr) if step.shares == ALL else step.shares
            return self._call(lambda: model.request_unstake(addr, shares))[1] or Outcome()
        if isinstance(step, Unstake):
            request = model.withdraw_request(addr)
            shares = (request[0] if request else 0) if step.shares == ALL else step.shares
            paid, failed = self._call(lambda: model.unstake(addr, shares))
            return failed or Outcome(flow=paid)
        if isinstance(step, Settle):
            return self._call(lambda: model.settle(addr))[1] or Outcome()
        if isinstance(step, Liquidate):
            result, failed = self._call(lambda: model.liquidate(addr, self.addresses[step.by]))
            if failed:
                return failed
            return Outcome(liquidations=[self._liquidation(addr, self.addresses[step.by], result)])
        if isinstance(step, Trade):
            maker, taker = self._orders(step)
            before = model.fund_assets()
            failed = self._call(lambda: model.match(maker, True, taker, True, step.size))[1]
            return failed or Outcome(trading_fees=(model.fund_assets() - before) * scale)
        if isinstance(step, KeeperPass):
            return self._keeper(self.addresses[step.by])
        raise ScenarioError(f"steps[{step.index}]: the model cannot play {step.action!r}")

    @staticmethod
    def _liquidation(account: str, liquidator: str, result: Mapping[str, Any]) -> dict[str, Any]:
        return {"account": account, "liquidator": liquidator, **{k: result[k] for k in LIQUIDATION_FIELDS}}

    def _keeper(self, keeper: str) -> Outcome:
        """One keeper pass: ``plan_liquidations`` over every account's health, then liquidate in that order,
        re-checking each just before (an account whose health cannot be read is skipped)."""
        assert self.model is not None
        model = self.model
        snapshot = model.health_snapshot(self.addresses.values())
        liquidations, failed = [], 0
        for target in plan_liquidations(snapshot, keeper).targets:
            try:
                if not model.liquidatable(target):
                    continue
                result = model.liquidate(target, keeper)
            except ModelRevert:
                failed += 1
                continue
            liquidations.append(self._liquidation(target, keeper, result))
        return _keeper_outcome(liquidations, failed, None, self.name_of)

    def solvency(self) -> tuple[int, int, int]:
        assert self.model is not None
        s = self.model.solvency()
        return s["vault_assets"], s["liabilities"], s["dust"]

    def account(self, name: str) -> AccountView:
        assert self.model is not None and self.scenario is not None
        model, addr = self.model, self.addresses[name]
        self._sync()
        positions = {}
        for m, market in enumerate(self.scenario.market_names):
            size, notional = model.position(addr, m)
            if size:
                positions[market] = (size, notional)
        return AccountView(
            margin=model.margin(addr),
            equity=self._call(lambda: model.equity(addr))[0],
            free_collateral=self._call(lambda: model.free_collateral(addr))[0],
            pending_loss=model.pending_loss(addr),
            positions=positions,
            fund_shares=model.fund_shares(addr),
        )

    def equities(self) -> dict[str, int | None]:
        assert self.model is not None
        self._sync()
        return {n: self._call(lambda a=a: self.model.equity(a))[0] for n, a in self.addresses.items()}

    def prices(self) -> dict[str, int]:
        assert self.model is not None and self.scenario is not None
        return {name: self.model.markets[m].price for m, name in enumerate(self.scenario.market_names)}

    def fund(self) -> tuple[int, int]:
        assert self.model is not None
        return self.model.fund_assets(), self.model.fund_supply()


def _keeper_outcome(
    liquidations: list[dict[str, Any]], failed: int, gas: int | None, name_of: Callable[[str], str]
) -> Outcome:
    names = ", ".join(name_of(liq["account"]) for liq in liquidations) or "nobody"
    note = f"liquidated {names}" + (f"; {failed} failed" if failed else "")
    return Outcome(
        reverted=failed > 0,
        error=f"KeeperFailed({failed})" if failed else None,
        gas_used=gas,
        liquidations=liquidations,
        note=note,
    )


# --- the chain -------------------------------------------------------------------------------------------


class ChainBackend(Backend):
    """The scenario on a fresh suite deployed on the connected local chain.

    Ape deploys the suite (``backstop.chain.deploy.deploy_suite``) and provides the chain (time travel)
    and the test accounts (``accounts.test_accounts``, each with ``private_key``; index 0 deploys,
    mints and relays). Steps and reads then go straight to the node through one web3.py
    connection, the keeper's too: transactions are signed locally with the test keys. Each
    transaction is first estimated (a dry run): one that would revert is recorded with its custom
    error and not sent.
    """

    name = "chain"
    title = "a fresh local deployment"

    def __init__(
        self, project: Any, chain: Any, test_accounts: Any, *, keeper_logger: logging.Logger | None = None
    ):
        super().__init__()
        self.project = project
        self.chain = chain
        self.test_accounts = test_accounts
        self.keeper_logger = keeper_logger or logging.getLogger("backstop.stress.keeper")
        self.deployment: Any = None
        self.keys: dict[str, Any] = {}  # name -> eth-account LocalAccount
        self._errors: dict[bytes, str] = {}

    # setup --------------------------------------------------------------------------------------------

    def setup(self, scenario: Scenario) -> None:
        from eth_account import Account
        from web3 import HTTPProvider, Web3

        from backstop.chain.deploy import deploy_suite

        self.scenario = scenario
        self._nonces = {}
        names = scenario.account_names()
        available = len(self.test_accounts) - 1
        if len(names) > available:
            raise ScenarioError(
                f"{len(names)} accounts, but the local chain has only {available} to give out"
            )
        self.relayer = Account.from_key(self.test_accounts[0].private_key)
        self.keys = {
            name: Account.from_key(self.test_accounts[i + 1].private_key) for i, name in enumerate(names)
        }
        self.addresses = {name: key.address for name, key in self.keys.items()}
        self.chain_id = self.chain.chain_id
        # The runner's own connection, lean: no per-request chain-id validation or ENS lookups.
        self.w3 = Web3(HTTPProvider(self.chain.provider.uri, request_kwargs={"timeout": 60}))
        for middleware in ("validation", "ens_name_to_address", "gas_price_strategy", "gas_estimate"):
            self.w3.middleware_onion.remove(middleware)
        # The keeper's: a standard one, as `ape run keeper` would build it.
        self.keeper_w3 = Web3(HTTPProvider(self.chain.provider.uri, request_kwargs={"timeout": 60}))

        d = self.deployment = deploy_suite(
            self.project, self.chain, self.test_accounts[0], scenario.suite_config(), local=True
        )
        self._errors = self._error_names([d.engine, d.vault, d.fund, d.oracle, d.token])
        self.engine = self._contract(d.engine)
        self.vault = self._contract(d.vault)
        self.fund_ = self._contract(d.fund)
        self.token = self._contract(d.token)
        self.feeds = [self._contract(d.feeds[m.name]) for m in scenario.markets]
        market_ids = [d.market_ids[m.name] for m in scenario.markets]
        assert market_ids == list(range(len(scenario.markets))), "market ids follow the scenario's order"

        unlimited = 2**256 - 1
        for name, (for_vault, for_fund) in scenario.wallet_needs().items():
            key = self.keys[name]
            if for_vault + for_fund:
                self._must(self.token.functions.mint(key.address, for_vault + for_fund), self.relayer)
            if for_vault:
                self._must(self.token.functions.approve(self.vault.address, unlimited), key)
            if for_fund:
                self._must(self.token.functions.approve(self.fund_.address, unlimited), key)
        for name, amount in scenario.accounts.items():
            if amount:
                self._must(self.vault.functions.deposit(amount), self.keys[name])

    def _contract(self, ape_contract: Any) -> Any:
        abi = [
            item.model_dump(mode="json", by_alias=True, exclude_none=True)
            for item in ape_contract.contract_type.abi
        ]
        return self.w3.eth.contract(address=ape_contract.address, abi=abi)

    @staticmethod
    def _error_names(contracts: list[Any]) -> dict[bytes, str]:
        """Custom error selector -> name over the suite's ABIs (errors bubble up between them)."""
        from eth_utils import keccak

        out: dict[bytes, str] = {
            keccak(text="Error(string)")[:4]: "Error",
            keccak(text="Panic(uint256)")[:4]: "Panic",
        }
        for contract in contracts:
            for item in contract.contract_type.abi:
                if item.type == "error":
                    signature = f"{item.name}({','.join(i.canonical_type for i in item.inputs)})"
                    out.setdefault(keccak(text=signature)[:4], item.name)
        return out

    def _decode(self, data: Any) -> str:
        if isinstance(data, str):
            raw = bytes.fromhex(data[2:]) if data.startswith("0x") else b""
        else:
            raw = bytes(data or b"")
        if len(raw) < 4:
            return "revert"
        return self._errors.get(raw[:4], "0x" + raw[:4].hex())

    # transactions -------------------------------------------------------------------------------------

    def _send(self, fn: Any, sender: Any) -> tuple[Any, Outcome | None]:
        """Estimates (the dry run), signs with ``sender``'s key, sends and waits for the receipt.
        Returns ``(receipt, None)``, or ``(None, reverted outcome)`` if it reverts."""
        from web3.exceptions import ContractLogicError

        call = {"from": sender.address, "to": fn.address, "data": fn._encode_transaction_data(), "value": 0}
        try:
            gas = self.w3.eth.estimate_gas(call)
        except ContractLogicError as err:
            return None, Outcome(reverted=True, error=self._decode(err.data))
        tx = {
            **call,
            "gas": gas * 13 // 10 + 10_000,
            "nonce": self.w3.eth.get_transaction_count(sender.address, "pending"),
            "chainId": self.chain_id,
            "type": 2,
            # A fixed 1 gwei tip over twice the base fee (eth_gasPrice would feed back on itself).
            "maxFeePerGas": 2 * (self.w3.eth.get_block("latest").get("baseFeePerGas") or 0) + 10**9,
            "maxPriorityFeePerGas": 10**9,
        }
        signed = sender.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.005)
        if receipt["status"] != 1:  # passed the estimate, reverted when mined (time moved on)
            return None, Outcome(reverted=True, error=self._replay(call, receipt["blockNumber"]))
        return receipt, None

    def _replay(self, call: dict[str, Any], block: int) -> str:
        from web3.exceptions import ContractLogicError

        try:
            self.w3.eth.call(call, block - 1)
        except ContractLogicError as err:
            return self._decode(err.data)
        return "revert"

    def _must(self, fn: Any, sender: Any) -> Any:
        receipt, failed = self._send(fn, sender)
        if failed:
            raise RuntimeError(
                f"setup transaction {fn.fn_name} from {sender.address} reverted: {failed.error}"
            )
        return receipt

    def _view(self, fn: Any) -> tuple[Any, str | None]:
        """A view's value, or ``(None, error name)`` when it reverts (a stale price)."""
        from web3.exceptions import ContractLogicError

        try:
            return fn.call(), None
        except ContractLogicError as err:
            return None, self._decode(err.data)

    def _events(self, event: Any, receipt: Any) -> list[Any]:
        from web3.logs import DISCARD

        return [e for e in event().process_receipt(receipt, errors=DISCARD) if e["address"] == event.address]

    def _done(self, receipt: Any, **extra: Any) -> Outcome:
        return Outcome(gas_used=receipt["gasUsed"], **extra)

    # steps --------------------------------------------------------------------------------------------

    def execute(self, step: Step) -> Outcome:
        assert self.scenario is not None
        scale = self.scenario.scale
        engine, vault, fund = self.engine.functions, self.vault.functions, self.fund_.functions
        key = self.keys.get(getattr(step, "account", ""))
        addr = key.address if key is not None else ""
        if isinstance(step, Advance):
            if step.seconds:
                self.chain.mine(timestamp=self.chain.blocks.head.timestamp + step.seconds)
            return Outcome()
        if isinstance(step, Price):
            gas = 0
            for market, price in step.prices.items():
                m = self.scenario.market_id(market)
                answer = price // 10 ** (18 - self.scenario.markets[m].mock_feed_decimals)
                receipt, failed = self._send(self.feeds[m].functions.setAnswer(answer), self.relayer)
                if failed:
                    return failed
                gas += receipt["gasUsed"]
            return Outcome(gas_used=gas)
        if isinstance(step, Deposit):
            receipt, failed = self._send(vault.deposit(step.amount), key)
            return failed or self._done(receipt, flow=-step.amount)
        if isinstance(step, Withdraw):
            amount = step.amount
            if amount == MAX:
                free, error = self._view(engine.freeCollateralOf(addr))
                if error:
                    return Outcome(reverted=True, error=error)
                amount = max(free // scale, 0)
            receipt, failed = self._send(vault.withdraw(amount), key)
            return failed or self._done(receipt, flow=amount)
        if isinstance(step, Stake):
            receipt, failed = self._send(fund.deposit(step.amount, addr), key)
            return failed or self._done(receipt, flow=-step.amount)
        if isinstance(step, RequestUnstake):
            shares = fund.balanceOf(addr).call() if step.shares == ALL else step.shares
            receipt, failed = self._send(fund.requestWithdraw(shares), key)
            return failed or self._done(receipt)
        if isinstance(step, Unstake):
            shares = fund.withdrawRequestOf(addr).call()[0] if step.shares == ALL else step.shares
            before = self.token.functions.balanceOf(addr).call()
            receipt, failed = self._send(fund.redeem(shares, addr, addr), key)
            if failed:
                return failed
            return self._done(receipt, flow=self.token.functions.balanceOf(addr).call() - before)
        if isinstance(step, Settle):
            receipt, failed = self._send(engine.settle(addr), self.keys[step.by] if step.by else self.relayer)
            return failed or self._done(receipt)
        if isinstance(step, Liquidate):
            receipt, failed = self._send(engine.liquidate(addr), self.keys[step.by])
            return failed or self._done(receipt, liquidations=self._liquidations(receipt))
        if isinstance(step, Trade):
            maker, taker = self._orders(step)
            fn = engine.matchOrders(
                to_tuple(maker), self._sign(maker), to_tuple(taker), self._sign(taker), step.size
            )
            receipt, failed = self._send(fn, self.relayer)
            if failed:
                return failed
            fees = sum(
                (e["args"]["makerFeeTokens"] + e["args"]["takerFeeTokens"]) * scale
                for e in self._events(self.engine.events.Trade, receipt)
            )
            return self._done(receipt, trading_fees=fees)
        if isinstance(step, KeeperPass):
            return self._keeper(self.keys[step.by])
        raise ScenarioError(f"steps[{step.index}]: the chain runner cannot play {step.action!r}")

    def _sign(self, order: Order) -> bytes:
        key = self.keys[self.name_of(order.account)]
        return sign_order(order, key.key, self.chain_id, self.engine.address)

    def _liquidations(self, receipt: Any) -> list[dict[str, Any]]:
        out = []
        for event in self._events(self.engine.events.Liquidated, receipt):
            a = event["args"]
            out.append(
                {
                    "account": a["account"],
                    "liquidator": a["liquidator"],
                    "notional": a["notional"],
                    "keeper_reward": a["keeperReward"],
                    "insurance_fee": a["insuranceFee"],
                    "deficit": a["deficit"],
                    "covered": a["covered"],
                    "socialized": a["socialized"],
                }
            )
        return out

    def _keeper(self, key: Any) -> Outcome:
        """One pass of the real keeper, signing as ``key``; a fresh ``Keeper`` each time, so its
        nonce is read from the chain (the runner may have sent from the same account since)."""
        from backstop.keeper import Keeper, LocalSigner

        keeper = Keeper(
            self.keeper_w3,
            self.engine.address,
            LocalSigner(key.key),
            start_block=self.deployment.blocks.get("MarginEngine", 0),
            logger=self.keeper_logger,
        )
        report = keeper.run_once()
        liquidations, gas = [], 0
        for tx_hash in report.tx_hashes:
            receipt = self.w3.eth.get_transaction_receipt(tx_hash)
            gas += receipt["gasUsed"]
            liquidations.extend(self._liquidations(receipt))
        return _keeper_outcome(liquidations, report.failed, gas if report.tx_hashes else None, self.name_of)

    # views --------------------------------------------------------------------------------------------

    def solvency(self) -> tuple[int, int, int]:
        vault_assets, liabilities, dust = self.engine.functions.solvency().call()
        return vault_assets, liabilities, dust

    def checks(self) -> list[str]:
        assert self.scenario is not None
        vault_assets = self.solvency()[0]
        held = self.token.functions.balanceOf(self.vault.address).call() * self.scenario.scale
        if vault_assets != held:
            return [f"solvency().vaultAssets {vault_assets} differs from the vault's token balance {held}"]
        return []

    def account(self, name: str) -> AccountView:
        assert self.scenario is not None
        engine, addr = self.engine.functions, self.addresses[name]
        positions = {}
        for m, market in enumerate(self.scenario.market_names):
            size, notional = engine.positionOf(addr, m).call()
            if size:
                positions[market] = (size, notional)
        return AccountView(
            margin=self.vault.functions.marginOf(addr).call(),
            equity=self._view(engine.equityOf(addr))[0],
            free_collateral=self._view(engine.freeCollateralOf(addr))[0],
            pending_loss=engine.pendingLossOf(addr).call(),
            positions=positions,
            fund_shares=self.fund_.functions.balanceOf(addr).call(),
        )

    def equities(self) -> dict[str, int | None]:
        engine = self.engine.functions
        names = list(self.addresses)
        rows, error = self._view(engine.healthOf([self.addresses[n] for n in names]))
        if error is None:
            return {n: row[2] for n, row in zip(names, rows, strict=True)}  # Health.equity
        return {n: self._view(engine.equityOf(self.addresses[n]))[0] for n in names}

    def prices(self) -> dict[str, int]:
        assert self.scenario is not None
        return {
            market.name: self.feeds[m].functions.answer().call() * 10 ** (18 - market.mock_feed_decimals)
            for m, market in enumerate(self.scenario.markets)
        }

    def fund(self) -> tuple[int, int]:
        f = self.fund_.functions
        return f.totalAssets().call(), f.totalSupply().call()


# --- the runner ------------------------------------------------------------------------------------------


def _expected(step: Step, outcome: Outcome) -> tuple[bool, str | None]:
    """Whether the outcome is what the step expects, and why not."""
    if outcome.crashed:
        return False, f"the runner crashed: {outcome.error}"
    if outcome.reverted and not step.expects_revert:
        return False, f"unexpected revert {outcome.error}"
    if not outcome.reverted and step.expects_revert:
        return False, "expected a revert, but the step succeeded"
    if outcome.reverted and isinstance(step.expect_revert, str) and outcome.error != step.expect_revert:
        return False, f"expected revert {step.expect_revert}, got {outcome.error}"
    return True, None


def _decimal_text(units: int, decimals: int) -> str:
    from decimal import Decimal

    return format((Decimal(units) / (10**decimals)).normalize(), "f")


def _tokens(value: int | None, scale: int) -> float:
    return float("nan") if value is None else value / scale


ProgressFn = Callable[[StepRecord, int, list[str]], None]


def run(scenario: Scenario, backend: Backend, progress: ProgressFn | None = None) -> RunResult:
    """Plays ``scenario`` on ``backend``; never stops early (see the module docstring).

    ``progress(record, total, problems)`` is called after every step."""
    started = time.monotonic()
    backend.setup(scenario)
    failures: list[str] = []
    liquidations: list[LiquidationRecord] = []
    trading_fees = 0
    flows = {name: -amount for name, amount in scenario.accounts.items()}
    series = Series(
        prices={m: [] for m in scenario.market_names}, equity={n: [] for n in scenario.account_names()}
    )
    scale = scenario.scale

    def invariants(where: str) -> list[str]:
        vault_assets, liabilities, dust = backend.solvency()
        problems = []
        if dust < 0:
            problems.append(f"{where}: solvency identity broken: dust {dust} < 0")
        if vault_assets != liabilities + dust:
            problems.append(
                f"{where}: vault_assets {vault_assets} != liabilities {liabilities} + dust {dust}"
            )
        problems.extend(f"{where}: {p}" for p in backend.checks())
        return problems

    def record(x: int, label: str) -> None:
        series.x.append(x)
        series.labels.append(label)
        for market, price in backend.prices().items():
            series.prices[market].append(price / WAD)
        for name, equity in backend.equities().items():
            series.equity[name].append(_tokens(equity, WAD))
        series.fund_assets.append(backend.fund()[0] / 10**scenario.collateral_decimals)
        series.socialized.append(sum(liq.socialized for liq in liquidations) / WAD)

    failures.extend(invariants("setup"))
    record(-1, "start")
    records: list[StepRecord] = []
    total = len(scenario.steps)
    for step in scenario.steps:
        try:
            outcome = backend.execute(step)
        except Exception as err:
            log.exception("step %s crashed", step.index)
            outcome = Outcome(reverted=True, error=f"{type(err).__name__}: {err}", crashed=True)
        ok, why = _expected(step, outcome)
        problems = [] if ok else [f"steps[{step.index}] ({step.action}): {why}"]
        problems.extend(invariants(f"after steps[{step.index}] ({step.action})"))
        for liq in outcome.liquidations:
            liquidations.append(
                LiquidationRecord(
                    step=step.index,
                    account=backend.name_of(liq["account"]),
                    liquidator=backend.name_of(liq["liquidator"]),
                    **{k: int(liq[k]) for k in LIQUIDATION_FIELDS},
                )
            )
        trading_fees += outcome.trading_fees
        if outcome.flow and not outcome.reverted:
            flows[step.account] = flows.get(step.account, 0) + outcome.flow  # type: ignore[attr-defined]
        rec = StepRecord(
            index=step.index,
            action=step.action,
            description=describe(step, scenario),
            ok=not problems,
            reverted=outcome.reverted,
            gas_used=outcome.gas_used,
            error=outcome.error,
            expect_revert=step.expect_revert,
            note=outcome.note
            or (
                f"received {_decimal_text(outcome.flow, scenario.collateral_decimals)}"
                if outcome.flow > 0 and not outcome.reverted
                else ""
            ),
        )
        records.append(rec)
        failures.extend(problems)
        record(step.index, step.action)
        if progress is not None:
            progress(rec, total, problems)

    vault_assets, liabilities, dust = backend.solvency()
    fund_assets, fund_supply = backend.fund()
    totals = {
        "bad_debt": sum(liq.deficit for liq in liquidations),
        "insurance_covered": sum(liq.covered for liq in liquidations),
        "socialized": sum(liq.socialized for liq in liquidations),
        "keeper_rewards": sum(liq.keeper_reward for liq in liquidations),
        "insurance_fees": sum(liq.insurance_fee for liq in liquidations),
        "trading_fees": trading_fees,
    }
    return RunResult(
        scenario=scenario,
        backend=backend.name,
        chain_id=backend.chain_id,
        steps=records,
        accounts={name: backend.account(name) for name in scenario.account_names()},
        insurance_assets=fund_assets * scale,
        insurance_supply=fund_supply,
        liquidations=liquidations,
        totals=totals,
        solvency=(vault_assets, liabilities, dust),
        failures=failures,
        series=series,
        flows={name: flows.get(name, 0) for name in scenario.account_names()},
        elapsed=time.monotonic() - started,
    )


def progress_line(record: StepRecord, total: int, problems: list[str]) -> str:
    """``[3/12] trade bob<-alice ETH 4 @ 2000 ok gas=187654`` (positions count from 1)."""
    if problems:
        status = "FAILED: " + "; ".join(p.split(": ", 1)[-1] for p in problems)
    elif record.reverted:
        status = f"reverted {record.error} as expected, ok"
    else:
        status = "ok"
    gas = f" gas={record.gas_used}" if record.gas_used else ""
    note = f" [{record.note}]" if record.note and not record.reverted else ""
    return f"[{record.index + 1}/{total}] {record.description}{note} {status}{gas}"


def write_outputs(result: RunResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Writes ``<out>/<name>.json`` and ``<out>/<name>.png``; returns both paths."""
    from backstop.report import write_chart, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{result.scenario.name}.json"
    png_path = out / f"{result.scenario.name}.png"
    write_json(result, json_path)
    write_chart(result, png_path)
    return json_path, png_path


def main(
    scenario: Scenario, backend: Backend, out_dir: str | Path, echo: Callable[[str], None] = print
) -> tuple[int, RunResult]:
    """Runs ``scenario`` on ``backend`` with a progress line per step, writes the report and the
    chart to ``out_dir`` and prints the summary table. Returns ``(exit code, result)``: 0 if the
    run passed, 1 if any step failed its expectation or an invariant broke."""
    echo(f"stress: {scenario.name} ({len(scenario.steps)} steps) on {backend.title}")
    if scenario.description:
        echo(f"  {scenario.description}")
    result = run(
        scenario, backend, progress=lambda rec, total, problems: echo(progress_line(rec, total, problems))
    )
    json_path, png_path = write_outputs(result, out_dir)
    from backstop.report import summary_table

    echo("")
    echo(summary_table(result))
    echo("")
    echo(f"report: {json_path}  chart: {png_path}")
    return (0 if result.ok else 1), result
