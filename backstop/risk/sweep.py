"""``backstop risk sweep CONFIG --param KEY=LO:HI:N ...`` (docs/risk-lab.md §"Sweeps"): the same
run over a grid of one or two config values, for the question "what margins and what fund make
socialization rare?".

A ``--param`` names a dotted key of the config file (``markets.ETH.maintenance_margin``,
``insurance.size``, ``keeper.capital``...) and its values: ``LO:HI:N`` (``N`` evenly spaced values
from ``LO`` to ``HI``, exact decimals) or a comma list (``0.03,0.05,0.08``). Every cell of the grid
is the config with those values put in, validated by the config's own parser before anything runs
(a bad value is one line naming the ``--param`` and the key), and run with the same seed, so every
cell sees the same price paths: the differences between cells are the parameters', not noise's.

``DIR/<name>-sweep.json`` holds each cell's probabilities and bad-debt and socialization figures;
the chart is a heatmap of P(socialization) over two parameters (a line over one).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import product
from pathlib import Path
from typing import Any

import yaml

from backstop.config import yaml_problem
from backstop.risk.config import load_risk_yaml, parse_risk_config
from backstop.risk.spec import RiskConfig, RiskConfigError

FORMAT = "backstop-risk-sweep/1"
#: The most values one ``--param`` may take, and the most cells of a grid.
MAX_VALUES = 50
MAX_CELLS = 400


@dataclass(frozen=True)
class Param:
    """One swept key and its values (exact decimals, or ints for integer keys)."""

    key: str
    values: tuple[Decimal | int, ...]


def _number(text: str, where: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise RiskConfigError(f"{where}: {text.strip()!r} is not a number") from None
    if not value.is_finite():
        raise RiskConfigError(f"{where}: {text.strip()!r} is not a finite number")
    return value


def parse_param(text: str) -> Param:
    """``KEY=LO:HI:N`` or ``KEY=V1,V2,...`` (see the module docstring); ``RiskConfigError``
    naming the ``--param`` otherwise."""
    where = f"--param {text}"
    key, sep, spec = text.partition("=")
    key = key.strip()
    if not sep or not key or not spec.strip():
        raise RiskConfigError(
            f"{where}: expected KEY=LO:HI:N or KEY=V1,V2,... (e.g. insurance.size=0:200000:5)"
        )
    if any(not part for part in key.split(".")):
        raise RiskConfigError(f"{where}: {key!r} is not a dotted key")
    integral = "." not in spec and "e" not in spec.lower()
    if ":" in spec:
        parts = spec.split(":")
        if len(parts) != 3:
            raise RiskConfigError(f"{where}: a range is LO:HI:N, got {spec!r}")
        lo, hi = _number(parts[0], where), _number(parts[1], where)
        try:
            n = int(parts[2])
        except ValueError:
            raise RiskConfigError(f"{where}: N must be a whole number, got {parts[2]!r}") from None
        if n < 2 or n > MAX_VALUES:
            raise RiskConfigError(f"{where}: N must be between 2 and {MAX_VALUES}, got {n}")
        if hi <= lo:
            raise RiskConfigError(f"{where}: HI must be above LO, got {lo} and {hi}")
        values = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
        integral = integral and all(v == v.to_integral_value() for v in values)
    else:
        values = [_number(v, where) for v in spec.split(",")]
        if len(values) > MAX_VALUES:
            raise RiskConfigError(f"{where}: at most {MAX_VALUES} values, got {len(values)}")
        if len(set(values)) != len(values):
            raise RiskConfigError(f"{where}: a value is listed twice")
    out: list[Decimal | int] = [int(v) if integral else v.normalize() for v in values]
    return Param(key, tuple(out))


def apply(raw: Mapping, key: str, value: Decimal | int, where: str) -> dict:
    """A deep copy of the config mapping ``raw`` with ``key`` (dotted) set to ``value``. The
    key's parent must be a mapping in the file; the leaf is checked by the config's parser."""
    out = copy.deepcopy(dict(raw))
    node: Any = out
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part) if isinstance(node, Mapping) else None
        if not isinstance(child, Mapping):
            at = ".".join(parts[: depth + 1])
            raise RiskConfigError(f"{where}: the config has no section {at}")
        node = child
    node[parts[-1]] = value
    return out


def _show(value: Decimal | int) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)


@dataclass(frozen=True)
class Cell:
    values: tuple[Decimal | int, ...]
    config: RiskConfig


def grid(path: Path, params: Sequence[Param]) -> list[Cell]:
    """Every cell of the grid over ``params`` (the first varies slowest), each config validated."""
    if not 1 <= len(params) <= 2:
        raise RiskConfigError(f"--param: a sweep takes one or two parameters, got {len(params)}")
    keys = [p.key for p in params]
    if len(set(keys)) != len(keys):
        raise RiskConfigError(f"--param: {keys[0]} is swept twice")
    cells = 1
    for p in params:
        cells *= len(p.values)
    if cells > MAX_CELLS:
        raise RiskConfigError(f"--param: {cells} cells; at most {MAX_CELLS}")
    try:
        raw = load_risk_yaml(path.read_text())
    except OSError as err:
        raise RiskConfigError(f"{path}: cannot read the risk config ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        raise RiskConfigError(f"{path}: {yaml_problem(err)}") from None
    except RiskConfigError as err:
        raise RiskConfigError(f"{path}: {err}") from None
    try:
        parse_risk_config(raw, base_dir=path.parent, source=str(path))
    except RiskConfigError as err:
        raise RiskConfigError(f"{path}: {err}") from None
    out = []
    for values in product(*(p.values for p in params)):
        cell = raw
        for p, value in zip(params, values, strict=True):
            cell = apply(cell, p.key, value, f"--param {p.key}")
        shown = ", ".join(f"{p.key}={_show(v)}" for p, v in zip(params, values, strict=True))
        try:
            config = parse_risk_config(cell, base_dir=path.parent, source=str(path))
        except RiskConfigError as err:
            raise RiskConfigError(f"--param {shown}: {err}") from None
        out.append(Cell(tuple(values), config))
    return out


def sweep_body(
    params: Sequence[Param],
    cells: Sequence[Cell],
    reports: Sequence[Mapping[str, Any]],
    *,
    config_path: str,
    seconds: float,
) -> dict[str, Any]:
    """The sweep's JSON (docs/risk-lab.md §"Sweeps"): the axes and, per cell in grid order, its
    values and its run's probabilities and bad-debt and socialized figures."""
    first = reports[0]
    return {
        "format": FORMAT,
        "name": first["name"],
        "config": config_path,
        "engine": first["engine"],
        "paths": first["paths"],
        "seed": first["seed"],
        "params": [{"key": p.key, "values": [_show(v) for v in p.values]} for p in params],
        "cells": [
            {
                "values": {p.key: _show(v) for p, v in zip(params, cell.values, strict=True)},
                "probabilities": r["probabilities"],
                "bad_debt": {k: r["metrics"]["bad_debt"][k] for k in ("p50", "p99", "es99")},
                "socialized": {k: r["metrics"]["socialized"][k] for k in ("p50", "p99", "es99")},
                "trades_failed": r["trades_failed"],
            }
            for cell, r in zip(cells, reports, strict=True)
        ],
        "elapsed_s": round(seconds, 3),
        "where": first["where"],
    }


