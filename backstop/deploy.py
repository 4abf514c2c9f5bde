"""Deploys and wires a Backstop suite from a markets config, writes the manifest, re-checks wiring.

Used by ``ape run deploy``, the stress runner and the tests. Everything goes through Ape's
project containers, so any Ape network works: on a local chain, ``feed: mock`` and
``collateral.token: mock`` deploy test doubles; on a testnet, give real addresses.

Re-running is idempotent: with a manifest whose contracts still have code on chain, nothing is
deployed again (markets added to the config since are listed). Every run ends by re-reading every
address and parameter from chain and comparing it with the config and the manifest
(``verify``); any difference raises ``DeploymentMismatch`` listing all of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from backstop.units import WAD, to_units, to_wad

log = logging.getLogger("backstop.deploy")

MOCK = "mock"
ORACLE_ADMIN_ROLE_NAME = "ORACLE_ADMIN_ROLE"


class ConfigError(ValueError):
    """The markets config is malformed."""


class DeploymentMismatch(RuntimeError):
    """What is on chain differs from the config or the manifest."""

    def __init__(self, problems: list[str]):
        super().__init__("deployment check failed:\n  - " + "\n  - ".join(problems))
        self.problems = problems


# --- configuration ------------------------------------------------------------------------------------


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
    mock_price: int = 0  # WAD, initial answer of a mock feed
    mock_feed_decimals: int = 8

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
    guardian: str | None = None

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
        guardian=(raw.get("roles", {}) or {}).get("guardian"),
    )


def load_config(path: str | Path) -> SuiteConfig:
    with open(path) as fh:
        return config_from_mapping(yaml.safe_load(fh) or {})


# --- deployment ----------------------------------------------------------------------------------------


@dataclass
class Deployment:
    """Contract instances of a deployed suite, and the manifest that describes it."""

    chain_id: int
    token: Any
    oracle: Any
    vault: Any
    fund: Any
    engine: Any
    feeds: dict[str, Any] = field(default_factory=dict)
    market_ids: dict[str, int] = field(default_factory=dict)
    blocks: dict[str, int] = field(default_factory=dict)

    def manifest(self, config: SuiteConfig, deployer: str) -> dict[str, Any]:
        contracts = {
            "CollateralToken": self.token,
            "OracleAdapter": self.oracle,
            "CollateralVault": self.vault,
            "InsuranceFund": self.fund,
            "MarginEngine": self.engine,
        }
        return {
            "chain_id": self.chain_id,
            "deployer": deployer,
            "config_sha256": config.digest(),
            "contracts": {
                name: {"address": c.address, "block": self.blocks.get(name, 0)}
                for name, c in contracts.items()
            },
            "feeds": {name: f.address for name, f in self.feeds.items()},
            "markets": {
                m.name: {
                    "id": self.market_ids[m.name],
                    "feed": self.feeds[m.name].address,
                    "heartbeat": m.heartbeat,
                    "im_ratio": str(m.im_ratio),
                    "mm_ratio": str(m.mm_ratio),
                    "keeper_reward_ratio": str(m.keeper_reward_ratio),
                    "insurance_fee_ratio": str(m.insurance_fee_ratio),
                    "price_band_ratio": str(m.price_band_ratio),
                    "maker_fee_ratio": str(m.maker_fee_ratio),
                    "taker_fee_ratio": str(m.taker_fee_ratio),
                    "open_interest_cap": str(m.open_interest_cap),
                }
                for m in config.markets
            },
        }


def _deploy(container, *args, sender, blocks: dict[str, int], name: str):
    instance = container.deploy(*args, sender=sender)
    # The creation block: where log scans (the keeper's cursor) can start.
    blocks[name] = instance.chain_manager.provider.get_receipt(instance.txn_hash).block_number
    log.info("deploy contract=%s address=%s block=%s", name, instance.address, blocks[name])
    return instance


def deploy_suite(project, chain, sender, config: SuiteConfig, *, local: bool) -> Deployment:
    """Deploys and wires a fresh suite. Mocks (token, feeds) only when ``local``."""
    if config.uses_mocks and not local:
        raise ConfigError("mock token or feeds requested on a non-local network: give real addresses")
    blocks: dict[str, int] = {}
    if config.collateral_token == MOCK:
        token = _deploy(
            project.MockERC20,
            "Backstop USD",
            "bUSD",
            config.collateral_decimals,
            sender=sender,
            blocks=blocks,
            name="CollateralToken",
        )
    else:
        token = project.MockERC20.at(config.collateral_token)  # any ERC-20 ABI will do for reads
    oracle = _deploy(
        project.OracleAdapter, sender.address, sender=sender, blocks=blocks, name="OracleAdapter"
    )
    vault = _deploy(
        project.CollateralVault, token.address, sender=sender, blocks=blocks, name="CollateralVault"
    )
    fund = _deploy(
        project.InsuranceFund,
        token.address,
        config.cooldown,
        config.window,
        config.fund_floor_tokens,
        config.fund_per_event_cap_tokens,
        sender=sender,
        blocks=blocks,
        name="InsuranceFund",
    )
    engine = _deploy(
        project.MarginEngine,
        vault.address,
        oracle.address,
        fund.address,
        sender.address,
        sender=sender,
        blocks=blocks,
        name="MarginEngine",
    )
    oracle.grantRole(oracle.ORACLE_ADMIN_ROLE(), engine.address, sender=sender)
    if config.sequencer_feed:
        oracle.setSequencerFeed(config.sequencer_feed, config.sequencer_grace_period, sender=sender)
    fund.wire(engine.address, vault.address, sender=sender)
    vault.wire(engine.address, fund.address, sender=sender)
    if config.guardian:
        engine.grantRole(engine.GUARDIAN_ROLE(), config.guardian, sender=sender)
    deployment = Deployment(chain.chain_id, token, oracle, vault, fund, engine, blocks=blocks)
    add_missing_markets(project, sender, config, deployment)
    return deployment


def add_missing_markets(project, sender, config: SuiteConfig, deployment: Deployment) -> list[str]:
    """Lists the config's markets that the engine does not have yet, in config order."""
    added = []
    for market in config.markets:
        if market.name in deployment.market_ids:
            continue
        if market.feed == MOCK:
            answer = market.mock_price * 10**market.mock_feed_decimals // WAD
            feed = project.MockAggregator.deploy(
                market.mock_feed_decimals, answer, f"{market.name} / USD", sender=sender
            )
        else:
            feed = project.MockAggregator.at(market.feed)
        expected_id = deployment.engine.marketCount()
        deployment.engine.addMarket(market.params_tuple(feed.address), sender=sender)
        deployment.feeds[market.name] = feed
        deployment.market_ids[market.name] = expected_id
        added.append(market.name)
        log.info("market added name=%s id=%s feed=%s", market.name, expected_id, feed.address)
    return added


