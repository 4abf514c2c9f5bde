"""deploy/keeper/: the example config loads through the keeper's schema, and every metric the
alert rules use is one the keeper exports (a renamed metric would silence an alert)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from backstop.keeper.metrics import KeeperCollector, Monitor
from backstop.keeper.settings import load_settings
from backstop.units import WAD

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "keeper"


class Endpoint:
    label, errors, healthy = "http://127.0.0.1:8545", 0, True


def exported_names() -> set[str]:
    monitor = Monitor()
    monitor.update(own={k: WAD for k in ("equity", "imr", "mmr", "free", "notional")}, markets=("ETH",))
    names = set()
    for family in KeeperCollector(monitor, lambda: [Endpoint()]).collect():
        names |= {s.name for s in family.samples}
    return names


def test_the_example_config_is_valid():
    settings = load_settings(DEPLOY / "keeper.example.yaml", {}, {})
    assert settings.rpc_urls == ["http://127.0.0.1:8545"]
    assert (settings.max_fee_gwei, settings.priority_fee_gwei, settings.metrics_port) == (50, 1.5, 9464)
    assert settings.log_format == "json" and settings.max_inherit_notional == 500_000


def test_every_alert_uses_exported_metrics():
    rules = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"][0]["rules"]
    names = exported_names()
    used = set()
    for rule in rules:
        assert re.fullmatch(r"[A-Za-z]+", rule["alert"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        used |= set(re.findall(r"backstop_keeper_\w+", rule["expr"]))
    assert used and used <= names, used - names
    # The four: node down, stale oracle, the keeper's own health, repeated failures.
    alerts = {r["alert"] for r in rules}
    assert {
        "BackstopKeeperNodeDown",
        "BackstopKeeperStaleOracle",
        "BackstopKeeperOwnHealthCritical",
        "BackstopKeeperRepeatedFailures",
    } <= alerts


def test_the_service_files_stop_with_sigterm_and_run_the_keeper():
    unit = (DEPLOY / "backstop-keeper.service").read_text()
    docker = (DEPLOY / "Dockerfile").read_text()
    assert "KillSignal=SIGTERM" in unit and "ape run keeper" in unit
    assert "STOPSIGNAL SIGTERM" in docker and '"/app/.venv/bin/ape", "run", "keeper"' in docker
    assert "/health/live" in docker
