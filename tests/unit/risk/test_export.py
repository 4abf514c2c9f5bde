"""Exported paths (backstop.risk.export): the scenario file parses back to the same scenario,
and its run on the model backend gives the same record as the exact engine."""

from __future__ import annotations

import numpy as np

from backstop.risk.config import load_risk_config
from backstop.risk.exact import record_of, run_path, scenario_of
from backstop.risk.export import scenario_yaml, write_scenario
from backstop.risk.paths import price_paths, to_wad
from backstop.scenario import load_scenario
from backstop.stress.model_backend import ModelBackend
from backstop.stress.runner import run
from tests.unit.risk.test_exact import lab, path


def test_the_file_parses_back_to_the_same_scenario(tmp_path):
    scenario = scenario_of(lab(latency=1), path(1800, 1500, 1500, 1500), name="t-path-0")
    written = write_scenario(scenario, tmp_path, "path 0")
    loaded = load_scenario(written)
    assert loaded.steps == scenario.steps and loaded.markets == scenario.markets
    assert dict(loaded.accounts) == dict(scenario.accounts)
    assert (loaded.floor_tokens, loaded.per_event_cap_tokens) == (
        scenario.floor_tokens,
        scenario.per_event_cap_tokens,
    )
    text = scenario_yaml(scenario)
    assert "- trade: {buyer: l0, seller: s0, market: ETH, size: 5, price: 2000, maker: seller}\n" in text
    assert (
        "- price: {ETH: 1500}\n- keeper: {by: keeper}\n" in text and "    maintenance_margin: 0.05\n" in text
    )


def test_an_exported_generated_path_replays_to_its_record(tmp_path):
    config = load_risk_config("risk/eth_flash_crash.yaml")
    small = config.lab()
    from dataclasses import replace

    small = replace(small, pairs=small.pairs[:6], steps=30)
    cfg = replace(config, steps=30)
    [wad_path] = to_wad(price_paths(cfg, np.random.SeedSequence(0), 1))
    expected = run_path(small, wad_path)
    scenario = scenario_of(small, wad_path, name="eth-path-0")
    replayed = record_of(small, run(load_scenario(write_scenario(scenario, tmp_path)), ModelBackend()))
    assert replayed == expected
    assert expected.liquidations > 0  # the -30 % gap at step 24 is inside the 30 steps
