"""Every simulated path can be replayed (issue #19 item 7): three paths of a risk run, exported
as stress scenarios, played on a fresh suite on anvil through the real contracts and the real
keeper, reduce to exactly the exact engine's records (bad debt, cover, socialized, liquidations,
the fund after every step, every account's final margin)."""

from __future__ import annotations

from backstop.risk.config import load_risk_config
from backstop.risk.exact import record_of, run_path
from backstop.risk.export import export_paths
from backstop.risk.paths import to_wad
from backstop.risk.run import chunk_prices
from backstop.scenario import load_scenario
from backstop.stress import ChainBackend, run

CONFIG = """
name: replay
paths: 3
seed: 11
markets:
  ETH: {price: 2000, initial_margin: 0.10, maintenance_margin: 0.05, keeper_reward: 0.01, insurance_fee: 0.01, taker_fee: 0.0005}
insurance: {size: 1500}
population:
  accounts: 6
  seed: 5
  markets: {ETH: 1}
  leverage: {lognormal: {mean: 6, sigma: 0.4}}
  size: {lognormal: {median: 8000, sigma: 0.5}}
process:
  ETH: {gbm: {drift: 0, volatility: 0.9}}
  shocks: [{step: 3, market: ETH, move: -0.2}]
horizon: {steps: 6, step_seconds: 600}
keeper: {capital: 150000, latency_steps: 1}
"""


def test_three_exported_paths_replay_on_chain_to_their_records(project, chain, accounts, tmp_path):
    path = tmp_path / "replay.yaml"
    path.write_text(CONFIG)
    config = load_risk_config(path)
    lab = config.lab()
    expected = [run_path(lab, p) for p in to_wad(chunk_prices(config, 11, 0, 3))]
    assert sum(r.liquidations for r in expected) > 0 and sum(r.bad_debt for r in expected) > 0
    files = export_paths(config, lab, 11, 3, tmp_path / "paths")
    assert [f.name for f in files] == ["replay-path-0.yaml", "replay-path-1.yaml", "replay-path-2.yaml"]
    for file, record in zip(files, expected, strict=True):
        result = run(load_scenario(file), ChainBackend(project, chain, accounts))
        assert result.ok, result.failures
        assert record_of(lab, result) == record, file.name
