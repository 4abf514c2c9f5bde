"""The deploy configuration: a suite's markets, collateral, insurance fund and roles, as typed
values, parsed from ``config/*.yaml`` (and from a scenario's markets by ``backstop.scenario``).

Plain data and parsing only: deploying a config is ``backstop.chain.deploy``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from backstop.model.state import MAX_KEEPER_REWARD_CAP, MarketParams
from backstop.units import to_units, to_wad

#: A ``feed`` or ``collateral.token`` to deploy as a test double (local chains only).
MOCK = "mock"
#: The engine's default ``PARAMS_DELAY`` (docs/design.md §10): two days to see a change coming.
DEFAULT_PARAMS_DELAY = 2 * 86_400
#: ``MarginEngine.MIN_PARAMS_DELAY`` and ``MAX_PARAMS_DELAY``.
PARAMS_DELAY_BOUNDS = (3_600, 30 * 86_400)


class ConfigError(ValueError):
    """The markets config is malformed."""


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


def _ratio(raw: Any, name: str) -> int:
    try:
        return to_wad(Decimal(str(raw)))
    except (ArithmeticError, ValueError) as err:  # decimal.InvalidOperation is an ArithmeticError
        raise ConfigError(f"{name}: {raw!r} is not a decimal ratio") from err


def _reward_cap(raw: Any, market: str) -> int:
    """``keeper_reward_cap`` in quote tokens (a decimal) as WAD; absent: the largest cap (none)."""
    if raw is None:
        return MAX_KEEPER_REWARD_CAP
    try:
        cap = to_wad(Decimal(str(raw)))
    except (ArithmeticError, ValueError) as err:
        raise ConfigError(f"market {market}: keeper_reward_cap: {raw!r} is not a decimal amount") from err
    if not 0 < cap <= MAX_KEEPER_REWARD_CAP:
        raise ConfigError(f"market {market}: keeper_reward_cap: must be > 0 and below 2^128 WAD, got {raw!r}")
    return cap


def _roles(raw: Any) -> dict[str, Any]:
    roles = raw or {}
    if not isinstance(roles, dict):
        raise ConfigError("roles: must be a mapping with admin, guardian and params_delay")
    unknown = set(roles) - {"admin", "guardian", "params_delay"}
    if unknown:
        raise ConfigError(f"roles: unknown keys {sorted(unknown)}")
    delay = roles.get("params_delay", DEFAULT_PARAMS_DELAY)
    low, high = PARAMS_DELAY_BOUNDS
    if not isinstance(delay, int) or isinstance(delay, bool) or not low <= delay <= high:
        raise ConfigError(f"roles.params_delay: seconds in [{low}, {high}] expected, got {delay!r}")
    return {"admin": roles.get("admin"), "guardian": roles.get("guardian"), "params_delay": delay}


def market_from_mapping(name: str, raw: dict[str, Any]) -> MarketConfig:
    """A market from the config's (or a scenario's) mapping of decimals."""
    known = {
        "feed",
        "price",
        "feed_decimals",
        "heartbeat",
        "initial_margin",
        "maintenance_margin",
        "keeper_reward",
        "insurance_fee",
        "price_band",
        "maker_fee",
        "taker_fee",
        "open_interest_cap",
        "keeper_reward_cap",
    }
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"market {name}: unknown keys {sorted(unknown)}")
    for required in ("initial_margin", "maintenance_margin", "keeper_reward", "insurance_fee"):
        if required not in raw:
            raise ConfigError(f"market {name}: {required} is required")
    feed = str(raw.get("feed", MOCK))
    if feed == MOCK and "price" not in raw:
        raise ConfigError(f"market {name}: a mock feed needs an initial price")
    return MarketConfig(
        name=name,
        feed=feed,
        heartbeat=int(raw.get("heartbeat", 86_400)),
        im_ratio=_ratio(raw["initial_margin"], f"{name}.initial_margin"),
        mm_ratio=_ratio(raw["maintenance_margin"], f"{name}.maintenance_margin"),
        keeper_reward_ratio=_ratio(raw["keeper_reward"], f"{name}.keeper_reward"),
        insurance_fee_ratio=_ratio(raw["insurance_fee"], f"{name}.insurance_fee"),
        price_band_ratio=_ratio(raw.get("price_band", "0.05"), f"{name}.price_band"),
        maker_fee_ratio=_ratio(raw.get("maker_fee", 0), f"{name}.maker_fee"),
        taker_fee_ratio=_ratio(raw.get("taker_fee", 0), f"{name}.taker_fee"),
        open_interest_cap=to_wad(Decimal(str(raw.get("open_interest_cap", 10**9)))),
        keeper_reward_cap=_reward_cap(raw.get("keeper_reward_cap"), name),
        mock_price=to_wad(Decimal(str(raw["price"]))) if "price" in raw else 0,
        mock_feed_decimals=int(raw.get("feed_decimals", 8)),
    )


def config_from_mapping(raw: dict[str, Any]) -> SuiteConfig:
    """A suite config from a parsed YAML mapping (see ``config/local.yaml``)."""
    markets_raw = raw.get("markets")
    if not isinstance(markets_raw, dict) or not markets_raw:
        raise ConfigError("markets: at least one market is required")
    collateral = raw.get("collateral", {}) or {}
    insurance = raw.get("insurance", {}) or {}
    oracle = raw.get("oracle", {}) or {}
    decimals = int(collateral.get("decimals", 6))
    return SuiteConfig(
        markets=tuple(market_from_mapping(name, m or {}) for name, m in markets_raw.items()),
        collateral_token=str(collateral.get("token", MOCK)),
        collateral_decimals=decimals,
        cooldown=int(insurance.get("cooldown", 7 * 86_400)),
        window=int(insurance.get("window", 2 * 86_400)),
        fund_floor_tokens=to_units(insurance.get("floor", 0), decimals),
        fund_per_event_cap_tokens=to_units(insurance.get("per_event_cap", 0), decimals),
        sequencer_feed=oracle.get("sequencer_feed"),
        sequencer_grace_period=int(oracle.get("grace_period", 3_600)),
        **_roles(raw.get("roles")),
    )


def load_config(path: str | Path) -> SuiteConfig:
    with open(path) as fh:
        return config_from_mapping(yaml.safe_load(fh) or {})
