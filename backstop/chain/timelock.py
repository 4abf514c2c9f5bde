"""The chain side of ``deploy --plan`` / ``--apply`` (the decisions are :mod:`backstop.chain.plan`):
the updates a config asks of a live suite, read from the engine, the config as the chain has it
while they are pending, and the timelocked calls that move them on, sent from the admin."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from backstop.chain.deploy import Deployment
from backstop.chain.plan import (
    MARKET_FIELDS,
    SEQUENCER,
    SEQUENCER_FIELDS,
    ZERO_ADDRESS,
    Update,
    plan_target,
    timeline,
)
from backstop.chain.verify import DeploymentMismatch
from backstop.config import MOCK, SuiteConfig

log = logging.getLogger("backstop.deploy")


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
        # A mock feed stays `mock` while the chain still has the suite's own mock there.
        keep_mock = m.feed == MOCK and str(u.current[0]).lower() == str(u.wanted[0]).lower()
        on_chain = m.with_params(u.current)
        markets.append(replace(on_chain, feed=MOCK) if keep_mock else on_chain)
    config = replace(config, markets=tuple(markets))
    if SEQUENCER in differing:
        feed, grace = differing[SEQUENCER].current
        on = str(feed).lower() != ZERO_ADDRESS
        config = replace(config, sequencer_feed=feed if on else None, sequencer_grace_period=grace)
    return config


def pending_entries(updates: list[Update]) -> list[dict[str, Any]]:
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
    done = []
    for u, cs in calls:
        for label, method, args in cs:
            method(*args, sender=sender)
            log.info("timelock %s target=%s", label, u.target)
        if u.status in ("schedule", "replace"):
            if u.market_id is not None:
                eta = deployment.engine.scheduledMarketUpdate(u.market_id)[1]
            else:
                eta = deployment.engine.scheduledSequencerUpdate()[2]
            verb = "cancelled the different change and scheduled" if u.status == "replace" else "scheduled"
            done.append(
                f"{u.target}: {verb}; {timeline(eta, chain.blocks.head.timestamp)}: run --apply again then"
            )
        elif u.status == "execute":
            done.append(f"{u.target}: executed")
        elif u.status == "cancel":
            done.append(f"{u.target}: cancelled the scheduled change (the chain already matches the config)")
        else:
            done.append(f"{u.target}: scheduled, {timeline(u.eta, u.now)}: run --apply again then")
        done.extend(f"  {c}" for c in u.changes)
    return done
