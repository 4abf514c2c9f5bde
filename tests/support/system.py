"""A deployed Backstop suite driven in lockstep with the reference model.

Every action goes to the model first. If the model predicts a revert, the same call is simulated on
chain with ``eth_call`` and the revert's error selector must be the one the model named; nothing is
sent. Otherwise the transaction is sent and must succeed. ``check`` then compares every observable
of the contracts with the model, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import keccak
from web3.exceptions import ContractLogicError as Web3LogicError

from backstop.chain.deploy import Deployment, deploy_suite
from backstop.config import MarketConfig, SuiteConfig
from backstop.model import MarketParams, Model, ModelRevert
from backstop.model.state import MAX_KEEPER_REWARD_CAP
from backstop.orders import FAR_EXPIRY, Order, recover_signer, sign_order, to_tuple
from backstop.units import WAD

FEED_DECIMALS = 8
ZERO_ADDRESS = "0x" + "00" * 20
PERCENT = WAD // 100


def ratio(percent: str | int) -> int:
    """``ratio("2.5")`` → 0.025 in WAD (exact for up to 16 decimal places of percent)."""
    from decimal import Decimal

    return int(Decimal(str(percent)) * WAD // 100)


def error_selectors(project) -> dict[str, bytes]:
    """Custom error name → 4-byte selector, over every contract in the project."""
    out: dict[str, bytes] = {}
    for name in ("MarginEngine", "CollateralVault", "OracleAdapter", "InsuranceFund"):
        for item in getattr(project, name).contract_type.abi:
            if item.type == "error":
                sig = f"{item.name}({','.join(i.canonical_type for i in item.inputs)})"
                out[item.name] = keccak(text=sig)[:4]
    return out


@dataclass
class Signed:
    order: Order
    signature: bytes


@dataclass
class MarketSpec:
    """Contract-side parameters of a market with sensible test defaults (ratios in WAD)."""

    im_ratio: int = 10 * PERCENT
    mm_ratio: int = 5 * PERCENT
    keeper_reward_ratio: int = 1 * PERCENT
    insurance_fee_ratio: int = 1 * PERCENT
    price_band_ratio: int = 5 * PERCENT
    maker_fee_ratio: int = 0
    taker_fee_ratio: int = 0
    oi_cap: int = 10**9 * WAD
    heartbeat: int = 86_400
    keeper_reward_cap: int = MAX_KEEPER_REWARD_CAP

    def model_params(self) -> MarketParams:
        return self.config(ZERO_ADDRESS).model_params()

    def contract_params(self, feed) -> tuple:
        """``IMarginEngine.MarketParams`` for ``feed``, built by the deploy module (one field order)."""
        return self.config(feed.address).params_tuple(feed.address)

    def config(self, feed_address: str) -> MarketConfig:
        """This market as a deploy config (the one mapping to both the engine and the model)."""
        fields = dict(self.__dict__)
        fields["open_interest_cap"] = fields.pop("oi_cap")
        return MarketConfig(name="test", feed=feed_address, **fields)


@dataclass
class FundSpec:
    """Insurance fund parameters (token units and seconds)."""

    cooldown: int = 7 * 86_400
    window: int = 2 * 86_400
    floor_tokens: int = 0
    per_event_cap_tokens: int = 0


def deploy_test_suite(
    project, chain, deployer, decimals: int = 6, spec: FundSpec | None = None
) -> Deployment:
    """The production deployment path, with no market yet (tests add their own)."""
    spec = spec or FundSpec()
    return deploy_suite(
        project,
        chain,
        deployer,
        SuiteConfig(
            markets=(),
            collateral_decimals=decimals,
            cooldown=spec.cooldown,
            window=spec.window,
            fund_floor_tokens=spec.floor_tokens,
            fund_per_event_cap_tokens=spec.per_event_cap_tokens,
        ),
        local=True,
    )


class System:
    """Token, oracle adapter, vault, insurance fund and engine, wired as in production, plus the
    reference model."""

    def __init__(
        self,
        project,
        chain,
        deployer,
        decimals: int = 6,
        fund_spec: FundSpec | None = None,
        *,
        suite: Deployment | None = None,
    ):
        """Deploys a fresh suite, or drives ``suite``: one :func:`deploy_test_suite` made with the same
        ``decimals`` and ``fund_spec`` and still in its just-deployed state (the ``system`` fixture
        shares one per test session; Ape reverts the chain to it around every test)."""
        spec = fund_spec or FundSpec()
        self.project = project
        self.chain = chain
        self.deployer = deployer
        self.decimals = decimals
        if suite is None:
            suite = deploy_test_suite(project, chain, deployer, decimals, spec)
        self.token, self.oracle, self.vault = suite.token, suite.oracle, suite.vault
        self.fund, self.engine = suite.fund, suite.engine
        self.model = Model(
            decimals,
            cooldown=spec.cooldown,
            window=spec.window,
            floor_tokens=spec.floor_tokens,
            per_event_cap_tokens=spec.per_event_cap_tokens,
        )
        self.feeds: list[Any] = []
        self.selectors = error_selectors(project)
        self.chain_id = chain.chain_id
        self._nonces: dict[str, int] = {}

    # --- markets and prices ------------------------------------------------------------------------

    def add_market(self, price_wad: int, spec: MarketSpec | None = None) -> int:
        spec = spec or MarketSpec()
        feed = self.project.MockAggregator.deploy(
            FEED_DECIMALS, self._answer(price_wad), "TEST / USD", sender=self.deployer
        )
        self.engine.addMarket(spec.contract_params(feed), sender=self.deployer)
        market_id = self.model.add_market(spec.model_params(), price_wad)
        self.feeds.append(feed)
        return market_id

    def schedule_update(self, market_id: int, spec: MarketSpec):
        """The admin schedules ``spec`` for ``market_id`` (same feed), in lockstep with the model."""
        params = spec.contract_params(self.feeds[market_id])
        return self._run(
            lambda: self.model.schedule_market_update(market_id, spec.model_params()),
            self.engine.scheduleMarketUpdate,
            (market_id, params),
            self.deployer,
        )

    def execute_update(self, market_id: int):
        return self._run(
            lambda: self.model.execute_market_update(market_id),
            self.engine.executeMarketUpdate,
            (market_id,),
            self.deployer,
        )

    def update_market(self, market_id: int, spec: MarketSpec) -> None:
        """Schedules ``spec``, waits ``PARAMS_DELAY`` and executes it: the only way parameters change."""
        result = self.schedule_update(market_id, spec)
        assert not isinstance(result, ModelRevert), f"update expected to be scheduled was rejected: {result}"
        self.advance(self.engine.PARAMS_DELAY())
        for m, feed in enumerate(self.feeds):  # fresh answers again after the delay, same prices
            feed.setAnswer(self._answer(self.model.markets[m].price), sender=self.deployer)
        result = self.execute_update(market_id)
        assert not isinstance(result, ModelRevert), f"update expected to execute was rejected: {result}"

    def set_price(self, market_id: int, price_wad: int) -> None:
        self.feeds[market_id].setAnswer(self._answer(price_wad), sender=self.deployer)
        self.model.set_price(market_id, price_wad)
        self.check_solvency()

    def set_paused(self, market_id: int, paused: bool) -> None:
        self.engine.setMarketPaused(market_id, paused, sender=self.deployer)
        self.model.set_paused(market_id, paused)

    def set_global_paused(self, paused: bool) -> None:
        self.engine.setGlobalPaused(paused, sender=self.deployer)
        self.model.set_global_paused(paused)

    @staticmethod
    def _answer(price_wad: int) -> int:
        scale = 10 ** (18 - FEED_DECIMALS)
        assert price_wad % scale == 0, "test prices must be representable with 8 feed decimals"
        return price_wad // scale

    # --- vault ---------------------------------------------------------------------------------------

    def deposit(self, account, amount_tokens: int):
        self.token.mint(account, amount_tokens, sender=self.deployer)
        self.token.approve(self.vault, amount_tokens, sender=account)
        result = self._run(
            lambda: self.model.deposit(account.address, amount_tokens),
            self.vault.deposit,
            (amount_tokens,),
            account,
        )
        assert not isinstance(result, ModelRevert), f"deposit expected to succeed was rejected: {result}"
        return result

    def withdraw(self, account, amount_tokens: int):
        return self._run(
            lambda: self.model.withdraw(account.address, amount_tokens),
            self.vault.withdraw,
            (amount_tokens,),
            account,
        )

    def settle(self, account, sender):
        return self._run(lambda: self.model.settle(account.address), self.engine.settle, (account,), sender)

    # --- liquidation ---------------------------------------------------------------------------------

    def liquidate(self, account, liquidator):
        """Liquidates in lockstep; returns the model's result dict (or the predicted revert)."""
        outcome: dict[str, Any] = {}

        def model_call():
            outcome.update(self.model.liquidate(account.address, liquidator.address))

        result = self._run(model_call, self.engine.liquidate, (account,), liquidator)
        if isinstance(result, ModelRevert):
            return result
        [event] = [log for log in result.events if log.event_name == "Liquidated"]
        for field, key in [
            ("notional", "notional"),
            ("keeperReward", "keeper_reward"),
            ("insuranceFee", "insurance_fee"),
            ("deficit", "deficit"),
            ("covered", "covered"),
            ("socialized", "socialized"),
        ]:
            assert getattr(event, field) == outcome[key], f"Liquidated.{field}"
        outcome["receipt"] = result
        return outcome

    def liquidate_position(self, account, market_id: int, size: int, liquidator):
        """``liquidatePosition`` in lockstep; returns the model's result dict with the receipt (or
        the predicted revert). The ``PositionLiquidated`` event must carry the model's figures."""
        outcome: dict[str, Any] = {}

        def model_call():
            outcome.update(
                self.model.liquidate_position(account.address, market_id, size, liquidator.address)
            )

        result = self._run(model_call, self.engine.liquidatePosition, (account, market_id, size), liquidator)
        if isinstance(result, ModelRevert):
            return result
        [event] = [log for log in result.events if log.event_name == "PositionLiquidated"]
        assert (event.account, event.liquidator) == (account.address, liquidator.address)
        for field, key in [
            ("marketId", "market"),
            ("size", "size"),
            ("price", "price"),
            ("keeperReward", "keeper_reward"),
            ("insuranceFee", "insurance_fee"),
        ]:
            assert getattr(event, field) == outcome[key], f"PositionLiquidated.{field}"
        outcome["receipt"] = result
        return outcome

    def liquidate_many(self, accounts: list, liquidator):
        """``liquidateMany`` in lockstep; returns the model's result dict with the receipt (or the
        predicted revert). The ``Liquidated`` / ``LiquidationSkipped`` events must follow the model's
        entries in order, with its figures."""
        outcome: dict[str, Any] = {}

        def model_call():
            outcome.update(self.model.liquidate_many([a.address for a in accounts], liquidator.address))

        result = self._run(
            model_call, self.engine.liquidateMany, ([a.address for a in accounts],), liquidator
        )
        if isinstance(result, ModelRevert):
            return result
        events = [log for log in result.events if log.event_name in ("Liquidated", "LiquidationSkipped")]
        assert len(events) == len(outcome["entries"])
        for event, entry in zip(events, outcome["entries"], strict=True):
            assert event.account.lower() == entry["account"].lower()
            if "skipped" in entry:
                assert event.event_name == "LiquidationSkipped"
                assert (event.equity, event.maintenanceMargin) == (entry["equity"], entry["mmr"])
            else:
                assert event.event_name == "Liquidated"
                assert (event.keeperReward, event.deficit) == (entry["keeper_reward"], entry["deficit"])
        outcome["receipt"] = result
        return outcome

    # --- insurance fund ------------------------------------------------------------------------------

    def sweep(self, sender):
        """``vault.sweepToFund()`` sent by ``sender`` (anyone), in lockstep with the model."""
        return self._run(self.model.sweep_to_fund, self.vault.sweepToFund, (), sender)

    def stake(self, account, amount_tokens: int):
        self.token.mint(account, amount_tokens, sender=self.deployer)
        self.token.approve(self.fund, amount_tokens, sender=account)
        result = self._run(
            lambda: self.model.stake(account.address, amount_tokens),
            self.fund.deposit,
            (amount_tokens, account),
            account,
        )
        assert not isinstance(result, ModelRevert), f"stake expected to succeed was rejected: {result}"
        return result

    def request_unstake(self, account, shares: int, controller=None, sender=None):
        """``requestRedeem(shares, controller, account)`` (controller and sender default to the owner)."""
        controller = controller or account
        sender = sender or account
        return self._run(
            lambda: self.model.request_unstake(account.address, shares, controller.address, sender.address),
            self.fund.requestRedeem,
            (shares, controller, account),
            sender,
        )

    def unstake(self, controller, shares: int, sender=None, receiver=None):
        """``redeem(shares, receiver, controller)`` sent by ``sender`` (both default to the controller)."""
        sender = sender or controller
        return self._run(
            lambda: self.model.unstake(controller.address, shares, sender.address),
            self.fund.redeem,
            (shares, receiver or controller, controller),
            sender,
        )

    def fund_withdraw(self, controller, assets_tokens: int, sender=None, receiver=None):
        """``withdraw(assets, receiver, controller)`` sent by ``sender`` (default: the controller)."""
        sender = sender or controller
        return self._run(
            lambda: self.model.fund_withdraw(controller.address, assets_tokens, sender.address),
            self.fund.withdraw,
            (assets_tokens, receiver or controller, controller),
            sender,
        )

    def cancel_unstake(self, controller, sender=None):
        """``cancelRedeemRequest(controller)`` sent by ``sender`` (default: the controller)."""
        sender = sender or controller
        return self._run(
            lambda: self.model.cancel_unstake(controller.address, sender.address),
            self.fund.cancelRedeemRequest,
            (controller,),
            sender,
        )

    def set_operator(self, controller, operator, approved: bool = True):
        return self._run(
            lambda: self.model.set_operator(controller.address, operator.address, approved),
            self.fund.setOperator,
            (operator, approved),
            controller,
        )

    def transfer_shares(self, sender, to, shares: int):
        return self._run(
            lambda: self.model.transfer_shares(sender.address, to.address, shares),
            self.fund.transfer,
            (to, shares),
            sender,
        )

    def approve_shares(self, owner, spender, shares: int):
        return self._run(
            lambda: self.model.approve_shares(owner.address, spender.address, shares),
            self.fund.approve,
            (spender, shares),
            owner,
        )

    def advance(self, seconds: int) -> None:
        """Moves chain time forward by mining a block ``seconds`` after the head."""
        self.chain.mine(timestamp=self.chain.blocks.head.timestamp + seconds)

    # --- orders and trades ---------------------------------------------------------------------------

    def order(
        self,
        account,
        market_id: int,
        is_buy: bool,
        size: int,
        price: int,
        *,
        nonce: int | None = None,
        expiry: int = FAR_EXPIRY,
        signer=None,
    ) -> Signed:
        """A signed order; by default signed by its own account with a fresh nonce."""
        if nonce is None:
            nonce = self._nonces.get(account.address, 0)
            self._nonces[account.address] = nonce + 1
        order = Order(account.address, market_id, is_buy, size, price, nonce, expiry)
        key = (signer or account).private_key
        return Signed(order, sign_order(order, key, self.chain_id, self.engine.address))

    def match(self, maker: Signed, taker: Signed, fill: int, sender=None):
        def model_call():
            self.model.match(maker.order, self._signer_ok(maker), taker.order, self._signer_ok(taker), fill)

        args = (to_tuple(maker.order), maker.signature, to_tuple(taker.order), taker.signature, fill)
        return self._run(model_call, self.engine.matchOrders, args, sender or self.deployer)

    def fill(self, maker: Signed, taker, fill: int):
        """``fillOrder`` sent by ``taker`` (an account) against the maker's signed order."""

        def model_call():
            self.model.fill_order(maker.order, self._signer_ok(maker), taker.address, fill)

        args = (to_tuple(maker.order), maker.signature, fill)
        return self._run(model_call, self.engine.fillOrder, args, taker)

    def trade(self, buyer, seller, market_id: int, size: int, price: int, *, maker: str = "seller"):
        """Signs one order per side at ``price`` and fills them fully (maker defaults to the seller)."""
        buy = self.order(buyer, market_id, True, size, price)
        sell = self.order(seller, market_id, False, size, price)
        result = self.match(sell, buy, size) if maker == "seller" else self.match(buy, sell, size)
        assert not isinstance(result, ModelRevert), f"trade expected to succeed was rejected: {result}"
        return result

    def cancel(self, account, signed: Signed):
        digest = self.engine.hashOrder(to_tuple(signed.order))
        self.engine.cancelOrders([digest], sender=account)
        self.model.cancel(account.address, signed.order)

    def raise_min_nonce(self, account, nonce: int):
        return self._run(
            lambda: self.model.set_min_nonce(account.address, nonce),
            self.engine.raiseMinNonce,
            (nonce,),
            account,
        )

    def _signer_ok(self, signed: Signed) -> bool:
        signer = recover_signer(signed.order, signed.signature, self.chain_id, self.engine.address)
        return signer is not None and signer.lower() == signed.order.account.lower()

    # --- lockstep execution --------------------------------------------------------------------------

    def _run(self, model_call, method, args: tuple, sender):
        """Runs ``model_call``; then sends the transaction, or, if the model reverted, checks that
        the chain reverts with the same custom error (simulated, nothing sent). The next block's
        timestamp is pinned so that the model's ``now`` is exactly the transaction's."""
        now = self.chain.blocks.head.timestamp + 1
        self.chain.pending_timestamp = now
        self.model.now = now
        try:
            model_call()
        except ModelRevert as expected:
            got = self.revert_selector(method, args, sender)
            assert got == self.selectors[expected.name], (
                f"model reverts {expected}, chain reverts with selector {got.hex()} "
                f"({self._name_of(got)})"
            )
            self.check_solvency()
            return expected
        receipt = method(*args, sender=sender)
        self.check_solvency()
        return receipt

    def check_solvency(self) -> None:
        """The solvency identity (docs/design.md §9), read in O(1) from the engine, equals the model's and
        its dust is never negative. Runs after every lockstep action."""
        expected = self.model.solvency()
        vault_assets, liabilities, dust = self.engine.solvency()
        assert (vault_assets, liabilities, dust) == (
            expected["vault_assets"],
            expected["liabilities"],
            expected["dust"],
        ), f"solvency identity: chain {(vault_assets, liabilities, dust)} model {expected}"
        assert dust >= 0, f"SOLVENCY: negative dust {dust}"
        credit = self.vault.fundCredit()
        assert credit == self.model.fund_credit, f"fund credit: chain {credit} model {self.model.fund_credit}"
        assert self.token.balanceOf(self.vault) >= credit, "the vault holds less than the fund's credit"

    def revert_selector(self, method, args: tuple, sender) -> bytes:
        """The 4-byte error selector the chain reverts with for this call (fails if it succeeds)."""
        return self.revert_data(method, args, sender)[:4]

    def revert_data(self, method, args: tuple, sender) -> bytes:
        """The whole revert data (selector and ABI-encoded arguments) of this call, simulated
        (fails if it succeeds)."""
        tx = method.as_transaction(*args, sender=sender)
        web3 = self.chain.provider.web3
        try:
            web3.eth.call({"from": sender.address, "to": tx.receiver, "data": bytes(tx.data)})
        except Web3LogicError as err:
            data = err.data if isinstance(err.data, str) else "0x"
            return bytes.fromhex(data.removeprefix("0x"))
        raise AssertionError(f"{method} succeeded on chain where the model expected a revert")

    def _name_of(self, selector: bytes) -> str:
        return next((n for n, s in self.selectors.items() if s == selector), "unknown")

    # --- comparison ----------------------------------------------------------------------------------

    def check(self, *accounts) -> None:
        """Every observable of every given account, the markets, the token flows and the solvency
        identity equal the model's, exactly."""
        engine, vault, model = self.engine, self.vault, self.model
        for account in accounts:
            a = account.address
            assert vault.marginOf(a) == model.margin(a), f"margin of {a}"
            assert list(engine.marketsOf(a)) == model.markets_of(a), f"markets of {a}"
            for m in range(len(self.feeds)):
                assert tuple(engine.positionOf(a, m)) == model.position(a, m), f"position of {a} in {m}"
            assert engine.pendingLossOf(a) == model.pending_loss(a), f"pending loss of {a}"
            assert engine.equityOf(a) == model.equity(a), f"equity of {a}"
            assert engine.initialMarginOf(a) == model.initial_margin(a), f"IMR of {a}"
            assert engine.maintenanceMarginOf(a) == model.maintenance_margin(a), f"MMR of {a}"
            assert engine.freeCollateralOf(a) == model.free_collateral(a), f"free collateral of {a}"
            assert self.fund.balanceOf(a) == model.fund_shares(a), f"fund shares of {a}"
            request = tuple(self.fund.redeemRequestOf(a))
            assert request == (model.redeem_request(a) or (0, 0, 0)), f"redeem request of {a}"
        for m in range(len(self.feeds)):
            assert engine.openInterestOf(m) == model.open_interest(m), f"open interest of {m}"
            assert tuple(engine.lossIndexOf(m)) == tuple(
                model.loss_index(m, side) for side in (0, 1)
            ), f"L of {m}"
        assert self.token.balanceOf(vault) == model.vault_tokens, "vault token balance"
        assert self.fund.totalAssets() == model.fund_assets(), "fund assets"
        assert self.token.balanceOf(self.fund) == model.fund_tokens, "fund token balance"
        assert (
            self.fund.totalAssets() == model.fund_tokens + vault.fundCredit()
        ), "fund assets = tokens + credit"
        assert self.fund.totalSupply() == model.fund_supply(), "fund shares"
        assert self.fund.balanceOf(self.fund) == model.fund_escrow(), "escrowed fund shares"
        assert self.fund.coverable() == model.coverable(), "fund coverable"
        assert vault.totalMargin() == model.total_margin(), "total margin"
        self.check_solvency()
