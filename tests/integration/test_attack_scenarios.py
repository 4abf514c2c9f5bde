"""Attack scenarios (scenarios/attacks/, described in docs/security.md) pass on chain and their
reports equal the reference model's."""

from __future__ import annotations

from pathlib import Path

import pytest

from backstop.scenario import load_scenario
from backstop.stress.report import to_json, without_chain_fields
from tests.integration.test_stress import play

ATTACKS = Path(__file__).resolve().parents[2] / "scenarios" / "attacks"


@pytest.mark.parametrize("path", sorted(ATTACKS.glob("*.yaml")), ids=lambda p: p.stem)
def test_attack_scenario_holds_on_chain_and_matches_the_model(project, chain, accounts, path):
    scenario = load_scenario(path)
    on_chain, on_model = play(project, chain, accounts, scenario)
    assert on_chain.ok, on_chain.failures
    assert without_chain_fields(to_json(on_chain)) == without_chain_fields(to_json(on_model))


def test_every_attack_scenario_is_played():
    assert {p.stem for p in ATTACKS.glob("*.yaml")} == {
        "band_collusion",
        "unrealized_profit",
        "liquidation_griefing",
        "dust_position",
        "admin_path",
    }


def test_admin_path_leaves_the_victim_whole(project, chain, accounts):
    """bob keeps all 11,000: the hostile change is refused out of bounds, then only scheduled,
    and bob is gone before it executes (finding 1 of issue #15)."""
    on_chain, _ = play(project, chain, accounts, load_scenario(ATTACKS / "admin_path.yaml"))
    report = to_json(on_chain)
    assert [s["ok"] for s in report["steps"]] == [True] * len(report["steps"])
    bob = report["accounts"]["bob"]
    assert bob["margin"] == "0" and bob["positions"] == {}
    assert report["liquidations"] == []
    assert report["totals"]["keeper_rewards"] == "0" and report["totals"]["socialized"] == "0"
