"""The deploy configuration: a suite's markets, collateral, insurance fund and roles, as typed
values, parsed from ``config/*.yaml`` (and from a scenario's markets by ``backstop.scenario``).

The file is checked against a strict pydantic schema (every key documented in docs/deploy.md,
"Config reference"): an unknown or misspelt key, a value of the wrong type or a missing required
key is a :class:`ConfigError` naming the dotted key (``insurance: unknown key 'flor'; allowed:
cooldown, floor, per_event_cap, window``). Then every bound the contracts enforce is checked
(:func:`market_problems`, :func:`suite_problems`), so a bad config fails before any transaction.
These bounds are the one copy: the scenario parser uses them through :func:`market_from_mapping`.

Plain data and parsing only: deploying a config is ``backstop.chain.deploy``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, ValidationError

from backstop.model.state import MAX_KEEPER_REWARD_CAP, MarketParams
from backstop.units import WAD, format_units, to_units, to_wad

#: A ``feed`` or ``collateral.token`` to deploy as a test double (local chains only).
MOCK = "mock"
#: The engine's default ``PARAMS_DELAY`` (docs/design.md §10): two days to see a change coming.
DEFAULT_PARAMS_DELAY = 2 * 86_400
#: ``MarginEngine.MIN_PARAMS_DELAY`` and ``MAX_PARAMS_DELAY``.
PARAMS_DELAY_BOUNDS = (3_600, 30 * 86_400)
#: ``PositionMath.MAX_VALUE``: the largest open-interest cap (WAD base units).
MAX_OPEN_INTEREST_CAP = 2**127 - 1
#: ``OracleAdapter``: heartbeats are stored in 32 bits, grace periods in 96.
MAX_HEARTBEAT = 2**32 - 1
MAX_GRACE_PERIOD = 2**96 - 1
#: ``MarketGovernance.MAX_MARKETS``: market ids are below ``type(uint16).max``.
MAX_MARKETS = 2**16 - 1
#: A mock feed's decimals: its answer is the WAD price scaled down exactly.
MOCK_FEED_DECIMALS = (1, 18)

_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_ZERO = "0x" + "0" * 40


class ConfigError(ValueError):
    """The markets config is malformed or outside the contracts' bounds."""


@dataclass(frozen=True)
class MarketConfig:
    """One market. Ratios are WAD; ``feed`` is an address or ``"mock"`` (local chains only)."""

    name: str
    feed: str
    heartbeat: int
    im_ratio: int
    mm_ratio: int
    keeper_reward_ratio: int
    insurance_fee_ratio: int
    price_band_ratio: int
    maker_fee_ratio: int
    taker_fee_ratio: int
    open_interest_cap: int  # WAD base units
    keeper_reward_cap: int = MAX_KEEPER_REWARD_CAP  # WAD quote per liquidation; the maximum = no cap
    mock_price: int = 0  # WAD, initial answer of a mock feed
    mock_feed_decimals: int = 8

    def model_params(self) -> MarketParams:
        """The reference model's form (the feed and heartbeat are the oracle's, not the model's)."""
        return MarketParams(
            im_ratio=self.im_ratio,
            mm_ratio=self.mm_ratio,
            keeper_reward_ratio=self.keeper_reward_ratio,
            insurance_fee_ratio=self.insurance_fee_ratio,
            price_band_ratio=self.price_band_ratio,
            maker_fee_ratio=self.maker_fee_ratio,
            taker_fee_ratio=self.taker_fee_ratio,
            oi_cap=self.open_interest_cap,
            keeper_reward_cap=self.keeper_reward_cap,
        )

    def params_tuple(self, feed_address: str) -> tuple:
        """``IMarginEngine.MarketParams`` in field order."""
        return (
            feed_address,
            self.heartbeat,
            self.im_ratio,
            self.mm_ratio,
            self.keeper_reward_ratio,
            self.insurance_fee_ratio,
            self.price_band_ratio,
            self.maker_fee_ratio,
            self.taker_fee_ratio,
            self.open_interest_cap,
            self.keeper_reward_cap,
        )

    def with_params(self, params: tuple) -> MarketConfig:
        """This market with the values of ``IMarginEngine.MarketParams`` ``params`` (the inverse
        of :meth:`params_tuple`; the feed becomes the address in ``params``)."""
        (feed, heartbeat, im, mm, reward, fee, band, maker, taker, oi_cap, reward_cap) = params
        return replace(
            self,
            feed=str(feed),
            heartbeat=int(heartbeat),
            im_ratio=int(im),
            mm_ratio=int(mm),
            keeper_reward_ratio=int(reward),
            insurance_fee_ratio=int(fee),
            price_band_ratio=int(band),
            maker_fee_ratio=int(maker),
            taker_fee_ratio=int(taker),
            open_interest_cap=int(oi_cap),
            keeper_reward_cap=int(reward_cap),
        )


