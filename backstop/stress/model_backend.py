"""The stress runner's model backend: a scenario played on the exact-integer reference model."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from backstop.model import Model, ModelRevert
from backstop.scenario import (
    ALL,
    MAX,
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
    Settle,
    Stake,
    Step,
    Trade,
    Unstake,
    UpdateMarket,
    Withdraw,
)
from backstop.scenario.steps import FILL
from backstop.stress.backend import Players, dispatch, keeper_outcome
from backstop.stress.model_keeper import keeper_pass, step_record, whole_record
from backstop.stress.results import AccountView, Outcome

#: The mnemonic of Ape's (and anvil's) default test accounts (ape-config.yaml ``test.mnemonic``).
TEST_MNEMONIC = "test test test test test test test test test test test junk"
#: Model time at the start of a run (any value works: only differences matter).
MODEL_START_TIME = 1_700_000_000


@functools.lru_cache(maxsize=8)
def derive_test_addresses(count: int, mnemonic: str = TEST_MNEMONIC) -> tuple[str, ...]:
    """Addresses of the first ``count`` test accounts of ``mnemonic`` (``m/44'/60'/0'/0/i``)."""
    from eth_account import Account
    from eth_account.hdaccount import key_from_seed, seed_from_mnemonic

    seed = seed_from_mnemonic(mnemonic, "")
    return tuple(Account.from_key(key_from_seed(seed, f"m/44'/60'/0'/0/{i}")).address for i in range(count))


class ModelBackend(Players):
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
        self.model.params_delay = scenario.suite_config().params_delay
        for m in scenario.markets:
            self.model.add_market(m.model_params(), m.mock_price)
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
        self._sync()
        return dispatch(self, step, "the model")

    def _address(self, step: Step) -> str:
        return self.addresses.get(getattr(step, "account", ""), "")

    # steps (the handlers of STEP_HANDLERS) ------------------------------------------------------------

    def play_advance(self, step: Advance) -> Outcome:
        self.now += step.seconds
        self._sync()
        return Outcome()

    def play_price(self, step: Price) -> Outcome:
        assert self.model is not None and self.scenario is not None
        for market, price in step.prices.items():
            m = self.scenario.market_id(market)
            self.model.set_price(m, price)
            self._price_time[m] = self.now
        self._sync()
        return Outcome()

    def play_deposit(self, step: Deposit) -> Outcome:
        assert self.model is not None
        model, addr = self.model, self._address(step)
        return self._call(lambda: model.deposit(addr, step.amount))[1] or Outcome(flow=-step.amount)

    def play_withdraw(self, step: Withdraw) -> Outcome:
        assert self.model is not None and self.scenario is not None
        model, addr = self.model, self._address(step)
        amount = step.amount
        if amount == MAX:
            free, failed = self._call(lambda: model.free_collateral(addr))
            if failed:
                return failed
            amount = max(free // self.scenario.scale, 0)
        return self._call(lambda: model.withdraw(addr, amount))[1] or Outcome(flow=amount)

    def play_stake(self, step: Stake) -> Outcome:
        assert self.model is not None
        model, addr = self.model, self._address(step)
        return self._call(lambda: model.stake(addr, step.amount))[1] or Outcome(flow=-step.amount)

    def play_request_unstake(self, step: RequestUnstake) -> Outcome:
        assert self.model is not None
        model, addr = self.model, self._address(step)
        shares = model.fund_shares(addr) if step.shares == ALL else step.shares
        return self._call(lambda: model.request_unstake(addr, shares))[1] or Outcome()

    def play_unstake(self, step: Unstake) -> Outcome:
        assert self.model is not None
        model, addr = self.model, self._address(step)
        request = model.redeem_request(addr)
        shares = (request[0] if request else 0) if step.shares == ALL else step.shares
        paid, failed = self._call(lambda: model.unstake(addr, shares))
        return failed or Outcome(flow=paid)

    def play_update_market(self, step: UpdateMarket) -> Outcome:
        assert self.model is not None and step.params is not None
        market_id, params = self.scenario.market_id(step.market), step.params.model_params()
        return self._call(lambda: self.model.schedule_market_update(market_id, params))[1] or Outcome()

    def play_execute_update(self, step: ExecuteUpdate) -> Outcome:
        assert self.model is not None
        market_id = self.scenario.market_id(step.market)
        return self._call(lambda: self.model.execute_market_update(market_id))[1] or Outcome()

    def play_cancel_update(self, step: CancelUpdate) -> Outcome:
        assert self.model is not None
        market_id = self.scenario.market_id(step.market)
        return self._call(lambda: self.model.cancel_market_update(market_id))[1] or Outcome()

    def play_cancel_unstake(self, step: CancelUnstake) -> Outcome:
        assert self.model is not None
        model, addr = self.model, self._address(step)
        return self._call(lambda: model.cancel_unstake(addr))[1] or Outcome()

    def play_settle(self, step: Settle) -> Outcome:
        assert self.model is not None
        model, addr = self.model, self._address(step)
        return self._call(lambda: model.settle(addr))[1] or Outcome()

    def play_liquidate(self, step: Liquidate) -> Outcome:
        assert self.model is not None and self.scenario is not None
        model, addr, by = self.model, self._address(step), self.addresses[step.by]
        if step.partial:
            assert step.market is not None and step.size is not None
            market_id, size = self.scenario.market_id(step.market), step.size
            result, failed = self._call(lambda: model.liquidate_position(addr, market_id, size, by))
            if failed:
                return failed
            return Outcome(liquidations=[step_record(addr, by, step.market, result)])
        result, failed = self._call(lambda: model.liquidate(addr, by))
        if failed:
            return failed
        return Outcome(liquidations=[whole_record(addr, by, result)])

    def play_liquidate_many(self, step: LiquidateMany) -> Outcome:
        assert self.model is not None
        model, by = self.model, self.addresses[step.by]
        targets = [self.addresses[name] for name in step.targets]
        result, failed = self._call(lambda: model.liquidate_many(targets, by))
        if failed:
            return failed
        liquidations = [whole_record(r["account"], by, r) for r in result["liquidated"]]
        return keeper_outcome(liquidations, 0, None, self.name_of, [a for a, *_ in result["skipped"]])

    def play_trade(self, step: Trade) -> Outcome:
        """``via: match``: ``Model.match`` of both orders; ``via: fill``: ``Model.fill_order`` of
        the maker's order, the taker's address as the sender."""
        assert self.model is not None and self.scenario is not None
        model = self.model
        before = model.fund_assets()
        if step.via == FILL:
            order, taker = self._maker_order(step)
            sender = self.addresses[taker]
            failed = self._call(lambda: model.fill_order(order, True, sender, step.size))[1]
        else:
            maker, taker_order = self._orders(step)
            failed = self._call(lambda: model.match(maker, True, taker_order, True, step.size))[1]
        return failed or Outcome(trading_fees=(model.fund_assets() - before) * self.scenario.scale)

    def play_keeper(self, step: KeeperPass) -> Outcome:
        return self._keeper(self.addresses[step.by])

    def _keeper(self, keeper: str) -> Outcome:
        """One keeper pass over every account (:func:`~backstop.stress.model_keeper.keeper_pass`)."""
        assert self.model is not None and self.scenario is not None
        liquidations, failed = keeper_pass(
            self.model, keeper, self.addresses.values(), self.scenario.market_names
        )
        return keeper_outcome(liquidations, failed, None, self.name_of)

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

    def fund_shares(self, names: Sequence[str]) -> dict[str, int]:
        assert self.model is not None
        out = {}
        for name in names:
            addr = self.addresses[name]
            request = self.model.redeem_request(addr)
            out[name] = self.model.fund_shares(addr) + (request[0] if request else 0)
        return out

    def clock(self) -> int:
        return self.now - self.start_time
