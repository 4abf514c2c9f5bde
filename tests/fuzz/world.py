"""The fuzz world: one Backstop suite deployed on a :class:`backstop.chain.evm.Backend`, with its actors,
the reference model it is held to, and hand-rolled codecs fast enough for thousands of steps a
second.

Deployment and wiring are the users' own (``backstop.chain.deploy.deploy_sequence``: token →
OracleAdapter → CollateralVault → InsuranceFund → MarginEngine, role grant, ``fund.wire``,
``vault.wire``, ``addMarket``), run on the backend by ``EvmDeployer``, plus a
:class:`BackstopLens` that returns every observable in one call. After a fixed *genesis* (wallets
minted and approved, opening deposits and stakes, applied to the chain and to a template model in
lockstep) the chain is snapshotted; :meth:`World.reset` returns to that snapshot and hands out a
fresh copy of the template model, so every fuzz run starts from the same state.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import coincurve

from backstop.chain.abi import Artifacts, selector
from backstop.chain.deploy import EvmDeployer, deploy_sequence
from backstop.chain.evm import Backend, Log, Ok, Revert
from backstop.config import MOCK, SuiteConfig
from backstop.config import MarketConfig as DeployMarket
from backstop.model import MarketParams, Model
from backstop.orders import DOMAIN_NAME, DOMAIN_TYPEHASH, DOMAIN_VERSION, ORDER_TYPEHASH, Order
from backstop.units import WAD
from tests.fuzz.lens import ALL_PARTS, Snapshot, decode_snapshot

try:  # safe-pysha3 is ~7x faster than the pycryptodome backend eth-hash picks by default
    from sha3 import keccak_256 as _keccak_256

    def keccak(data: bytes) -> bytes:
        return _keccak_256(data).digest()

except ImportError:  # pragma: no cover - the pinned environment has it
    from eth_utils import keccak as _eth_keccak

    def keccak(data: bytes) -> bytes:
        return _eth_keccak(data)


#: Collateral decimals of the default world (a 6-decimal stablecoin, as in production).
TOKEN_DECIMALS = 6
FEED_DECIMALS = 8
FEED_UNIT = 10 ** (18 - FEED_DECIMALS)  # WAD per feed unit: prices live on this grid
MINT_WHOLE_TOKENS = 10**12  # every actor's wallet at genesis, in whole tokens
DEPLOYER = "0x00000000000000000000000000000000000dE910"
N_TRADERS = 6
KEEPER = 6  # the well-funded liquidator
N_ACTORS = 7


@dataclass(frozen=True)
class MarketConfig:
    name: str
    price: int  # WAD, on the feed grid
    heartbeat: int
    params: MarketParams


@dataclass(frozen=True)
class FundConfig:
    """Insurance-fund parameters of the fuzz world (floor and cap in whole tokens). The cooldown
    and window are hours, not the production days, so that request → cooldown → exit cycles fit
    in short runs; the per-event cap is small enough that large bankruptcies reach
    socialization."""

    cooldown: int = 3 * 3_600
    window: int = 3_600
    floor_whole_tokens: int = 25
    per_event_cap_whole_tokens: int = 300


def _ratio(basis_points: int) -> int:
    return basis_points * WAD // 10_000


#: The engine's PARAMS_DELAY in the fuzz world: the shortest allowed, so scheduled changes mature
#: within a run's time steps.
PARAMS_DELAY = 3_600
#: Three markets with different ratios, fees, bands, caps and heartbeats (one at a non-integer price).
MARKETS: tuple[MarketConfig, ...] = (
    MarketConfig(
        "ETH",
        2_000 * WAD,
        3_600,
        MarketParams(
            im_ratio=_ratio(1_000),
            mm_ratio=_ratio(500),
            keeper_reward_ratio=_ratio(100),
            insurance_fee_ratio=_ratio(100),
            price_band_ratio=_ratio(500),
            maker_fee_ratio=_ratio(2),
            taker_fee_ratio=_ratio(5),
            oi_cap=1_000_000 * WAD,
            keeper_reward_cap=30 * WAD,  # binds from 1.5 ETH liquidated
        ),
    ),
    MarketConfig(
        "BTC",
        30_000 * WAD,
        7_200,
        MarketParams(
            im_ratio=_ratio(2_000),
            mm_ratio=_ratio(1_000),
            keeper_reward_ratio=_ratio(200),
            insurance_fee_ratio=_ratio(300),
            price_band_ratio=_ratio(200),
            maker_fee_ratio=_ratio(1),
            taker_fee_ratio=_ratio(3),
            oi_cap=1_000 * WAD,
            keeper_reward_cap=500 * WAD,  # binds from 0.83 BTC liquidated
        ),
    ),
    MarketConfig(
        "SOL",
        25_500_000_000_000_000_000,  # 25.5
        1_800,
        MarketParams(
            im_ratio=_ratio(5_000),
            mm_ratio=_ratio(3_000),
            keeper_reward_ratio=_ratio(50),
            insurance_fee_ratio=_ratio(500),
            price_band_ratio=_ratio(1_000),
            maker_fee_ratio=0,
            taker_fee_ratio=_ratio(100),
            oi_cap=20_000 * WAD,
        ),
    ),
)
FUND = FundConfig()
#: Opening margin deposits (whole tokens), actor by actor; the keeper is the whale.
GENESIS_DEPOSITS = (2_000, 1_500, 3_000, 800, 5_000, 1_200, 1_000_000)
#: Opening insurance-fund stakes (whole tokens).
GENESIS_STAKES = {5: 1_500, 4: 300}


def word(x: int) -> bytes:
    """One ABI word (two's complement for negatives)."""
    return (x % (1 << 256)).to_bytes(32, "big")


def addr_word(address: str) -> bytes:
    return b"\x00" * 12 + bytes.fromhex(address[2:])


def to_int(word_bytes: bytes) -> int:
    return int.from_bytes(word_bytes, "big", signed=True)


@dataclass
class Actor:
    index: int
    secret: bytes
    address: str  # lower-case hex
    key: coincurve.PrivateKey = field(repr=False)


def make_actor(index: int) -> Actor:
    secret = keccak(b"backstop-fuzz-actor-" + bytes([index]))
    key = coincurve.PrivateKey(secret)
    address = "0x" + keccak(key.public_key.format(compressed=False)[1:])[-20:].hex()
    return Actor(index, secret, address, key)


@dataclass
class Signed:
    """An order, its EIP-712 digest (the engine's order hash) and a signature over it."""

    order: Order
    digest: bytes
    signature: bytes
    owner: int  # actor index
    valid: bool = True  # whether the signature recovers the order's account


class Calls:
    """Precomputed selectors and encoders of every call the fuzz machine makes."""

    DEPOSIT = selector("deposit(uint256)")
    WITHDRAW = selector("withdraw(uint256)")
    SWEEP = selector("sweepToFund()")
    MATCH = selector(
        "matchOrders((address,uint256,bool,uint256,uint256,uint256,uint256),bytes,"
        "(address,uint256,bool,uint256,uint256,uint256,uint256),bytes,uint256)"
    )
    FILL = selector("fillOrder((address,uint256,bool,uint256,uint256,uint256,uint256),bytes,uint256)")
    CANCEL = selector("cancelOrders(bytes32[])")
    RAISE_NONCE = selector("raiseMinNonce(uint256)")
    SETTLE = selector("settle(address)")
    LIQUIDATE = selector("liquidate(address)")
    LIQUIDATE_POSITION = selector("liquidatePosition(address,uint256,uint256)")
    LIQUIDATE_MANY = selector("liquidateMany(address[])")
    PAUSE_MARKET = selector("setMarketPaused(uint256,bool)")
    PAUSE_GLOBAL = selector("setGlobalPaused(bool)")
    STAKE = selector("deposit(uint256,address)")
    REQUEST = selector("requestRedeem(uint256,address,address)")
    CANCEL_REQUEST = selector("cancelRedeemRequest(address)")
    SET_OPERATOR = selector("setOperator(address,bool)")
    MAX_REDEEM = selector("maxRedeem(address)")
    MAX_WITHDRAW = selector("maxWithdraw(address)")
    BALANCE_OF = selector("balanceOf(address)")
    REDEEM = selector("redeem(uint256,address,address)")
    FUND_WITHDRAW = selector("withdraw(uint256,address,address)")
    SET_ANSWER = selector("setAnswer(int256)")
    SET_ANSWER_AT = selector("setAnswerAt(int256,uint256,uint256)")
    TRANSFER = selector("transfer(address,uint256)")
    MINT = selector("mint(address,uint256)")
    APPROVE = selector("approve(address,uint256)")
    GRANT_ROLE = selector("grantRole(bytes32,address)")
    WIRE = selector("wire(address,address)")
    SNAPSHOT = selector("snapshotWords(address[],uint256)")
    SCHEDULE_UPDATE = selector(
        "scheduleMarketUpdate(uint256,(address,uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256))"
    )
    EXECUTE_UPDATE = selector("executeMarketUpdate(uint256)")
    CANCEL_UPDATE = selector("cancelMarketUpdate(uint256)")
    LOWER_OI_CAP = selector("lowerOpenInterestCap(uint256,uint256)")

    @staticmethod
    def order_words(o: Order) -> bytes:
        return b"".join(
            (
                addr_word(o.account),
                word(o.market_id),
                word(int(o.is_buy)),
                word(o.size),
                word(o.limit_price),
                word(o.nonce),
                word(o.expiry),
            )
        )

    @classmethod
    def match(cls, maker: Order, maker_sig: bytes, taker: Order, taker_sig: bytes, fill: int) -> bytes:
        """``matchOrders`` calldata: two static tuples, two dynamic ``bytes`` and the fill."""
        head_words = 7 + 1 + 7 + 1 + 1
        maker_tail = word(len(maker_sig)) + maker_sig + b"\x00" * (-len(maker_sig) % 32)
        taker_tail = word(len(taker_sig)) + taker_sig + b"\x00" * (-len(taker_sig) % 32)
        maker_offset = 32 * head_words
        taker_offset = maker_offset + len(maker_tail)
        return (
            cls.MATCH
            + cls.order_words(maker)
            + word(maker_offset)
            + cls.order_words(taker)
            + word(taker_offset)
            + word(fill)
            + maker_tail
            + taker_tail
        )

    @classmethod
    def fill(cls, order: Order, sig: bytes, fill: int) -> bytes:
        """``fillOrder`` calldata: a static tuple, one dynamic ``bytes`` and the fill."""
        head_words = 7 + 1 + 1
        tail = word(len(sig)) + sig + b"\x00" * (-len(sig) % 32)
        return cls.FILL + cls.order_words(order) + word(32 * head_words) + word(fill) + tail


def fast_struct_hash(order: Order) -> bytes:
    """``backstop.orders.order_struct_hash`` without eth-abi: the seven fields are static ABI words,
    so the encoding is their concatenation (same bytes, checked by ``test_fuzz_pyrevm.py``)."""
    return keccak(ORDER_TYPEHASH + Calls.order_words(order))


def install_fast_struct_hash() -> None:
    """Makes ``backstop.model`` hash orders with :func:`fast_struct_hash` (memoized), for the deep
    driver's processes only: the model calls the hash for every order check and fill, and
    eth-abi's encoder is its single slowest piece. The output is byte-identical."""
    import backstop.model.trading

    backstop.model.trading.order_struct_hash = functools.lru_cache(maxsize=4096)(fast_struct_hash)  # type: ignore[assignment]


LIQUIDATED_TOPIC = keccak(b"Liquidated(address,address,uint256,uint256,uint256,uint256,uint256,uint256)")


POSITION_LIQUIDATED_TOPIC = keccak(
    b"PositionLiquidated(address,address,uint256,uint256,uint256,uint256,uint256)"
)
LIQUIDATION_SKIPPED_TOPIC = keccak(b"LiquidationSkipped(address,int256,uint256)")
_LIQUIDATED_KEYS = ("notional", "keeper_reward", "insurance_fee", "deficit", "covered", "socialized")


def _words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 32], "big") for i in range(0, len(data), 32)]