@dataclass(frozen=True)
class SuiteConfig:
    """Everything a deployment needs. Token amounts of the fund are in token units."""

    markets: tuple[MarketConfig, ...]
    collateral_token: str = MOCK
    collateral_decimals: int = 6
    cooldown: int = 7 * 86_400
    window: int = 2 * 86_400
    fund_floor_tokens: int = 0
    fund_per_event_cap_tokens: int = 0
    sequencer_feed: str | None = None
    sequencer_grace_period: int = 3_600
    #: The engine's admin and guardian (``roles.admin``, ``roles.guardian``); ``None``: the deployer.
    admin: str | None = None
    guardian: str | None = None
    params_delay: int = DEFAULT_PARAMS_DELAY

    def digest(self) -> str:
        """A stable hash of the config, recorded in the manifest."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str).encode()).hexdigest()

    @property
    def uses_mocks(self) -> bool:
        return self.collateral_token == MOCK or any(m.feed == MOCK for m in self.markets)


# --- the schema (docs/deploy.md, "Config reference") ------------------------------------------------------


def _address(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError('an address must be quoted in YAML ("0x..."): unquoted, it is read as a number')
    if not isinstance(value, str) or not _ADDRESS_RE.match(value):
        raise ValueError(f"an address (0x and 40 hex digits, quoted in YAML) expected, got {value!r}")
    if value.lower() == _ZERO:
        raise ValueError("the zero address is not allowed")
    return value


def _address_or_mock(value: Any) -> str:
    return value if value == MOCK else _address(value)


Address = Annotated[str, BeforeValidator(_address)]
AddressOrMock = Annotated[str, BeforeValidator(_address_or_mock)]
Whole = Annotated[StrictInt, Field(ge=0)]
Amount = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MarketSchema(_Section):
    """``markets.<NAME>``: ratios are decimals (0.05 = 5 %), amounts whole units."""

    feed: AddressOrMock = MOCK
    price: Amount | None = None
    feed_decimals: Whole = 8
    heartbeat: Whole = 86_400
    initial_margin: Amount
    maintenance_margin: Amount
    keeper_reward: Amount
    insurance_fee: Amount
    price_band: Amount = Decimal("0.05")
    maker_fee: Amount = Decimal(0)
    taker_fee: Amount = Decimal(0)
    open_interest_cap: Amount = Decimal(10**9)
    keeper_reward_cap: Amount | None = None


class CollateralSchema(_Section):
    token: AddressOrMock = MOCK
    decimals: Whole = 6


class InsuranceSchema(_Section):
    cooldown: Whole = 7 * 86_400
    window: Whole = 2 * 86_400
    floor: Amount = Decimal(0)
    per_event_cap: Amount = Decimal(0)


class OracleSchema(_Section):
    sequencer_feed: Address | None = None
    grace_period: Whole = 3_600


class RolesSchema(_Section):
    admin: Address | None = None
    guardian: Address | None = None
    params_delay: Whole = DEFAULT_PARAMS_DELAY


class SuiteSchema(_Section):
    """The file's top level; each market is checked by :class:`MarketSchema`."""

    collateral: CollateralSchema = CollateralSchema()
    insurance: InsuranceSchema = InsuranceSchema()
    oracle: OracleSchema = OracleSchema()
    roles: RolesSchema = RolesSchema()
    markets: dict[str, Any] = Field(default_factory=dict)