def load_deployment(project, chain, manifest: dict[str, Any]) -> Deployment | None:
    """Contract instances for a manifest, or None if its contracts have no code on this chain."""
    contracts = manifest.get("contracts", {})
    for entry in contracts.values():
        if not chain.provider.get_code(entry["address"]):
            return None
    return Deployment(
        chain_id=manifest["chain_id"],
        token=project.MockERC20.at(contracts["CollateralToken"]["address"]),
        oracle=project.OracleAdapter.at(contracts["OracleAdapter"]["address"]),
        vault=project.CollateralVault.at(contracts["CollateralVault"]["address"]),
        fund=project.InsuranceFund.at(contracts["InsuranceFund"]["address"]),
        engine=project.MarginEngine.at(contracts["MarginEngine"]["address"]),
        feeds={name: project.MockAggregator.at(addr) for name, addr in manifest.get("feeds", {}).items()},
        market_ids={name: m["id"] for name, m in manifest.get("markets", {}).items()},
        blocks={name: c.get("block", 0) for name, c in contracts.items()},
    )


def manifest_path(root: Path, chain_id: int) -> Path:
    return root / "deployments" / f"{chain_id}.json"


def deploy_or_reuse(
    project, chain, sender, config: SuiteConfig, *, root: Path, local: bool
) -> tuple[Deployment, bool]:
    """Reuses the manifest's suite if it is live on this chain, else deploys one. Writes the
    manifest, then verifies everything against the chain. Returns (deployment, reused)."""
    path = manifest_path(root, chain.chain_id)
    deployment = None
    if path.exists():
        manifest = json.loads(path.read_text())
        deployment = load_deployment(project, chain, manifest)
        if deployment is None and not local:
            raise DeploymentMismatch(
                [f"{path}: contracts listed in the manifest have no code on chain {chain.chain_id}"]
            )
        if deployment is None:
            log.info("manifest stale (local chain restarted) path=%s: deploying afresh", path)
    reused = deployment is not None
    if deployment is None:
        deployment = deploy_suite(project, chain, sender, config, local=local)
    else:
        add_missing_markets(project, sender, config, deployment)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(deployment.manifest(config, sender.address), indent=2) + "\n")
    verify(deployment, config)
    return deployment, reused


