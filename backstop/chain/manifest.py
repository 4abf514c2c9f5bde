"""The deployment manifest (``deployments/<chain id>.json``), reusing a live suite, and the runs of
``ape run deploy`` (plain, ``--plan``, ``--apply``). Verification is :mod:`backstop.chain.verify`,
the timelock's side of plan/apply :mod:`backstop.chain.timelock`.

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
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

from eth_utils import keccak

from backstop.chain.deploy import Deployment, add_missing_markets, deploy_suite
from backstop.chain.plan import Update
from backstop.chain.timelock import apply_updates, as_on_chain, pending_entries, read_updates
from backstop.chain.verify import DeploymentMismatch, TimelockedChanges, role_problems, verify
from backstop.config import ConfigError, MarketConfig, SuiteConfig, check_suite

__all__ = [
    "DeploymentMismatch",
    "TimelockedChanges",
    "deploy_or_reuse",
    "load_deployment",
    "manifest_of",
    "manifest_path",
    "plan",
    "role_problems",
    "verify",
    "write_manifest",
]

log = logging.getLogger("backstop.deploy")
#: The checkout holding these sources and the contracts they deploy.
SOURCES = Path(__file__).resolve().parents[2]


def runtime_hash(code: bytes) -> str:
    """``keccak256`` of runtime code, ``0x`` hex: what the manifest records as ``code_hash``."""
    return "0x" + keccak(bytes(code)).hex()


def code_hash(chain, address: str) -> str | None:
    """:func:`runtime_hash` of the code at ``address``, or None if it has none."""
    code = chain.provider.get_code(address)
    return runtime_hash(code) if code else None


def source_commit(root: Path) -> dict[str, Any]:
    """The git commit of the sources at ``root`` and whether the tree had uncommitted changes
    (``commit`` None outside a git checkout)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(dirty)}


def _contracts(d: Deployment) -> dict[str, Any]:
    return {
        "CollateralToken": d.token,
        "OracleAdapter": d.oracle,
        "CollateralVault": d.vault,
        "InsuranceFund": d.fund,
        "MarginEngine": d.engine,
    }


def manifest_of(
    deployment: Deployment,
    config: SuiteConfig,
    deployer: str,
    *,
    chain=None,
    previous: dict[str, Any] | None = None,
    pending: list[dict[str, Any]] | None = None,
    markets: tuple[MarketConfig, ...] | None = None,
) -> dict[str, Any]:
    """The manifest of an Ape deployment: chain id, addresses with creation block and transaction,
    runtime code hashes, constructor parameters, roles, the config's digest, the source commit,
    the markets as they are on chain and the timelocked changes still pending. ``previous`` (the
    manifest a reused suite was loaded from) keeps the first deployment's record: its deployer and
    source commit. ``markets``: the markets as on chain, when they differ from the config's while
    changes are pending (the default: the config's)."""
    d = deployment
    previous = previous or {}
    # The commit of the sources that compiled and sent the contracts (this checkout).
    source = source_commit(SOURCES)
    contracts = {}
    for name, c in _contracts(d).items():
        entry: dict[str, Any] = {"address": c.address, "block": d.blocks.get(name, 0), "tx": d.txs.get(name)}
        if chain is not None:
            entry["code_hash"] = code_hash(chain, c.address)
        if name in d.constructor_args:
            entry["constructor"] = d.constructor_args[name]
        contracts[name] = entry
    return {
        "chain_id": d.chain_id,
        "deployer": previous.get("deployer", deployer),
        "config_sha256": config.digest(),
        "source": previous.get("source", source),
        "last_run": {"by": deployer, "source": source},
        "contracts": contracts,
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
            for m in (config.markets if markets is None else markets)
        },
        "pending": pending or [],
    }