def _signed(word: int) -> int:
    return word - 2**256 if word >= 2**255 else word


def liquidation_events(logs: tuple[Log, ...], engine: str) -> list[tuple[str, str, dict[str, int]]]:
    """The engine's liquidation events among ``logs``, in order: ``("Liquidated", account,
    figures)``, ``("PositionLiquidated", account, {market, size, price, keeper_reward,
    insurance_fee})`` and ``("LiquidationSkipped", account, {equity, mmr})``; accounts lowercase."""
    out: list[tuple[str, str, dict[str, int]]] = []
    for log in logs:
        if log.address != engine.lower() or not log.topics:
            continue
        topic, words = log.topics[0], _words(log.data)
        account = "0x" + log.topics[1][-20:].hex() if len(log.topics) > 1 else ""
        if topic == LIQUIDATED_TOPIC:
            out.append(("Liquidated", account, dict(zip(_LIQUIDATED_KEYS, words, strict=True))))
        elif topic == POSITION_LIQUIDATED_TOPIC:
            keys = ("size", "price", "keeper_reward", "insurance_fee")
            fields = {"market": int.from_bytes(log.topics[3], "big"), **dict(zip(keys, words, strict=True))}
            out.append(("PositionLiquidated", account, fields))
        elif topic == LIQUIDATION_SKIPPED_TOPIC:
            out.append(("LiquidationSkipped", account, {"equity": _signed(words[0]), "mmr": words[1]}))
    return out


