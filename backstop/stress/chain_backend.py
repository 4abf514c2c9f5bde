"""The stress runner's chain backend: a scenario played on a fresh suite on the local chain."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from backstop.chain.abi import error_name, error_names
from backstop.chain.tx import dynamic_fee_fields, fee_caps, gas_limit
from backstop.orders import Order, sign_order, to_tuple
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
    ScenarioError,
    Settle,
    Stake,
    Step,
    Trade,
    Unstake,
    UpdateMarket,
    Withdraw,
)
from backstop.scenario.steps import FILL
from backstop.stress.backend import Players, dispatch, keeper_outcome, partial_record
from backstop.stress.results import AccountView, Outcome


def _abi_of(ape_contract: Any) -> list[dict[str, Any]]:
    """An Ape contract's ABI as plain JSON dicts."""
    return [
        item.model_dump(mode="json", by_alias=True, exclude_none=True)
        for item in ape_contract.contract_type.abi
    ]


class ChainBackend(Players):
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
        self._start_time = self.w3.eth.get_block("latest")["timestamp"]

    def _contract(self, ape_contract: Any) -> Any:
        return self.w3.eth.contract(address=ape_contract.address, abi=_abi_of(ape_contract))

    @staticmethod
    def _error_names(contracts: list[Any]) -> dict[bytes, str]:
        """Custom error selector -> name over the suite's ABIs (errors bubble up between them)."""
        return error_names([_abi_of(c) for c in contracts], standard=True)

    def _decode(self, data: Any) -> str:
        if isinstance(data, str):
            raw = bytes.fromhex(data[2:]) if data.startswith("0x") else b""
        else:
            raw = bytes(data or b"")
        return error_name(raw, self._errors)

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
        nonce = self.w3.eth.get_transaction_count(sender.address, "pending")
        # The default tip over twice the base fee (eth_gasPrice would feed back on itself).
        fees = fee_caps(self.w3.eth.get_block("latest").get("baseFeePerGas") or 0)
        tx = {
            **call,
            "gas": gas_limit(gas, headroom=10_000),
            **dynamic_fee_fields(self.chain_id, nonce, fees),
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
        return dispatch(self, step, "the chain runner")

    def _key(self, step: Step) -> Any:
        return self.keys.get(getattr(step, "account", ""))

    # steps (the handlers of STEP_HANDLERS) ------------------------------------------------------------

    def play_advance(self, step: Advance) -> Outcome:
        if step.seconds:
            self.chain.mine(timestamp=self.chain.blocks.head.timestamp + step.seconds)
        return Outcome()

    def play_price(self, step: Price) -> Outcome:
        assert self.scenario is not None
        gas = 0
        for market, price in step.prices.items():
            m = self.scenario.market_id(market)
            answer = price // 10 ** (18 - self.scenario.markets[m].mock_feed_decimals)
            receipt, failed = self._send(self.feeds[m].functions.setAnswer(answer), self.relayer)
            if failed:
                return failed
            gas += receipt["gasUsed"]
        return Outcome(gas_used=gas)

    def play_deposit(self, step: Deposit) -> Outcome:
        receipt, failed = self._send(self.vault.functions.deposit(step.amount), self._key(step))
        return failed or self._done(receipt, flow=-step.amount)

    def play_withdraw(self, step: Withdraw) -> Outcome:
        assert self.scenario is not None
        key = self._key(step)
        amount = step.amount
        if amount == MAX:
            free, error = self._view(self.engine.functions.freeCollateralOf(key.address))
            if error:
                return Outcome(reverted=True, error=error)
            amount = max(free // self.scenario.scale, 0)
        receipt, failed = self._send(self.vault.functions.withdraw(amount), key)
        return failed or self._done(receipt, flow=amount)

    def play_stake(self, step: Stake) -> Outcome:
        key = self._key(step)
        receipt, failed = self._send(self.fund_.functions.deposit(step.amount, key.address), key)
        return failed or self._done(receipt, flow=-step.amount)

    def play_request_unstake(self, step: RequestUnstake) -> Outcome:
        key, fund = self._key(step), self.fund_.functions
        shares = fund.balanceOf(key.address).call() if step.shares == ALL else step.shares
        receipt, failed = self._send(fund.requestRedeem(shares, key.address, key.address), key)
        return failed or self._done(receipt)

    def play_unstake(self, step: Unstake) -> Outcome:
        key, fund = self._key(step), self.fund_.functions
        addr = key.address
        shares = fund.redeemRequestOf(addr).call()[0] if step.shares == ALL else step.shares
        before = self.token.functions.balanceOf(addr).call()
        receipt, failed = self._send(fund.redeem(shares, addr, addr), key)
        if failed:
            return failed
        return self._done(receipt, flow=self.token.functions.balanceOf(addr).call() - before)

    def play_update_market(self, step: UpdateMarket) -> Outcome:
        """The admin (the deployer, which is also the relayer) schedules the change."""
        assert step.params is not None
        market_id = self.scenario.market_id(step.market)
        params = step.params.params_tuple(self.feeds[market_id].address)
        receipt, failed = self._send(
            self.engine.functions.scheduleMarketUpdate(market_id, params), self.relayer
        )
        return failed or self._done(receipt)

    def play_execute_update(self, step: ExecuteUpdate) -> Outcome:
        fn = self.engine.functions.executeMarketUpdate(self.scenario.market_id(step.market))
        receipt, failed = self._send(fn, self.relayer)
        return failed or self._done(receipt)

    def play_cancel_update(self, step: CancelUpdate) -> Outcome:
        fn = self.engine.functions.cancelMarketUpdate(self.scenario.market_id(step.market))
        receipt, failed = self._send(fn, self.relayer)
        return failed or self._done(receipt)

    def play_cancel_unstake(self, step: CancelUnstake) -> Outcome:
        key = self._key(step)
        receipt, failed = self._send(self.fund_.functions.cancelRedeemRequest(key.address), key)
        return failed or self._done(receipt)

    def play_settle(self, step: Settle) -> Outcome:
        fn = self.engine.functions.settle(self._key(step).address)
        receipt, failed = self._send(fn, self.keys[step.by] if step.by else self.relayer)
        return failed or self._done(receipt)

    def play_liquidate(self, step: Liquidate) -> Outcome:
        assert self.scenario is not None
        account = self._key(step).address
        if step.partial:
            assert step.market is not None and step.size is not None
            fn = self.engine.functions.liquidatePosition(
                account, self.scenario.market_id(step.market), step.size
            )
        else:
            fn = self.engine.functions.liquidate(account)
        receipt, failed = self._send(fn, self.keys[step.by])
        return failed or self._done(receipt, liquidations=self._liquidations(receipt))

    def play_liquidate_many(self, step: LiquidateMany) -> Outcome:
        targets = [self.keys[name].address for name in step.targets]
        receipt, failed = self._send(self.engine.functions.liquidateMany(targets), self.keys[step.by])
        if failed:
            return failed
        skipped = [e["args"]["account"] for e in self._events(self.engine.events.LiquidationSkipped, receipt)]
        return keeper_outcome(self._liquidations(receipt), 0, receipt["gasUsed"], self.name_of, skipped)

    def play_trade(self, step: Trade) -> Outcome:
        """``via: match``: the relayer sends ``matchOrders`` of both signed orders; ``via: fill``:
        the taker sends ``fillOrder`` of the maker's signed order from its own key."""
        assert self.scenario is not None
        if step.via == FILL:
            order, taker = self._maker_order(step)
            fn = self.engine.functions.fillOrder(to_tuple(order), self._sign(order), step.size)
            sender = self.keys[taker]
        else:
            maker, taker_order = self._orders(step)
            fn = self.engine.functions.matchOrders(
                to_tuple(maker), self._sign(maker), to_tuple(taker_order), self._sign(taker_order), step.size
            )
            sender = self.relayer
        receipt, failed = self._send(fn, sender)
        if failed:
            return failed
        fees = sum(
            (e["args"]["makerFeeTokens"] + e["args"]["takerFeeTokens"]) * self.scenario.scale
            for e in self._events(self.engine.events.Trade, receipt)
        )
        return self._done(receipt, trading_fees=fees)

    def play_keeper(self, step: KeeperPass) -> Outcome:
        return self._keeper(self.keys[step.by])

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
        assert self.scenario is not None
        names = self.scenario.market_names
        for event in self._events(self.engine.events.PositionLiquidated, receipt):
            a = event["args"]
            out.append(
                partial_record(
                    a["account"], a["liquidator"], names[a["marketId"]], a["size"], a["price"],
                    a["keeperReward"], a["insuranceFee"],
                )
            )  # fmt: skip
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
        return keeper_outcome(liquidations, report.failed, gas if report.tx_hashes else None, self.name_of)

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

    def fund_shares(self, names: Sequence[str]) -> dict[str, int]:
        f = self.fund_.functions
        out = {}
        for name in names:
            addr = self.addresses[name]
            out[name] = f.balanceOf(addr).call() + f.redeemRequestOf(addr).call()[0]
        return out

    def clock(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"] - self._start_time
