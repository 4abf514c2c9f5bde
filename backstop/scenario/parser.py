"""Stress scenarios: parse and validate a scenario YAML into typed steps (docs/scenario-format.md).

Everything is converted exactly: the YAML is read with a loader that turns every float literal
into a ``Decimal`` of its source text, then amounts become token units and sizes and prices WAD
integers through :mod:`backstop.scenario.values` (a value with more decimals than its unit holds is
an error, never a rounding). Every problem is reported as a ``ScenarioError`` that names where it is
(``steps[3] (trade): unknown key 'szie'; allowed: ...``), on one line; step positions are 0-based,
like the report's ``index`` and the runner's progress lines. A duplicate key in any mapping is an
error naming the key, its mapping and both lines (YAML would keep the last value). Every account a step names must be declared under ``accounts`` (a deposit of
0 is fine for a staker), so a typo in a name is an error, not a new account.

Extensions to docs/scenario-format.md, all optional and backward compatible:

- top level ``description`` (free text);
- ``insurance.window`` and ``insurance.per_event_cap`` (token units, like ``floor``);
- ``expect_revert`` may name the custom error it expects (``expect_revert: ZeroAmount``); a name
  that is not one of the suite's errors (:func:`backstop.scenario.errors.contract_error_names`) is
  an error, with the closest known names;
- ``settle`` takes an optional ``by`` (the sender; default: the relayer);
- ``unstake`` takes an optional ``shares`` (decimal share tokens or ``all``, the default: every
  share of the pending request).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from backstop.config import MOCK, ConfigError, MarketConfig, key_problem, market_from_mapping, yaml_problem
from backstop.scenario.errors import contract_error_names, duplicate_keys, known_error
from backstop.scenario.steps import (
    ALL,
    DEFAULT_COOLDOWN,
    DEFAULT_WINDOW,
    FUND_DECIMALS_OFFSET,
    MATCH,
    MAX,
    STEP_TYPES,
    TRADE_MAKERS,
    TRADE_VIAS,
    Advance,
    Price,
    Scenario,
    ScenarioError,
    Step,
    UpdateMarket,
)
from backstop.scenario.values import exact_decimal, one_of, token_units, wad_units, whole_seconds
from backstop.units import format_units

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ACCOUNT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_ERROR_RE = re.compile(r"^[A-Z][A-Za-z0-9_]*$")

# --- exact YAML ---------------------------------------------------------------------------------------


class _ExactLoader(yaml.SafeLoader):
    """A safe loader whose floats are ``Decimal`` of their source text (``0.1`` stays 0.1 exactly)."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal | str:
    text = loader.construct_scalar(node).replace("_", "")  # type: ignore[arg-type]
    try:
        return Decimal(text)
    except InvalidOperation:  # .inf, .nan: not a quantity; validation rejects it with context
        return text


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def load_yaml(text: str) -> Any:
    """Parses YAML text with exact decimals (floats become ``Decimal``). A duplicate key in any
    mapping is a ``ScenarioError`` naming the key, where it is and both lines; a syntax error is a
    ``ScenarioError`` on one line (``line 4, column 7: ...``)."""
    try:
        duplicates = duplicate_keys(yaml.compose(text, Loader=_ExactLoader))
        if duplicates:
            raise ScenarioError(duplicates[0])
        return yaml.load(text, Loader=_ExactLoader)
    except yaml.YAMLError as err:
        raise ScenarioError(yaml_problem(err)) from err


# key -> required?  (expect_revert is allowed everywhere but on advance)
_STEP_KEYS: dict[str, dict[str, bool]] = {
    "stake": {"account": True, "amount": True},
    "trade": {
        "buyer": True,
        "seller": True,
        "market": True,
        "size": True,
        "price": True,
        "maker": False,
        "via": False,
    },
    "liquidate": {"account": True, "by": True, "market": False, "size": False},
    "liquidate_many": {"accounts": True, "by": True},
    "keeper": {"by": True},
    "settle": {"account": True, "by": False},
    "deposit": {"account": True, "amount": True},
    "withdraw": {"account": True, "amount": True},
    "request_unstake": {"account": True, "shares": True},
    "unstake": {"account": True, "shares": False},
    "cancel_unstake": {"account": True},
    "execute_update": {"market": True},
    "cancel_update": {"market": True},
}
#: Market keys an ``update_market`` step may change, and their ``MarketConfig`` fields (the feed
#: stays the listed mock).
_UPDATABLE = {
    "initial_margin": "im_ratio",
    "maintenance_margin": "mm_ratio",
    "keeper_reward": "keeper_reward_ratio",
    "insurance_fee": "insurance_fee_ratio",
    "price_band": "price_band_ratio",
    "maker_fee": "maker_fee_ratio",
    "taker_fee": "taker_fee_ratio",
    "heartbeat": "heartbeat",
    "open_interest_cap": "open_interest_cap",
    "keeper_reward_cap": "keeper_reward_cap",
}