def liquidated_event(logs: tuple[Log, ...], engine: str) -> dict[str, int] | None:
    """The fields of the engine's first ``Liquidated`` event among ``logs`` (None if absent)."""
    return next((f for kind, _, f in liquidation_events(logs, engine) if kind == "Liquidated"), None)


class World:
    """A deployed suite plus genesis, snapshotted; :meth:`reset` starts every run from it."""

    def __init__(
        self, backend: Backend, artifacts: Artifacts | None = None, decimals: int = TOKEN_DECIMALS
    ) -> None:
        self.backend = backend
        self.artifacts = artifacts or Artifacts.load()
        self.decimals = decimals
        self.token_unit = 10**decimals  # token units per whole token
        self.scale = 10 ** (18 - decimals)  # WAD per token unit
        self.mint_tokens = MINT_WHOLE_TOKENS * self.token_unit
        self.floor_tokens = FUND.floor_whole_tokens * self.token_unit
        self.cap_tokens = FUND.per_event_cap_whole_tokens * self.token_unit
        self.actors = [make_actor(i) for i in range(N_ACTORS)]
        self.addresses = [a.address for a in self.actors]
        self.errors = self.artifacts.error_selectors(
            [
                "MarginEngine",
                "CollateralVault",
                "InsuranceFund",
                "OracleAdapter",
                "MockERC20",
                "BackstopLens",
            ]
        )
        self.error_names = {v: k for k, v in self.errors.items()}
        self.markets = MARKETS
        self.fund_config = FUND
        self._deploy()
        self._snapshot_calls: dict[int, bytes] = {}
        self.template = self._genesis()
        self.genesis_time = backend.now
        self.base = backend.snapshot()

    # --- setup ---

    def _tx(self, sender: str, to: str, data: bytes) -> Ok:
        out = self.backend.transact(sender, to, data)
        if isinstance(out, Revert):
            raise RuntimeError(f"setup call reverted: {self.describe_revert(out.data)}")
        return out

    def suite_config(self) -> SuiteConfig:
        """The world's suite as a deploy config: mock token and feeds, the fuzz fund parameters."""
        f = self.fund_config
        markets = tuple(
            DeployMarket(
                name=m.name,
                feed=MOCK,
                heartbeat=m.heartbeat,
                im_ratio=m.params.im_ratio,
                mm_ratio=m.params.mm_ratio,
                keeper_reward_ratio=m.params.keeper_reward_ratio,
                insurance_fee_ratio=m.params.insurance_fee_ratio,
                price_band_ratio=m.params.price_band_ratio,
                maker_fee_ratio=m.params.maker_fee_ratio,
                taker_fee_ratio=m.params.taker_fee_ratio,
                open_interest_cap=m.params.oi_cap,
                keeper_reward_cap=m.params.keeper_reward_cap,
                mock_price=m.price,
                mock_feed_decimals=FEED_DECIMALS,
            )
            for m in self.markets
        )
        return SuiteConfig(
            markets=markets,
            collateral_decimals=self.decimals,
            cooldown=f.cooldown,
            window=f.window,
            fund_floor_tokens=self.floor_tokens,
            fund_per_event_cap_tokens=self.cap_tokens,
            params_delay=PARAMS_DELAY,
        )

    def _deploy(self) -> None:
        """Deploys with the users' deployment sequence (``backstop.chain.deploy``), then the lens."""
        b, art = self.backend, self.artifacts
        b.mint_ether(DEPLOYER, 10**30)
        for a in self.addresses:
            b.mint_ether(a, 10**30)
        suite = deploy_sequence(
            EvmDeployer(b, art, DEPLOYER), self.suite_config(), token=("USD Coin", "USDC")
        )
        self.token, self.oracle, self.vault = suite.token, suite.oracle, suite.vault
        self.fund, self.engine = suite.fund, suite.engine
        self.feeds: list[str] = [suite.feeds[m.name] for m in self.markets]
        self.lens = b.deploy(DEPLOYER, art.initcode("BackstopLens", ["address"], self.engine))
        self.domain_separator = keccak(
            DOMAIN_TYPEHASH
            + keccak(DOMAIN_NAME.encode())
            + keccak(DOMAIN_VERSION.encode())
            + word(b.chain_id)
            + addr_word(self.engine.lower())
        )

    def new_model(self) -> Model:
        f = self.fund_config
        model = Model(
            self.decimals,
            cooldown=f.cooldown,
            window=f.window,
            floor_tokens=self.floor_tokens,
            per_event_cap_tokens=self.cap_tokens,
        )
        model.params_delay = PARAMS_DELAY
        for m in self.markets:
            model.add_market(m.params, m.price)
        return model

    def _genesis(self) -> Model:
        model = self.new_model()
        model.now = self.backend.now
        max_uint = (1 << 256) - 1
        for actor, tokens in zip(self.actors, GENESIS_DEPOSITS, strict=True):
            a = actor.address
            self._tx(DEPLOYER, self.token, Calls.MINT + addr_word(a) + word(self.mint_tokens))
            self._tx(a, self.token, Calls.APPROVE + addr_word(self.vault) + word(max_uint))
            self._tx(a, self.token, Calls.APPROVE + addr_word(self.fund) + word(max_uint))
            self._tx(a, self.vault, Calls.DEPOSIT + word(tokens * self.token_unit))
            model.deposit(a, tokens * self.token_unit)
        for i, tokens in GENESIS_STAKES.items():
            a = self.addresses[i]
            self._tx(a, self.fund, Calls.STAKE + word(tokens * self.token_unit) + addr_word(a))
            model.stake(a, tokens * self.token_unit)
        self.genesis_wallets = [
            self.mint_tokens - (GENESIS_DEPOSITS[i] + GENESIS_STAKES.get(i, 0)) * self.token_unit
            for i in range(N_ACTORS)
        ]
        return model

    def reset(self) -> Model:
        """Back to the genesis snapshot; a fresh copy of the genesis model."""
        self.base = self.backend.restore(self.base)
        return self.template.copy()

    # --- codecs ---

    def order_digest(self, o: Order) -> bytes:
        struct = keccak(ORDER_TYPEHASH + Calls.order_words(o))
        return keccak(b"\x19\x01" + self.domain_separator + struct)

    def sign(self, actor: int, o: Order, signer: int | None = None) -> Signed:
        """Signs ``o`` with ``signer``'s key (default: the owner's): 65 bytes ``r ‖ s ‖ v``, low s."""
        digest = self.order_digest(o)
        key = self.actors[actor if signer is None else signer].key
        raw = key.sign_recoverable(digest, hasher=None)
        return Signed(o, digest, raw[:64] + bytes([raw[64] + 27]), actor, signer in (None, actor))

    @staticmethod
    def snapshot_calldata(accounts: list[str], parts: int) -> bytes:
        return (
            Calls.SNAPSHOT
            + word(64)
            + word(parts)
            + word(len(accounts))
            + b"".join(addr_word(a) for a in accounts)
        )

    def lens_output(self, parts: int = ALL_PARTS) -> bytes:
        """The raw answer of one ``BackstopLens.snapshotWords`` call for every actor, in order."""
        data = self._snapshot_calls.get(parts)
        if data is None:
            data = self._snapshot_calls[parts] = self.snapshot_calldata(self.addresses, parts)
        return self.backend.view(DEPLOYER, self.lens, data)

    def lens_snapshot(self, accounts: list[str] | None = None, parts: int = ALL_PARTS) -> Snapshot:
        """One ``BackstopLens.snapshotWords`` call for ``accounts`` (default: every actor, every part)."""
        if accounts is None or accounts == self.addresses:
            return decode_snapshot(self.lens_output(parts), N_ACTORS)
        data = self.snapshot_calldata(accounts, parts)
        return decode_snapshot(self.backend.view(DEPLOYER, self.lens, data), len(accounts))

    def describe_revert(self, data: bytes) -> str:
        if not data:
            return "<no revert data>"
        name = self.error_names.get(data[:4], "unknown")
        return f"{name} (0x{data.hex()})"
