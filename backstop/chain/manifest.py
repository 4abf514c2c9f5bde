"""The deployment manifest (``deployments/<chain id>.json``), reusing a live suite, and verification:
every address and parameter re-read from chain and compared with the config and the manifest.

Re-running a deployment is idempotent: with a manifest whose contracts still have code on chain,
nothing is deployed again (markets added to the config since are listed). Before any transaction
the config is checked against the contracts' bounds, a config that drops a listed market is
refused, and the suite already listed is verified against the config. Every run ends with
:func:`verify`; any difference raises :class:`DeploymentMismatch` listing all of them. Only then is
the manifest written, atomically (:func:`write_manifest`): a failed run leaves it as it was.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from backstop.chain.deploy import Deployment, add_missing_markets, deploy_suite
from backstop.config import MOCK, ConfigError, SuiteConfig, check_suite

log = logging.getLogger("backstop.deploy")


class DeploymentMismatch(RuntimeError):
    """What is on chain differs from the config or the manifest."""

    def __init__(self, problems: list[str]):
        super().__init__("deployment check failed:\n  - " + "\n  - ".join(problems))
        self.problems = problems


def manifest_of(deployment: Deployment, config: SuiteConfig, deployer: str) -> dict[str, Any]:
    """The manifest of an Ape deployment: addresses, creation blocks, config digest, markets."""
    d = deployment
    contracts = {
        "CollateralToken": d.token,
        "OracleAdapter": d.oracle,
        "CollateralVault": d.vault,
        "InsuranceFund": d.fund,
        "MarginEngine": d.engine,
    }
    return {
        "chain_id": d.chain_id,
        "deployer": deployer,
        "config_sha256": config.digest(),
        "contracts": {
            name: {"address": c.address, "block": d.blocks.get(name, 0)} for name, c in contracts.items()
        },
        "roles": {
            "admin": config.admin or deployer,
            "guardian": config.guardian or deployer,
            "params_delay": config.params_delay,
        },
        "feeds": {name: f.address for name, f in d.feeds.items()},
        "markets": {
            m.name: {
                "id": d.market_ids[m.name],
                "feed": d.feeds[m.name].address,
                "heartbeat": m.heartbeat,
                "im_ratio": str(m.im_ratio),
                "mm_ratio": str(m.mm_ratio),
                "keeper_reward_ratio": str(m.keeper_reward_ratio),
                "insurance_fee_ratio": str(m.insurance_fee_ratio),
                "price_band_ratio": str(m.price_band_ratio),
                "maker_fee_ratio": str(m.maker_fee_ratio),
                "taker_fee_ratio": str(m.taker_fee_ratio),
                "open_interest_cap": str(m.open_interest_cap),
                "keeper_reward_cap": str(m.keeper_reward_cap),
            }
            for m in config.markets
        },
    }


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


def manifest_path(root: Path, chain_id: int, *, fork: bool = False) -> Path:
    """``deployments/<chain id>.json``, or ``deployments/<chain id>-fork.json`` on a fork: a fork
    reports its upstream's chain id, and its throwaway suite must never take the live one's file."""
    return root / "deployments" / f"{chain_id}{'-fork' if fork else ''}.json"


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Writes ``manifest`` to ``path`` atomically: a temporary file in the same directory, flushed
    to disk, then renamed over ``path``. A reader sees the old manifest or the new one, never a
    part of one; on an error the old one stays and the temporary file is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as fh:
            fh.write(json.dumps(manifest, indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DeploymentMismatch([f"{path}: not a readable manifest ({err})"]) from None
    if not isinstance(manifest, dict):
        raise DeploymentMismatch([f"{path}: not a manifest (a JSON object expected)"])
    return manifest


def reuse_problems(deployment: Deployment, config: SuiteConfig) -> list[str]:
    """Why the config cannot be applied to a live suite without harm, read without sending: a
    market listed on chain that the config drops (markets are never delisted, and listing one
    again would give it a second id), or an engine with markets the manifest does not know."""
    names = {m.name for m in config.markets}
    problems = [
        f"market {name}: listed on chain {deployment.chain_id} as id {market_id}, but the config drops it; "
        f"a listed market is never removed or listed again: put {name} back in the config"
        for name, market_id in deployment.market_ids.items()
        if name not in names
    ]
    count, known = deployment.engine.marketCount(), len(deployment.market_ids)
    if count != known:
        problems.append(
            f"engine.marketCount: on chain {count}, the manifest knows {known} markets; "
            "refusing to list any (a market listed twice cannot be removed)"
        )
    return problems


def deploy_or_reuse(
    project, chain, sender, config: SuiteConfig, *, root: Path, local: bool, path: Path | None = None
) -> tuple[Deployment, bool]:
    """Reuses the manifest's suite if it is live on this chain, else deploys one; then verifies
    everything against the chain and only then writes the manifest. Returns (deployment, reused).

    Nothing is sent when the config breaks a contract bound (``ConfigError``), asks for mocks on
    a live network, drops a listed market or disagrees with what is already on chain
    (``DeploymentMismatch``). The manifest is ``path``, by default :func:`manifest_path`."""
    check_suite(config)
    path = path or manifest_path(root, chain.chain_id)
    deployment = None
    if path.exists():
        deployment = load_deployment(project, chain, _read_manifest(path))
        if deployment is None and not local:
            raise DeploymentMismatch(
                [f"{path}: contracts listed in the manifest have no code on chain {chain.chain_id}"]
            )
        if deployment is None:
            log.info("manifest stale (local chain restarted) path=%s: deploying afresh", path)
    if config.uses_mocks and not local:
        raise ConfigError("mock token or feeds requested on a non-local network: give real addresses")
    reused = deployment is not None
    if deployment is None:
        deployment = deploy_suite(project, chain, sender, config, local=local)
    else:
        problems = reuse_problems(deployment, config)
        if problems:
            raise DeploymentMismatch(problems)
        # What is listed already must match before anything is added: a failure after a new
        # listing would leave a market the unwritten manifest does not know.
        listed = tuple(m for m in config.markets if m.name in deployment.market_ids)
        verify(deployment, replace(config, markets=listed), deployer=sender.address)
        add_missing_markets(project, sender, config, deployment)
    verify(deployment, config, deployer=sender.address)
    write_manifest(path, manifest_of(deployment, config, sender.address))
    return deployment, reused


# --- verification -----------------------------------------------------------------------------------------

#: ``IMarginEngine.MarketParams`` field names, in order.
_PARAM_NAMES = (
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
    "keeperRewardCap",
)


def role_problems(d: Deployment, config: SuiteConfig, deployer: str) -> list[str]:
    """Who holds which role, against docs/design.md §10: the engine is the adapter's only oracle
    admin and nobody else holds an adapter role; the engine's admin and guardian are the
    configured ones (the deployer by default), and the deployer keeps no engine role it was not
    configured to have."""
    problems: list[str] = []
    oracle_admin, adapter_root = d.oracle.ORACLE_ADMIN_ROLE(), d.oracle.DEFAULT_ADMIN_ROLE()
    if not d.oracle.hasRole(oracle_admin, d.engine.address):
        problems.append("oracle: the engine lacks ORACLE_ADMIN_ROLE")
    for who in {deployer, config.admin, config.guardian} - {None}:
        for name, role in (("ORACLE_ADMIN_ROLE", oracle_admin), ("DEFAULT_ADMIN_ROLE", adapter_root)):
            if d.oracle.hasRole(role, who):
                problems.append(f"oracle: {who} still holds {name}")
    admin, guardian = config.admin or deployer, config.guardian or deployer
    engine_roles = {
        "DEFAULT_ADMIN_ROLE": d.engine.DEFAULT_ADMIN_ROLE(),
        "GUARDIAN_ROLE": d.engine.GUARDIAN_ROLE(),
    }
    for who in {deployer, admin, guardian}:
        for name, role in engine_roles.items():
            wanted = who.lower() == (admin if name == "DEFAULT_ADMIN_ROLE" else guardian).lower()
            if bool(d.engine.hasRole(role, who)) != wanted:
                problems.append(f"engine: {who} {'lacks' if wanted else 'holds'} {name}")
    return problems


def verify(deployment: Deployment, config: SuiteConfig, *, deployer: str) -> None:
    """Re-reads every address, parameter and role from chain; raises ``DeploymentMismatch`` listing
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
    same("engine.PARAMS_DELAY", d.engine.PARAMS_DELAY(), config.params_delay)
    problems.extend(role_problems(d, config, deployer))
    if d.token.decimals() != config.collateral_decimals:
        problems.append(f"token.decimals: on chain {d.token.decimals()}, config {config.collateral_decimals}")
    if config.sequencer_feed:
        feed, grace = d.oracle.sequencerFeed()
        same("oracle.sequencerFeed", feed, config.sequencer_feed)
        same("oracle.gracePeriod", grace, config.sequencer_grace_period)
    same("engine.marketCount", d.engine.marketCount(), len(config.markets))
    fields = list(_PARAM_NAMES)
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
        for name, actual, want in zip(fields, on_chain, expected, strict=True):
            same(f"market {market.name}.{name}", actual, want)
    if problems:
        raise DeploymentMismatch(problems)
    log.info("verify ok contracts=5 markets=%s", len(config.markets))