def write_sweep(out_dir: Path, body: dict[str, Any]) -> list[Path]:
    """``<name>-sweep.json`` and ``<name>-sweep.png`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{body['name']}-sweep.json"
    json_path.write_text(json.dumps(body, indent=1) + "\n")
    return [json_path, sweep_chart(out_dir / f"{body['name']}-sweep.png", body)]


def sweep_chart(path: Path, body: dict[str, Any]) -> Path:
    """A heatmap of P(socialization) over two parameters, each cell labelled with its
    percentage; over one parameter, P(socialization) and P(bad debt) against it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    params = body["params"]
    social = [c["probabilities"]["socialization"] * 100 for c in body["cells"]]
    title = f"{body['name']}: P(socialization), {body['paths']:,} paths per cell (seed {body['seed']})"
    if len(params) == 1:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        xs = [float(v) for v in params[0]["values"]]
        ax.plot(xs, social, marker="o", label="P(socialization)")
        ax.plot(
            xs, [c["probabilities"]["bad_debt"] * 100 for c in body["cells"]], marker="s", label="P(bad debt)"
        )
        ax.set_xlabel(params[0]["key"])
        ax.set_ylabel("% of paths")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend()
    else:
        rows, cols = len(params[0]["values"]), len(params[1]["values"])
        grid_values = np.array(social).reshape(rows, cols)
        fig, ax = plt.subplots(figsize=(1.1 * cols + 3, 0.6 * rows + 2.5))
        image = ax.imshow(grid_values, cmap="RdYlGn_r", vmin=0, vmax=100, origin="lower", aspect="auto")
        ax.set_xticks(range(cols), params[1]["values"], rotation=30)
        ax.set_yticks(range(rows), params[0]["values"])
        ax.set_xlabel(params[1]["key"])
        ax.set_ylabel(params[0]["key"])
        for i in range(rows):
            for j in range(cols):
                v = grid_values[i, j]
                ax.text(
                    j,
                    i,
                    f"{v:.1f}%",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if 25 < v < 75 else "black",
                )
        fig.colorbar(image, ax=ax, label="P(socialization), % of paths")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