def code_problems(manifest: dict[str, Any], get_code: Any, chain_id: int) -> tuple[list[str], list[str]]:
    """``(missing, changed)``: the manifest's contracts that have no code on the chain, and those
    whose runtime code hash differs from the one the manifest recorded (``get_code(address)`` →
    bytes). The one check of "is this manifest's suite on this chain", for deploy, the keeper and
    populate."""
    missing, changed = [], []
    for name, entry in manifest.get("contracts", {}).items():
        code = bytes(get_code(entry["address"]) or b"")
        if not code:
            missing.append(f"{name} {entry['address']} has no code on chain {chain_id}")
            continue
        actual, recorded = runtime_hash(code), entry.get("code_hash")
        if recorded and recorded.lower() != actual:
            changed.append(
                f"{name} at {entry['address']}: runtime code hash {actual}, the manifest recorded {recorded}"
            )
    return missing, changed


def load_deployment(project, chain, manifest: dict[str, Any], *, local: bool = True) -> Deployment | None:
    """Contract instances for a manifest, or None if its contracts have no code on this chain.

    Raises :class:`DeploymentMismatch` when the manifest describes another chain, or when code at
    one of its addresses differs from the code it recorded (on a local chain restarted, other
    contracts can land at the same addresses: there it is a stale manifest, and None)."""
    if int(manifest.get("chain_id", -1)) != chain.chain_id:
        raise DeploymentMismatch(
            [
                f"the manifest describes chain {manifest.get('chain_id')}, but the node is chain {chain.chain_id}"
            ]
        )
    missing, changed = code_problems(manifest, chain.provider.get_code, chain.chain_id)
    if missing:
        return None
    if changed:
        if local:
            log.info("manifest stale (other code at its addresses): %s", "; ".join(changed))
            return None
        raise DeploymentMismatch([*changed, "the manifest does not describe the contracts on this chain"])
    contracts = manifest.get("contracts", {})
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
        txs={name: c["tx"] for name, c in contracts.items() if c.get("tx")},
        constructor_args={name: c["constructor"] for name, c in contracts.items() if c.get("constructor")},
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


def _open(
    project, chain, config: SuiteConfig, path: Path, *, local: bool
) -> tuple[Deployment | None, dict | None]:
    """The live suite the manifest at ``path`` describes, and that manifest; ``(None, None)`` when
    there is none yet (or, on a local chain, a stale one). Sends nothing; raises when the config
    breaks a contract bound, asks for mocks on a live network, or cannot be applied to the suite
    without harm (:func:`reuse_problems`), and when the manifest is of another chain or other code."""
    check_suite(config)
    deployment, previous = None, None
    if path.exists():
        previous = _read_manifest(path)
        deployment = load_deployment(project, chain, previous, local=local)
        if deployment is None and not local:
            raise DeploymentMismatch(
                [f"{path}: contracts listed in the manifest have no code on chain {chain.chain_id}"]
            )
        if deployment is None:
            log.info("manifest stale (local chain restarted) path=%s: deploying afresh", path)
            previous = None
    if config.uses_mocks and not local:
        raise ConfigError("mock token or feeds requested on a non-local network: give real addresses")
    if deployment is not None:
        problems = reuse_problems(deployment, config)
        if problems:
            raise DeploymentMismatch(problems)
    return deployment, previous


def _deployer(previous: dict | None, sender: str) -> str:
    """Who deployed the suite: the default admin and guardian (``roles`` left out) and the account
    that must hold no role it was not given. The manifest's, when the suite is reused: a later run
    may be sent by another account (the admin's, or anyone's ``--plan``)."""
    return (previous or {}).get("deployer") or sender


def _listed(deployment: Deployment, config: SuiteConfig) -> SuiteConfig:
    return replace(config, markets=tuple(m for m in config.markets if m.name in deployment.market_ids))