# --- verification -----------------------------------------------------------------------------------------


def verify(deployment: Deployment, config: SuiteConfig) -> None:
    """Re-reads every address and parameter from chain; raises ``DeploymentMismatch`` listing
    every difference from the config and the deployment's own addresses."""
    d = deployment
    problems: list[str] = []

    def same(what: str, actual: Any, expected: Any) -> None:
        if str(actual).lower() != str(expected).lower():
            problems.append(f"{what}: on chain {actual}, expected {expected}")

    same("vault.TOKEN", d.vault.TOKEN(), d.token.address)
    same("vault.SCALE", d.vault.SCALE(), 10 ** (18 - config.collateral_decimals))
    same("vault.engine", d.vault.engine(), d.engine.address)
    same("vault.insuranceFund", d.vault.insuranceFund(), d.fund.address)
    same("fund.asset", d.fund.asset(), d.token.address)
    same("fund.protocol", d.fund.protocol(), d.engine.address)
    same("fund.coverRecipient", d.fund.coverRecipient(), d.vault.address)
    same("fund.COOLDOWN", d.fund.COOLDOWN(), config.cooldown)
    same("fund.WINDOW", d.fund.WINDOW(), config.window)
    same("fund.FLOOR", d.fund.FLOOR(), config.fund_floor_tokens)
    same("fund.PER_EVENT_CAP", d.fund.PER_EVENT_CAP(), config.fund_per_event_cap_tokens)
    same("engine.VAULT", d.engine.VAULT(), d.vault.address)
    same("engine.ORACLE", d.engine.ORACLE(), d.oracle.address)
    same("engine.INSURANCE_FUND", d.engine.INSURANCE_FUND(), d.fund.address)
    if not d.oracle.hasRole(d.oracle.ORACLE_ADMIN_ROLE(), d.engine.address):
        problems.append("oracle: the engine lacks ORACLE_ADMIN_ROLE")
    if d.token.decimals() != config.collateral_decimals:
        problems.append(f"token.decimals: on chain {d.token.decimals()}, config {config.collateral_decimals}")
    if config.sequencer_feed:
        feed, grace = d.oracle.sequencerFeed()
        same("oracle.sequencerFeed", feed, config.sequencer_feed)
        same("oracle.gracePeriod", grace, config.sequencer_grace_period)
    same("engine.marketCount", d.engine.marketCount(), len(config.markets))
    for market in config.markets:
        if market.name not in d.market_ids:
            problems.append(f"market {market.name}: not listed")
            continue
        market_id = d.market_ids[market.name]
        if market_id >= d.engine.marketCount():
            problems.append(f"market {market.name}: id {market_id} does not exist on chain")
            continue
        on_chain = tuple(d.engine.marketParams(market_id))
        expected_feed = d.feeds[market.name].address if market.feed == MOCK else market.feed
        expected = market.params_tuple(expected_feed)
        names = [
            "feed",
            "heartbeat",
            "imRatio",
            "mmRatio",
            "keeperRewardRatio",
            "insuranceFeeRatio",
            "priceBandRatio",
            "makerFeeRatio",
            "takerFeeRatio",
            "openInterestCap",
        ]
        for name, actual, want in zip(names, on_chain, expected, strict=True):
            same(f"market {market.name}.{name}", actual, want)
    if problems:
        raise DeploymentMismatch(problems)
    log.info("verify ok contracts=5 markets=%s", len(config.markets))
