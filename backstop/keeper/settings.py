"""The keeper's settings (docs/keeper.md §"Configuration"): one strict schema, three sources.

Precedence, lowest first: the defaults here, a YAML file (``--config FILE`` or
``BACKSTOP_KEEPER_CONFIG``), environment variables (``BACKSTOP_KEEPER_<KEY>``, the key upper-cased:
``BACKSTOP_KEEPER_MAX_FEE_GWEI=40``; lists comma-separated:
``BACKSTOP_KEEPER_RPC_URLS=http://a:8545,http://b:8545``), then the command-line flags
(``--max-fee-gwei 40``). A flag overrides everything; a variable overrides the file.

Every key is checked before the keeper connects: an unknown or misspelt key, a wrong type or a
value out of range is a :class:`KeeperSettingsError` that names the key and where it came from
(``config/keeper.yaml: max_fee_gwei: must be > 0, got -1`` or
``BACKSTOP_KEEPER_BATCH_SIZE: a whole number expected, got 'many'``). Pure: reads the file and
the mapping it is given, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backstop.chain.tx import wei_of_gwei
from backstop.decisions.fallback import DEFAULT_BUFFER_RATIO, DEFAULT_GAS_BUDGET, DEFAULT_MIN_STEP_NOTIONAL
from backstop.keeper.loop import DEFAULT_MAX_BACKOFF
from backstop.keeper.risk import DEFAULT_MIN_BUFFER
from backstop.units import WAD

#: The prefix of the keeper's environment variables.
ENV_PREFIX = "BACKSTOP_KEEPER_"
#: The variable naming the config file when ``--config`` is not given.
CONFIG_ENV = ENV_PREFIX + "CONFIG"


class KeeperSettingsError(ValueError):
    """A setting is unknown, of the wrong type or out of range; the message names it."""


class KeeperSettings(BaseModel):
    """Every setting of ``ape run keeper``; the flag of ``max_fee_gwei`` is ``--max-fee-gwei``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: JSON-RPC endpoints, in order of preference (failover); empty: the Ape provider's URL.
    rpc_urls: list[str] = Field(default_factory=list)
    #: Ape account alias (test account 0 on a local network when unset).
    account: str | None = None
    deployment: Path | None = None
    state: Path | None = None
    dry_run: bool = False
    batch_size: int = Field(500, ge=1)
    poll_interval: float = Field(1.0, ge=0.05)
    #: The longest wait (seconds) between passes while every endpoint is down; the wait doubles
    #: from twice the poll interval up to this.
    max_backoff: float = Field(DEFAULT_MAX_BACKOFF, gt=0)
    max_in_flight: int = Field(8, ge=1)
    gas_budget: int = Field(DEFAULT_GAS_BUDGET, ge=100_000)
    buffer: float = Field(DEFAULT_BUFFER_RATIO / WAD, ge=0, le=10)
    min_step: float = Field(DEFAULT_MIN_STEP_NOTIONAL / WAD, ge=0)
    max_inherit_notional: float | None = Field(None, ge=0)
    min_buffer: float = Field(DEFAULT_MIN_BUFFER / WAD, ge=0, le=100)
    #: Fees: the most the keeper pays per gas, and its tip (gwei); None: the node's suggestion.
    max_fee_gwei: float | None = Field(None, gt=0)
    priority_fee_gwei: float | None = Field(None, ge=0)
    #: Seconds without a receipt before a transaction is re-signed with higher fees.
    reprice_after: float = Field(12.0, gt=0)
    #: The quote value of 1 ETH for the profitability floor; None: the engine's "ETH" market price.
    eth_price: float | None = Field(None, gt=0)
    #: Prometheus ``/metrics`` and ``/health`` (None: not served).
    metrics_port: int | None = Field(None, ge=1, le=65_535)
    metrics_host: str = "127.0.0.1"
    #: ``/health`` fails once the newest block is older than this (seconds; 0: never).
    max_head_age: float = Field(120.0, ge=0)
    #: RPC health checks: how often, and how far an endpoint's head may lag the best one.
    health_interval: float = Field(5.0, gt=0)
    max_lag_blocks: int = Field(5, ge=0)
    log_format: Literal["text", "json"] = "text"
    debug: bool = False

    @field_validator("max_fee_gwei", "priority_fee_gwei")
    @classmethod
    def _whole_wei(cls, gwei: float | None) -> float | None:
        if gwei is not None:
            wei_of_gwei(gwei)  # ValueError: not a whole number of wei
        return gwei

    @field_validator("rpc_urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"an http(s) URL expected, got {url!r}")
        if len(set(urls)) != len(urls):
            raise ValueError("a URL is listed twice")
        return urls


#: Keys whose environment value is a comma-separated list.
_LIST_KEYS = {"rpc_urls"}


def _num(x: Any) -> Any:
    """``100.0`` as ``100``, other values as they are."""
    return int(x) if isinstance(x, float) and x.is_integer() else x


def _describe(error: Mapping[str, Any], source_of: Mapping[str, str]) -> str:
    key = str(error["loc"][0]) if error["loc"] else "?"
    where = source_of.get(key, "default")
    got = error.get("input")
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = ", ".join(sorted(KeeperSettings.model_fields))
        return f"{where}: unknown key {key!r}; allowed: {allowed}"
    label = where if where.startswith(ENV_PREFIX) or where.startswith("--") else f"{where}: {key}"
    if kind.startswith("int_"):
        return f"{label}: a whole number expected, got {got!r}"
    if kind.startswith("float_"):
        return f"{label}: a number expected, got {got!r}"
    if kind.startswith("bool"):
        return f"{label}: true or false expected, got {got!r}"
    if kind == "greater_than":
        return f"{label}: must be > {_num(error['ctx']['gt'])}, got {got!r}"
    if kind == "greater_than_equal":
        return f"{label}: must be ≥ {_num(error['ctx']['ge'])}, got {got!r}"
    if kind == "less_than_equal":
        return f"{label}: must be ≤ {_num(error['ctx']['le'])}, got {got!r}"
    if kind == "literal_error":
        return f"{label}: one of {error['ctx']['expected']} expected, got {got!r}"
    if kind == "value_error":
        return f"{label}: {error['ctx']['error']}"
    return f"{label}: {error['msg']} (got {got!r})"


def read_file(path: Path) -> dict[str, Any]:
    """The mapping in the YAML file at ``path`` (keys with ``-`` read as ``_``)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise KeeperSettingsError(f"{path}: cannot read the keeper config ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise KeeperSettingsError(f"{path}: not valid YAML ({err})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise KeeperSettingsError(f"{path}: a mapping of settings expected, got {type(raw).__name__}")
    return {str(k).replace("-", "_"): v for k, v in raw.items()}


def read_env(environ: Mapping[str, str]) -> dict[str, tuple[str, Any]]:
    """``key → (variable, value)`` of every ``BACKSTOP_KEEPER_*`` variable (but the config's own)."""
    out: dict[str, tuple[str, Any]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key in _LIST_KEYS:
            out[key] = (name, [part.strip() for part in value.split(",") if part.strip()])
        else:
            out[key] = (name, value)
    return out


def load_settings(path: Path | None, environ: Mapping[str, str], flags: Mapping[str, Any]) -> KeeperSettings:
    """The settings from the file at ``path`` (or ``$BACKSTOP_KEEPER_CONFIG``), then ``environ``'s
    ``BACKSTOP_KEEPER_*`` variables, then ``flags`` (``key → value`` of the flags given on the
    command line only); :class:`KeeperSettingsError` names every bad key and its source."""
    if path is None and environ.get(CONFIG_ENV):
        path = Path(environ[CONFIG_ENV])
    merged: dict[str, Any] = {}
    source_of: dict[str, str] = {}
    if path is not None:
        for key, value in read_file(path).items():
            merged[key], source_of[key] = value, str(path)
    for key, (name, value) in read_env(environ).items():
        merged[key], source_of[key] = value, name
    for key, value in flags.items():
        merged[key], source_of[key] = value, "--" + key.replace("_", "-")
    try:
        return KeeperSettings.model_validate(merged)
    except ValidationError as err:
        raise KeeperSettingsError("\n".join(_describe(e, source_of) for e in err.errors())) from None