def _describe(error: Mapping[str, Any], schema: type[BaseModel], prefix: tuple[str, ...]) -> str:
    """One pydantic error as ``dotted.key: what is wrong``, with the allowed keys for an unknown one."""
    loc = (*prefix, *map(str, error["loc"]))
    parent, key, dotted = ".".join(loc[:-1]), loc[-1] if loc else "", ".".join(loc)
    kind, got = error["type"], error.get("input")

    def at(where: str, text: str) -> str:
        return f"{where}: {text}" if where else text

    if kind == "extra_forbidden":
        model = schema
        for part in error["loc"][:-1]:  # the section the key is in
            model = model.model_fields[str(part)].annotation  # type: ignore[assignment]
        allowed = ", ".join(sorted(model.model_fields))
        return at(parent, f"unknown key {key!r}; allowed: {allowed}")
    if kind == "missing":
        return at(parent, f"{key} is required")
    if kind in ("model_type", "dict_type"):
        return at(dotted, f"a mapping expected, got {got!r}")
    if kind.startswith("int_"):
        return at(dotted, f"a whole number expected, got {got!r}")
    if kind.startswith("decimal_") or kind == "finite_number":
        return at(dotted, f"a decimal number expected, got {got!r}")
    if kind.startswith("string_"):
        return at(dotted, f"a string expected, got {got!r}")
    if kind == "greater_than_equal":
        return at(dotted, f"must be ≥ {error['ctx']['ge']}, got {got!r}")
    if kind == "value_error":
        return at(dotted, str(error["ctx"]["error"]))
    return at(dotted, f"{error['msg']} (got {got!r})")


def _validate(schema: type[BaseModel], raw: Any, prefix: tuple[str, ...] = ()) -> Any:
    try:
        return schema.model_validate(raw)
    except ValidationError as err:
        raise ConfigError("\n".join(_describe(e, schema, prefix) for e in err.errors())) from None


# --- the contracts' bounds -------------------------------------------------------------------------------


def market_problems(m: MarketConfig) -> list[str]:
    """Every way ``m`` breaks a bound of ``MarketParamsLib.validate`` (docs/design.md §10) or of the
    oracle adapter, as ``key must ...`` sentences in human units; empty when the engine accepts it.
    A mock feed also needs a price > 0 that its decimals represent exactly."""
    r = format_units
    mm, im = m.mm_ratio, m.im_ratio
    checks = [
        (mm > 0, "maintenance_margin must be > 0"),
        (
            mm < im <= WAD,
            f"initial_margin must be > maintenance_margin and ≤ 1 (initial_margin {r(im)}, "
            f"maintenance_margin {r(mm)})",
        ),
        (
            m.keeper_reward_ratio <= mm,
            f"keeper_reward must be ≤ maintenance_margin ({r(m.keeper_reward_ratio)} > {r(mm)})",
        ),
        (
            m.keeper_reward_ratio > mm or m.insurance_fee_ratio <= mm - m.keeper_reward_ratio,
            f"keeper_reward + insurance_fee must be ≤ maintenance_margin "
            f"({r(m.keeper_reward_ratio + m.insurance_fee_ratio)} > {r(mm)})",
        ),
        (
            m.maker_fee_ratio < mm,
            f"maker_fee must be < maintenance_margin ({r(m.maker_fee_ratio)} ≥ {r(mm)})",
        ),
        (
            m.taker_fee_ratio < mm,
            f"taker_fee must be < maintenance_margin ({r(m.taker_fee_ratio)} ≥ {r(mm)})",
        ),
        (0 < m.price_band_ratio < WAD, f"price_band must be in (0, 1), got {r(m.price_band_ratio)}"),
        (0 < m.heartbeat <= MAX_HEARTBEAT, f"heartbeat must be > 0 and < 2^32 seconds, got {m.heartbeat}"),
        (
            0 < m.open_interest_cap <= MAX_OPEN_INTEREST_CAP,
            f"open_interest_cap must be > 0 and < 2^127 WAD, got {r(m.open_interest_cap)}",
        ),
        (
            0 < m.keeper_reward_cap <= MAX_KEEPER_REWARD_CAP,
            f"keeper_reward_cap must be > 0 and < 2^128 WAD, got {r(m.keeper_reward_cap)}",
        ),
        (m.feed.lower() != _ZERO, "feed must not be the zero address"),
    ]
    problems = [message for ok, message in checks if not ok]
    if m.feed == MOCK:
        low, high = MOCK_FEED_DECIMALS
        if not low <= m.mock_feed_decimals <= high:
            problems.append(f"feed_decimals must be in {low}..{high}, got {m.mock_feed_decimals}")
        elif m.mock_price <= 0:
            problems.append("price must be > 0")
        elif m.mock_price % 10 ** (18 - m.mock_feed_decimals):
            problems.append(
                f"price {r(m.mock_price)} is not representable with the feed's {m.mock_feed_decimals} decimals"
            )
    return problems


