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
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

from eth_utils import keccak

from backstop.chain.deploy import Deployment, add_missing_markets, deploy_suite
from backstop.chain.plan import (
    EXECUTION_WINDOW,
    MARKET_FIELDS,
    SEQUENCER,
    SEQUENCER_FIELDS,
    ZERO_ADDRESS,
    Update,
    duration,
    plan_target,
    when,
)
from backstop.config import MOCK, ConfigError, SuiteConfig, check_suite

log = logging.getLogger("backstop.deploy")
#: The checkout holding these sources and the contracts they deploy.
SOURCES = Path(__file__).resolve().parents[2]


class DeploymentMismatch(RuntimeError):
    """What is on chain differs from the config or the manifest."""

    def __init__(self, problems: list[str]):
        super().__init__("deployment check failed:\n  - " + "\n  - ".join(problems))
        self.problems = problems


class TimelockedChanges(DeploymentMismatch):
    """The config changes listed markets or the sequencer feed, which only ``--apply`` may do (the
    engine's timelock). ``problems`` are the plan's lines, indented as ``--plan`` prints them."""

    def __init__(self, problems: list[str]):
        RuntimeError.__init__(
            self,
            "the config changes timelocked parameters; nothing sent:\n  " + "\n  ".join(problems),
        )
        self.problems = problems


def code_hash(chain, address: str) -> str | None:
    """``keccak256`` of the runtime code at ``address`` (``0x`` hex), or None if it has none."""
    code = chain.provider.get_code(address)
    return "0x" + keccak(bytes(code)).hex() if code else None


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
) -> dict[str, Any]:
    """The manifest of an Ape deployment: chain id, addresses with creation block and transaction,
    runtime code hashes, constructor parameters, roles, the config's digest, the source commit,
    the markets as they are on chain and the timelocked changes still pending. ``previous`` (the
    manifest a reused suite was loaded from) keeps the first deployment's record: its deployer and
    source commit."""
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
            for m in config.markets
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
        actual, recorded = "0x" + keccak(code).hex(), entry.get("code_hash")
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


def read_updates(chain, deployment: Deployment, config: SuiteConfig) -> list[Update]:
    """The timelocked updates the config asks of the suite (:func:`backstop.chain.plan.plan_target`
    for each listed market of ``config`` and for the sequencer), read from chain at the head."""
    d, now = deployment, chain.blocks.head.timestamp
    updates = []
    for m in config.markets:
        market_id = d.market_ids[m.name]
        feed = d.feeds[m.name].address if m.feed == MOCK else m.feed
        params, eta = d.engine.scheduledMarketUpdate(market_id)
        scheduled = tuple(params) if eta else None
        current = tuple(d.engine.marketParams(market_id))
        update = plan_target(
            m.name, market_id, MARKET_FIELDS, current, m.params_tuple(feed), scheduled, eta, now
        )
        if update is not None:
            updates.append(update)
    feed, grace = d.oracle.sequencerFeed()
    # (feed, grace period) the config asks for; no sequencer feed: the zero address and 0
    wanted = (
        (config.sequencer_feed, config.sequencer_grace_period) if config.sequencer_feed else (ZERO_ADDRESS, 0)
    )
    s_feed, s_grace, eta = d.engine.scheduledSequencerUpdate()
    update = plan_target(
        SEQUENCER, None, SEQUENCER_FIELDS, (feed, grace), wanted, (s_feed, s_grace) if eta else None, eta, now
    )
    if update is not None:
        updates.append(update)
    return updates


def as_on_chain(config: SuiteConfig, updates: list[Update]) -> SuiteConfig:
    """``config`` with the chain's current values for every target an update has not reached yet:
    what a verification must find while those updates are pending."""
    differing = {u.target: u for u in updates if u.chain_differs}
    markets = []
    for m in config.markets:
        u = differing.get(m.name)
        if u is None:
            markets.append(m)
            continue
        values = dict(zip((f for f, _, _ in MARKET_FIELDS), u.current, strict=True))
        feed = (
            m.feed
            if m.feed == MOCK and str(values["feed"]).lower() == str(u.wanted[0]).lower()
            else values["feed"]
        )
        markets.append(
            replace(
                m,
                feed=feed,
                heartbeat=values["heartbeat"],
                im_ratio=values["imRatio"],
                mm_ratio=values["mmRatio"],
                keeper_reward_ratio=values["keeperRewardRatio"],
                insurance_fee_ratio=values["insuranceFeeRatio"],
                price_band_ratio=values["priceBandRatio"],
                maker_fee_ratio=values["makerFeeRatio"],
                taker_fee_ratio=values["takerFeeRatio"],
                open_interest_cap=values["openInterestCap"],
                keeper_reward_cap=values["keeperRewardCap"],
            )
        )
    config = replace(config, markets=tuple(markets))
    if SEQUENCER in differing:
        feed, grace = differing[SEQUENCER].current
        on = str(feed).lower() != ZERO_ADDRESS
        config = replace(config, sequencer_feed=feed if on else None, sequencer_grace_period=grace)
    return config