def deploy_or_reuse(
    project,
    chain,
    sender,
    config: SuiteConfig,
    *,
    root: Path,
    local: bool,
    path: Path | None = None,
    apply: bool = False,
    report: list[str] | None = None,
) -> tuple[Deployment, bool]:
    """Reuses the manifest's suite if it is live on this chain, else deploys one; then verifies
    everything against the chain and only then writes the manifest. Returns (deployment, reused).

    Nothing is sent when the config breaks a contract bound (``ConfigError``), asks for mocks on
    a live network, drops a listed market or disagrees with what is already on chain
    (``DeploymentMismatch``). A difference in a listed market's parameters or in the sequencer
    feed is a mismatch too, unless ``apply``: then it is scheduled through the engine's timelock,
    or executed when due (:func:`apply_updates`; what was done is appended to ``report``), and the
    manifest lists what is still pending. The manifest is ``path``, by default
    :func:`manifest_path`."""
    path = path or manifest_path(root, chain.chain_id)
    deployment, previous = _open(project, chain, config, path, local=local)
    reused = deployment is not None
    updates: list[Update] = []
    if deployment is None:
        deployment = deploy_suite(project, chain, sender, config, local=local)
    else:
        listed = _listed(deployment, config)
        updates = read_updates(chain, deployment, listed)
        if updates and not apply:
            delay = deployment.engine.PARAMS_DELAY()
            lines = [line for u in updates for line in u.describe(delay)]
            raise TimelockedChanges(
                [
                    *lines,
                    "listed markets and the sequencer feed change only through the engine's timelock: "
                    "`--plan` shows these changes, `--apply` schedules them and executes them when due",
                ]
            )
        # What is listed already must match (but for the timelocked changes) before anything is
        # sent: a failure after a new listing would leave a market the unwritten manifest lacks.
        verify(deployment, as_on_chain(listed, updates), deployer=_deployer(previous, sender.address))
        if updates:
            lines = apply_updates(chain, deployment, updates, sender)
            if report is not None:
                report.extend(lines)
            updates = read_updates(chain, deployment, listed)
        add_missing_markets(project, sender, config, deployment)
    effective = as_on_chain(config, updates)
    verify(deployment, effective, deployer=_deployer(previous, sender.address))
    manifest = manifest_of(
        deployment,
        config,
        sender.address,
        chain=chain,
        previous=previous,
        pending=pending_entries(updates),
        markets=effective.markets,
    )
    write_manifest(path, manifest)
    return deployment, reused


def plan(
    project, chain, sender_address: str | None, config: SuiteConfig, *, root: Path, local: bool, path: Path
) -> list[str]:
    """What a run with this config would change on the suite at ``path``, in human units, sending
    nothing: timelocked updates with their timeline, markets to list, or a whole deployment.
    Raises like :func:`deploy_or_reuse` for what no run could apply (an immutable parameter, a
    dropped market, roles)."""
    deployment, previous = _open(project, chain, config, path, local=local)
    if deployment is None:
        return [
            f"no Backstop suite recorded in {path} on chain {chain.chain_id}: a run without --plan deploys "
            f"one (token, oracle adapter, vault, fund, engine) and lists {', '.join(m.name for m in config.markets)}"
        ]
    listed = _listed(deployment, config)
    updates = read_updates(chain, deployment, listed)
    verify(deployment, as_on_chain(listed, updates), deployer=_deployer(previous, sender_address or ""))
    delay = deployment.engine.PARAMS_DELAY()
    lines = [line for u in updates for line in u.describe(delay)]
    next_id = deployment.engine.marketCount()
    for m in config.markets:
        if m.name not in deployment.market_ids:
            lines.append(f"{m.name}: new market, listed at once (addMarket) as id {next_id}")
            next_id += 1
    if not lines:
        return [f"nothing to change: the suite on chain {chain.chain_id} matches the config"]
    admin_role = deployment.engine.DEFAULT_ADMIN_ROLE()
    if updates and sender_address and not deployment.engine.hasRole(admin_role, sender_address):
        lines.append(f"{sender_address} is not the engine's admin: --apply must be run by the admin")
    return lines