def check_market(m: MarketConfig) -> None:
    """Raises ``ConfigError`` (``markets.<name>: ...``) with the first bound ``m`` breaks."""
    problems = market_problems(m)
    if problems:
        raise ConfigError(f"markets.{m.name}: {problems[0]}")


def suite_problems(config: SuiteConfig) -> list[str]:
    """Every bound a deployment of ``config`` would break, as ``dotted.key: ...`` lines: the
    markets' (:func:`market_problems`), their number and names, the vault's token decimals, the
    engine's ``PARAMS_DELAY`` and the adapter's sequencer grace period."""
    problems = [f"markets.{m.name}: {p}" for m in config.markets for p in market_problems(m)]
    names = [m.name for m in config.markets]
    if not names:
        problems.append("markets: at least one market is required")
    if len(names) > MAX_MARKETS:
        problems.append(f"markets: at most {MAX_MARKETS} markets, got {len(names)}")
    if len(set(names)) != len(names):
        problems.append(f"markets: names must be unique, got {', '.join(names)}")
    if not 0 < config.collateral_decimals <= 18:
        problems.append(f"collateral.decimals: must be in 1..18, got {config.collateral_decimals}")
    low, high = PARAMS_DELAY_BOUNDS
    if not low <= config.params_delay <= high:
        problems.append(f"roles.params_delay: seconds in [{low}, {high}] expected, got {config.params_delay}")
    if not 0 <= config.sequencer_grace_period <= MAX_GRACE_PERIOD:
        problems.append(f"oracle.grace_period: must be < 2^96 seconds, got {config.sequencer_grace_period}")
    for key, value in (("cooldown", config.cooldown), ("window", config.window)):
        if value < 0:
            problems.append(f"insurance.{key}: must be ≥ 0, got {value}")
    return problems


def check_suite(config: SuiteConfig) -> None:
    """Raises ``ConfigError`` listing every bound ``config`` breaks (nothing is sent before this)."""
    problems = suite_problems(config)
    if problems:
        raise ConfigError("\n".join(problems))


# --- parsing ---------------------------------------------------------------------------------------------


def _wad(value: Decimal, where: str) -> int:
    try:
        return to_wad(value)
    except ValueError as err:
        raise ConfigError(f"{where}: {format(value, 'f')} has more than 18 decimal places") from err


def _tokens(value: Decimal, decimals: int, where: str) -> int:
    try:
        return to_units(value, decimals)
    except ValueError as err:
        raise ConfigError(
            f"{where}: {format(value, 'f')} has more decimals than the token's {decimals}"
        ) from err