def _pending(updates: list[Update]) -> list[dict[str, Any]]:
    return [
        {
            "target": u.target,
            "market_id": u.market_id,
            "status": u.status,
            "eta": u.eta,
            "executable_until": u.due_until if u.eta else 0,
            "changes": [{"field": c.field, "from": str(c.before), "to": str(c.after)} for c in u.changes],
        }
        for u in updates
    ]


def _calls(deployment: Deployment, u: Update) -> list[tuple[str, Any, tuple]]:
    """The engine calls that move ``u`` on: (label, contract method, arguments)."""
    e = deployment.engine
    market = u.market_id is not None
    schedule = (
        ("scheduleMarketUpdate", e.scheduleMarketUpdate, (u.market_id, u.wanted))
        if market
        else ("scheduleSequencerUpdate", e.scheduleSequencerUpdate, u.wanted)
    )
    execute = (
        ("executeMarketUpdate", e.executeMarketUpdate, (u.market_id,))
        if market
        else ("executeSequencerUpdate", e.executeSequencerUpdate, ())
    )
    cancel = (
        ("cancelMarketUpdate", e.cancelMarketUpdate, (u.market_id,))
        if market
        else ("cancelSequencerUpdate", e.cancelSequencerUpdate, ())
    )
    return {
        "schedule": [schedule],
        "execute": [execute],
        "replace": [cancel, schedule],
        "cancel": [cancel],
        "wait": [],
    }[u.status]


def apply_updates(chain, deployment: Deployment, updates: list[Update], sender) -> list[str]:
    """Sends, from ``sender``, the calls each update needs (:mod:`backstop.chain.plan`'s table) and
    returns what happened, one line per target. Refuses, sending nothing, when there is something
    to send and ``sender`` is not the engine's admin: the error lists the calls (with calldata) to
    submit from the admin instead (a multisig)."""
    calls = [(u, _calls(deployment, u)) for u in updates]
    if any(c for _, c in calls) and not deployment.engine.hasRole(
        deployment.engine.DEFAULT_ADMIN_ROLE(), sender.address
    ):
        lines = [
            f"--apply: {sender.address} is not the engine's admin; send these from the admin "
            f"(engine {deployment.engine.address}) instead:"
        ]
        for _, cs in calls:
            for label, method, args in cs:
                lines.append(f"{label}{args}: calldata 0x{bytes(method.encode_input(*args)).hex()}")
        raise DeploymentMismatch(lines)
    delay = deployment.engine.PARAMS_DELAY()
    done = []
    for u, cs in calls:
        for label, method, args in cs:
            method(*args, sender=sender)
            log.info("timelock %s target=%s", label, u.target)
        if u.status in ("schedule", "replace"):
            eta = chain.blocks.head.timestamp + delay
            if u.market_id is not None:
                eta = deployment.engine.scheduledMarketUpdate(u.market_id)[1]
            else:
                eta = deployment.engine.scheduledSequencerUpdate()[2]
            verb = "cancelled the different change and scheduled" if u.status == "replace" else "scheduled"
            done.append(
                f"{u.target}: {verb}; executable from {when(eta)} (in {duration(eta - chain.blocks.head.timestamp)}) "
                f"until {when(eta + EXECUTION_WINDOW)}: run --apply again then"
            )
        elif u.status == "execute":
            done.append(f"{u.target}: executed")
        elif u.status == "cancel":
            done.append(f"{u.target}: cancelled the scheduled change (the chain already matches the config)")
        else:
            done.append(
                f"{u.target}: scheduled, executable from {when(u.eta)} (in {duration(u.eta - u.now)}) "
                f"until {when(u.due_until)}: run --apply again then"
            )
        done.extend(f"  {c}" for c in u.changes)
    return done


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
        effective,
        sender.address,
        chain=chain,
        previous=previous,
        pending=_pending(updates),
    )
    manifest["config_sha256"] = config.digest()
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
    for m in config.markets:
        if m.name not in deployment.market_ids:
            lines.append(
                f"{m.name}: new market, listed at once (addMarket) as id "
                f"{deployment.engine.marketCount() + sum(1 for x in lines if ': new market' in x)}"
            )
    if not lines:
        return [f"nothing to change: the suite on chain {chain.chain_id} matches the config"]
    admin_role = deployment.engine.DEFAULT_ADMIN_ROLE()
    if updates and sender_address and not deployment.engine.hasRole(admin_role, sender_address):
        lines.append(f"{sender_address} is not the engine's admin: --apply must be run by the admin")
    return lines


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
