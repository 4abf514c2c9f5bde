"""Shared risk-config text for the risk lab's unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

#: A small valid config: two markets, every section given once.
BASE = """\
name: tiny
markets:
  ETH: {price: 2000, initial_margin: 0.10, maintenance_margin: 0.05, keeper_reward: 0.01,
        insurance_fee: 0.01, maker_fee: 0.0002, taker_fee: 0.0005}
  BTC: {price: 60000, initial_margin: 0.20, maintenance_margin: 0.05, keeper_reward: 0.01,
        insurance_fee: 0.01, maker_fee: 0.0007, taker_fee: 0.0003}
insurance: {size: 1000}
population:
  accounts: 20
  markets: {ETH: 0.5, BTC: 0.5}
  leverage: {lognormal: {mean: 5, sigma: 0.5}}
  size: {lognormal: {median: 20000, sigma: 1}}
process:
  ETH: {gbm: {drift: 0, volatility: 0.8}}
  BTC: {gbm: {volatility: 0.6}}
horizon: {steps: 10}
keeper: {capital: 100000}
"""


@pytest.fixture
def write(tmp_path: Path):
    """``write(text, name="c.yaml")``: the path of a config file with ``text`` in ``tmp_path``."""

    def _write(text: str, name: str = "c.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write
