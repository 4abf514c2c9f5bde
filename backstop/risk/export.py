"""Exported paths (docs/risk-lab.md §"Replaying a path"): the exact engine's scenario of a path
written as a stress scenario file (docs/scenario-format.md), so that ``ape run stress --scenario
FILE`` replays it on a chain through the real contracts and the real keeper.

Every number is written exactly (``backstop.units.format_units``): the file parses back to the
same :class:`~backstop.scenario.Scenario` (tested), and its run gives the same record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from backstop.config import MarketConfig
from backstop.model.state import MAX_KEEPER_REWARD_CAP
from backstop.risk.exact import PathResult, scenario_of
from backstop.risk.types import Lab
from backstop.scenario import Advance, KeeperPass, Price, Scenario, Stake, Trade
from backstop.units import format_units


class _Exact(str):
    """A number rendered by ``format_units``, written as a plain YAML scalar (no quotes)."""


def _exact_representer(dumper: yaml.SafeDumper, value: _Exact) -> yaml.Node:
    return dumper.represent_scalar(
        "tag:yaml.org,2002:float" if "." in value else "tag:yaml.org,2002:int", value
    )


class _Flow(dict):
    """A mapping written on one line (a step's arguments, a price row)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Exact, _exact_representer)
_Dumper.add_representer(_Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))


def _num(value: int, scale: int = 10**18) -> _Exact:
    return _Exact(format_units(value, scale))


def _market(m: MarketConfig) -> dict:
    out = {
        "price": _num(m.mock_price),
        "feed_decimals": m.mock_feed_decimals,
        "heartbeat": m.heartbeat,
        "initial_margin": _num(m.im_ratio),
        "maintenance_margin": _num(m.mm_ratio),
        "keeper_reward": _num(m.keeper_reward_ratio),
        "insurance_fee": _num(m.insurance_fee_ratio),
        "price_band": _num(m.price_band_ratio),
        "maker_fee": _num(m.maker_fee_ratio),
        "taker_fee": _num(m.taker_fee_ratio),
        "open_interest_cap": _num(m.open_interest_cap),
    }
    if m.keeper_reward_cap != MAX_KEEPER_REWARD_CAP:
        out["keeper_reward_cap"] = _num(m.keeper_reward_cap)
    return out


def scenario_yaml(scenario: Scenario, description: str = "") -> str:
    """The scenario file of an exact-engine scenario (stake, trade, advance, price and keeper
    steps only: the only kinds :func:`backstop.risk.exact.scenario_of` makes)."""
    token = 10**scenario.collateral_decimals
    steps: list[dict] = []
    for step in scenario.steps:
        if isinstance(step, Stake):
            steps.append({"stake": _Flow(account=step.account, amount=_num(step.amount, token))})
        elif isinstance(step, Trade):
            steps.append(
                {
                    "trade": _Flow(
                        buyer=step.buyer,
                        seller=step.seller,
                        market=step.market,
                        size=_num(step.size),
                        price=_num(step.price),
                        maker=step.maker,
                    )
                }
            )
        elif isinstance(step, Advance):
            steps.append({"advance": step.seconds})
        elif isinstance(step, Price):
            steps.append({"price": _Flow({name: _num(p) for name, p in step.prices.items()})})
        elif isinstance(step, KeeperPass):
            steps.append({"keeper": _Flow(by=step.by)})
        else:
            raise ValueError(f"steps[{step.index}]: a {step.action} step is not exported")
    body = {
        "name": scenario.name,
        "description": description or scenario.description,
        "collateral_decimals": scenario.collateral_decimals,
        "markets": {m.name: _market(m) for m in scenario.markets},
        "insurance": {
            "cooldown": scenario.cooldown,
            "window": scenario.window,
            "floor": _num(scenario.floor_tokens, token),
            "per_event_cap": _num(scenario.per_event_cap_tokens, token),
        },
        "accounts": {name: _num(amount, token) for name, amount in scenario.accounts.items()},
        "steps": steps,
    }
    return yaml.dump(body, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def write_scenario(scenario: Scenario, directory: Path, description: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{scenario.name}.yaml"
    path.write_text(scenario_yaml(scenario, description))
    return path


def per_path_record(r: PathResult) -> dict:
    """A path's record in the report's ``per_path`` (WAD strings, the stress report's names)."""
    return {
        "bad_debt": str(r.bad_debt),
        "insurance_covered": str(r.covered),
        "socialized": str(r.socialized),
        "liquidations": r.liquidations,
    }


def export_paths(config: Any, lab: Lab, seed: int, count: int, directory: Path) -> list[Path]:
    """Writes paths ``0 … count − 1`` of a run seeded ``seed`` as ``<name>-path-<i>.yaml``,
    regenerated chunk by chunk from the seed (:func:`backstop.risk.run.chunk_prices`), so they
    are the very paths any run of at least ``count`` paths simulated."""
    from backstop.risk.paths import to_wad
    from backstop.risk.run import chunk_prices, chunks

    out: list[Path] = []
    for index, size in chunks(count):
        for path in to_wad(chunk_prices(config, seed, index, size)):
            i = len(out)
            scenario = scenario_of(lab, path, name=f"{lab.name}-path-{i}")
            description = f"path {i} of backstop risk run {lab.name} (seed {seed})"
            out.append(write_scenario(scenario, directory, description))
    return out
