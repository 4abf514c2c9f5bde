"""Verification of a deployed suite: every address, wiring call, role, fund and market parameter
re-read from chain and compared with the config (docs/deploy.md). Any difference raises
:class:`DeploymentMismatch` listing all of them."""

from __future__ import annotations

import logging
from typing import Any

from backstop.chain.deploy import Deployment
from backstop.chain.plan import MARKET_FIELDS
from backstop.config import MOCK, SuiteConfig

log = logging.getLogger("backstop.deploy")


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
    fields = [f for f, _, _ in MARKET_FIELDS]
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