def market_from_mapping(name: str, raw: Any) -> MarketConfig:
    """A market from the config's (or a scenario's) mapping of decimals, checked against the
    schema and the engine's bounds; errors read ``markets.<name>: ...``."""
    where = f"markets.{name}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a mapping of parameters expected, got {raw!r}")
    s: MarketSchema = _validate(MarketSchema, dict(raw), ("markets", name))
    if s.feed == MOCK and s.price is None:
        raise ConfigError(f"{where}: a mock feed needs an initial price")
    if s.feed != MOCK and ("price" in raw or "feed_decimals" in raw):
        raise ConfigError(f"{where}: price and feed_decimals are for a mock feed only (the feed is {s.feed})")
    market = MarketConfig(
        name=name,
        feed=s.feed,
        heartbeat=s.heartbeat,
        im_ratio=_wad(s.initial_margin, f"{where}.initial_margin"),
        mm_ratio=_wad(s.maintenance_margin, f"{where}.maintenance_margin"),
        keeper_reward_ratio=_wad(s.keeper_reward, f"{where}.keeper_reward"),
        insurance_fee_ratio=_wad(s.insurance_fee, f"{where}.insurance_fee"),
        price_band_ratio=_wad(s.price_band, f"{where}.price_band"),
        maker_fee_ratio=_wad(s.maker_fee, f"{where}.maker_fee"),
        taker_fee_ratio=_wad(s.taker_fee, f"{where}.taker_fee"),
        open_interest_cap=_wad(s.open_interest_cap, f"{where}.open_interest_cap"),
        keeper_reward_cap=(
            MAX_KEEPER_REWARD_CAP
            if s.keeper_reward_cap is None
            else _wad(s.keeper_reward_cap, f"{where}.keeper_reward_cap")
        ),
        mock_price=_wad(s.price, f"{where}.price") if s.price is not None else 0,
        mock_feed_decimals=s.feed_decimals,
    )
    check_market(market)
    return market


def config_from_mapping(raw: Any) -> SuiteConfig:
    """A suite config from a parsed YAML mapping (see ``config/local.yaml``): the schema, then
    every bound (:func:`check_suite`). An empty section (``roles:`` with every line commented out)
    means its defaults."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"the config must be a mapping of sections, got {raw!r}")
    raw = {k: ({} if v is None and k != "markets" else v) for k, v in raw.items()}
    s: SuiteSchema = _validate(SuiteSchema, raw)
    if not isinstance(s.markets, Mapping) or not s.markets:
        raise ConfigError("markets: at least one market is required")
    decimals = s.collateral.decimals
    if not 0 < decimals <= 18:
        raise ConfigError(f"collateral.decimals: must be in 1..18, got {decimals}")
    config = SuiteConfig(
        markets=tuple(market_from_mapping(str(name), m) for name, m in s.markets.items()),
        collateral_token=s.collateral.token,
        collateral_decimals=decimals,
        cooldown=s.insurance.cooldown,
        window=s.insurance.window,
        fund_floor_tokens=_tokens(s.insurance.floor, decimals, "insurance.floor"),
        fund_per_event_cap_tokens=_tokens(s.insurance.per_event_cap, decimals, "insurance.per_event_cap"),
        sequencer_feed=s.oracle.sequencer_feed,
        sequencer_grace_period=s.oracle.grace_period,
        admin=s.roles.admin,
        guardian=s.roles.guardian,
        params_delay=s.roles.params_delay,
    )
    check_suite(config)
    return config


def key_problem(raw: Mapping, allowed: set[str], where: str) -> str | None:
    """The first problem with the keys of the mapping ``raw`` (a key that is not a string, or
    keys outside ``allowed``), prefixed ``where: `` when ``where`` is given; None when none. The
    one wording of the deploy config, the scenarios and the risk lab's config."""
    at = f"{where}: " if where else ""
    for key in raw:
        if not isinstance(key, str):
            return f"{at}key {key!r} is not a string"
    unknown = sorted(set(raw) - allowed)
    if unknown:
        return (
            f"{at}unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    return None


def yaml_problem(err: yaml.YAMLError) -> str:
    """``line L, column C: not valid YAML: <problem>`` (without a position when YAML gives none)."""
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return f"{at}not valid YAML: {err.problem or err.context}"
    return f"not valid YAML: {err}"


def load_config(path: str | Path) -> SuiteConfig:
    """Reads and checks a config file; every problem is a ``ConfigError`` that starts with the
    file's name (a YAML syntax error with its line and column), never a traceback."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config ({err.strerror or err})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: {yaml_problem(err)}") from None
    try:
        return config_from_mapping(raw or {})
    except ConfigError as err:
        raise ConfigError("\n".join(f"{path}: {line}" for line in str(err).splitlines())) from None