# --- loading ------------------------------------------------------------------------------------------------


def load_scenario(path: str | Path) -> Scenario:
    """Reads and validates a scenario file; ``ScenarioError`` (with the file name) if it is bad."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ScenarioError(f"{path}: cannot read the scenario ({err.strerror or err})") from err
    try:
        return parse_scenario(load_yaml(text), source=str(path))
    except ScenarioError as err:
        raise ScenarioError(f"{path}: {err}") from err


def parse_scenario_text(
    text: str, source: str | None = None, known_errors: Collection[str] | None = None
) -> Scenario:
    """Parses scenario YAML text (exact decimals); ``known_errors`` as for :func:`parse_scenario`."""
    return parse_scenario(load_yaml(text), source=source, known_errors=known_errors)


_TOP_KEYS = {"name", "description", "collateral_decimals", "markets", "insurance", "accounts", "steps"}


def parse_scenario(
    raw: Any, source: str | None = None, known_errors: Collection[str] | None = None
) -> Scenario:
    """Validates a parsed scenario mapping (as from ``load_yaml``) into a ``Scenario``.
    ``known_errors``: the names ``expect_revert`` may give (default: the suite's errors)."""
    if not isinstance(raw, Mapping):
        raise ScenarioError("a scenario is a mapping with name, markets, accounts and steps")
    _check_keys(raw, _TOP_KEYS, {"name", "markets", "steps"}, "scenario")

    name = raw["name"]
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ScenarioError(f"name: {name!r} must be a file-name-safe string (letters, digits, . _ -)")
    description = raw.get("description", "") or ""
    if not isinstance(description, str):
        raise ScenarioError("description: must be a string")

    decimals = raw.get("collateral_decimals", 6)
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 < decimals <= 18:
        raise ScenarioError(f"collateral_decimals: {decimals!r} must be an integer in 1..18")

    markets = _parse_markets(raw["markets"])
    cooldown, window, floor, cap = _parse_insurance(raw.get("insurance"), decimals)
    accounts = _parse_accounts(raw.get("accounts"), decimals)

    steps_raw = raw["steps"]
    if not isinstance(steps_raw, list):
        raise ScenarioError("steps: must be a list of one-key mappings")
    names = {m.name for m in markets}
    errors = contract_error_names() if known_errors is None else frozenset(known_errors)
    steps = tuple(
        _parse_step(
            i,
            entry,
            decimals=decimals,
            markets=names,
            accounts=set(accounts),
            market_configs=markets,
            errors=errors,
        )
        for i, entry in enumerate(steps_raw)
    )
    return Scenario(
        name=name,
        collateral_decimals=decimals,
        markets=markets,
        accounts=accounts,
        steps=steps,
        cooldown=cooldown,
        window=window,
        floor_tokens=floor,
        per_event_cap_tokens=cap,
        description=description.strip(),
        source=source,
    )


def _check_keys(raw: Mapping, allowed: set[str], required: set[str], where: str) -> None:
    problem = key_problem(raw, allowed, where)
    if problem:
        raise ScenarioError(problem)
    missing = sorted(required - set(raw))
    if missing:
        raise ScenarioError(f"{where}: missing {', '.join(map(repr, missing))}")


def _parse_markets(raw: Any) -> tuple[MarketConfig, ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise ScenarioError("markets: at least one market is required (a mapping name -> parameters)")
    out = []
    for name, params in raw.items():
        where = f"markets.{name}"
        if not isinstance(name, str) or not _ACCOUNT_RE.match(name):
            raise ScenarioError(f"{where}: market names are identifiers (letters, digits, _ -)")
        if not isinstance(params, Mapping):
            raise ScenarioError(f"{where}: must be a mapping of parameters")
        if "price" not in params:
            raise ScenarioError(f"{where}: price (the initial oracle price) is required")
        if str(params.get("feed", MOCK)) != MOCK:
            raise ScenarioError(f"{where}: a stress scenario runs on a local chain with mock feeds only")
        clean = {}
        for key, value in params.items():
            if key in ("heartbeat", "feed_decimals"):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ScenarioError(f"{where}.{key}: {value!r} must be a whole number")
                clean[key] = value
            elif key == "feed":
                clean[key] = value
            else:
                clean[key] = exact_decimal(value, f"{where}.{key}")
        try:  # the schema and the engine's bounds (backstop.config: one copy of them)
            market = market_from_mapping(name, clean)
        except ConfigError as err:  # already names the key: "markets.<name>: ..."
            raise ScenarioError(str(err)) from err
        out.append(market)
    return tuple(out)


def _known_market(name: Any, markets: set[str], where: str) -> str:
    if name not in markets:
        raise ScenarioError(f"{where}: unknown market {name!r}; markets: {', '.join(sorted(markets))}")
    return name


def _parse_update(
    index: int,
    body: dict[str, Any],
    expect: bool | str,
    where: str,
    markets: set[str],
    market_configs: tuple[MarketConfig, ...],
) -> Step:
    """``update_market: {market: ETH, maintenance_margin: 0.5, ...}``: the market as listed, with
    the given keys changed. Out-of-bounds values are left for the engine to refuse
    (``InvalidMarketParam``), since showing that refusal is what such a step is for."""
    if "market" not in body:
        raise ScenarioError(f"{where}: market is required")
    name = _known_market(body.pop("market"), markets, f"{where}.market")
    unknown = set(body) - _UPDATABLE.keys()
    if unknown or not body:
        raise ScenarioError(
            f"{where}: change at least one of {', '.join(_UPDATABLE)}; unknown {sorted(unknown)}"
        )
    listed = next(m for m in market_configs if m.name == name)
    changes: dict[str, Any] = {}
    for key, value in body.items():
        field_name = _UPDATABLE[key]
        if key == "heartbeat":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ScenarioError(f"{where}.heartbeat: {value!r} must be a whole number")
            changes[field_name] = value
        else:
            changes[field_name] = wad_units(value, f"{where}.{key}")
    params = replace(listed, **changes)
    return UpdateMarket(index=index, expect_revert=expect, market=name, params=params)


def _check_feed_price(m: MarketConfig, price_wad: int, where: str) -> None:
    if price_wad <= 0:
        raise ScenarioError(f"{where}: an oracle price must be > 0")
    if price_wad % 10 ** (18 - m.mock_feed_decimals):
        raise ScenarioError(
            f"{where}: {format_units(price_wad)} is not representable with the feed's {m.mock_feed_decimals} decimals"
        )


def _parse_insurance(raw: Any, decimals: int) -> tuple[int, int, int, int]:
    if raw is None:
        return DEFAULT_COOLDOWN, DEFAULT_WINDOW, 0, 0
    if not isinstance(raw, Mapping):
        raise ScenarioError("insurance: must be a mapping (cooldown, floor)")
    _check_keys(raw, {"cooldown", "window", "floor", "per_event_cap"}, set(), "insurance")
    return (
        whole_seconds(raw.get("cooldown", DEFAULT_COOLDOWN), "insurance.cooldown"),
        whole_seconds(raw.get("window", DEFAULT_WINDOW), "insurance.window"),
        token_units(raw.get("floor", 0), decimals, "insurance.floor"),
        token_units(raw.get("per_event_cap", 0), decimals, "insurance.per_event_cap"),
    )


def _parse_accounts(raw: Any, decimals: int) -> dict[str, int]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ScenarioError("accounts: must be a mapping name -> initial margin deposit")
    out = {}
    for name, amount in raw.items():
        if not isinstance(name, str) or not _ACCOUNT_RE.match(name):
            raise ScenarioError(f"accounts: {name!r} is not a valid account name (letters, digits, _ -)")
        out[name] = token_units(0 if amount is None else amount, decimals, f"accounts.{name}")
    return out


def _account_list(raw: Any, accounts: set[str], where: str) -> tuple[str, ...]:
    """A list of declared account names (repeats allowed: the engine skips them); an empty list
    is allowed, for a step that expects ``EmptyBatch``."""
    if not isinstance(raw, list):
        raise ScenarioError(f"{where}: must be a list of account names, like [bob, carol]")
    for i, name in enumerate(raw):
        if not isinstance(name, str) or name not in accounts:
            known = ", ".join(sorted(accounts)) or "none declared"
            raise ScenarioError(
                f"{where}[{i}]: unknown account {name!r}; declare it under 'accounts' (known: {known})"
            )
    return tuple(raw)


def _parse_expect_revert(value: Any, where: str, errors: Collection[str]) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and _ERROR_RE.match(value):
        return known_error(value, f"{where}.expect_revert", errors)
    raise ScenarioError(f"{where}.expect_revert: {value!r} must be true, false or a custom error name")


def _parse_step(
    index: int,
    entry: Any,
    *,
    decimals: int,
    markets: set[str],
    accounts: set[str],
    market_configs: tuple[MarketConfig, ...],
    errors: Collection[str],
) -> Step:
    if not isinstance(entry, Mapping) or len(entry) != 1:
        raise ScenarioError(f"steps[{index}]: each step is a one-key mapping like '- trade: {{...}}'")
    [(action, body)] = entry.items()
    if action not in STEP_TYPES:
        raise ScenarioError(
            f"steps[{index}]: unknown action {action!r}; expected one of {', '.join(STEP_TYPES)}"
        )
    where = f"steps[{index}] ({action})"

    if action == "advance":
        return Advance(index=index, seconds=whole_seconds(body, where))

    if not isinstance(body, Mapping):
        raise ScenarioError(f"{where}: expected a mapping, got {body!r}")
    body = dict(body)
    expect = (
        _parse_expect_revert(body.pop("expect_revert"), where, errors) if "expect_revert" in body else False
    )

    if action == "price":
        if not body:
            raise ScenarioError(f"{where}: give at least one market price, like '{{ETH: 1500}}'")
        by_name = {m.name: m for m in market_configs}
        prices = {}
        for market, value in body.items():
            if market not in markets:
                raise ScenarioError(
                    f"{where}: unknown market {market!r}; markets: {', '.join(sorted(markets))}"
                )
            price = wad_units(value, f"{where}.{market}")
            _check_feed_price(by_name[market], price, f"{where}.{market}")
            prices[market] = price
        return Price(index=index, expect_revert=expect, prices=prices)

    if action == "update_market":
        return _parse_update(index, body, expect, where, markets, market_configs)

    spec = _STEP_KEYS[action]
    _check_keys(body, set(spec), {k for k, req in spec.items() if req}, where)
    cls = STEP_TYPES[action]
    for key in cls.account_keys:
        if key in body:
            name = body[key]
            if not isinstance(name, str) or name not in accounts:
                known = ", ".join(sorted(accounts)) or "none declared"
                raise ScenarioError(
                    f"{where}.{key}: unknown account {name!r}; declare it under 'accounts' (known: {known})"
                )

    fields: dict[str, Any] = {k: body[k] for k in cls.account_keys if k in body}
    if action == "trade":
        if body["market"] not in markets:
            raise ScenarioError(
                f"{where}.market: unknown market {body['market']!r}; markets: {', '.join(sorted(markets))}"
            )
        fields.update(
            market=body["market"],
            size=wad_units(body["size"], f"{where}.size"),
            price=wad_units(body["price"], f"{where}.price"),
            maker=one_of(body.get("maker", "seller"), TRADE_MAKERS, f"{where}.maker"),
            via=one_of(body.get("via", MATCH), TRADE_VIAS, f"{where}.via"),
        )
    elif action in ("stake", "deposit"):
        fields["amount"] = token_units(body["amount"], decimals, f"{where}.amount")
    elif action == "withdraw":
        amount = body["amount"]
        fields["amount"] = MAX if amount == MAX else token_units(amount, decimals, f"{where}.amount")
    elif action == "liquidate" and ("market" in body or "size" in body):
        if "market" not in body or "size" not in body:
            raise ScenarioError(f"{where}: a partial liquidation gives both market and size")
        fields["market"] = _known_market(body["market"], markets, f"{where}.market")
        fields["size"] = wad_units(body["size"], f"{where}.size")
    elif action == "liquidate_many":
        fields["targets"] = _account_list(body["accounts"], accounts, f"{where}.accounts")
    elif action in ("execute_update", "cancel_update"):
        fields["market"] = _known_market(body["market"], markets, f"{where}.market")
    elif action in ("request_unstake", "unstake"):
        shares = body.get("shares", ALL)
        fields["shares"] = (
            ALL if shares == ALL else token_units(shares, decimals + FUND_DECIMALS_OFFSET, f"{where}.shares")
        )
    return cls(index=index, expect_revert=expect, **fields)
