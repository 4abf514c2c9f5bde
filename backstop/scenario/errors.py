"""The custom error names a scenario's ``expect_revert`` may name, and duplicate-key detection
for scenario YAML.

The names are the suite's: every ``error`` of the compiled ABIs (``.build/__local__.json``, the
manifest :mod:`backstop.chain.abi` locates, which also holds OpenZeppelin's), united with the
``error Name(...)`` declarations in ``contracts/**/*.sol`` (so a name added since the last compile
is known too), plus Solidity's own ``Error`` and ``Panic``. Without a compiled manifest only the
declarations under ``contracts/`` are known.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import yaml

from backstop.chain.abi import compiled_manifest_path, repository_root
from backstop.scenario.steps import ScenarioError

_DECLARATION = re.compile(r"^\s*error\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(", re.MULTILINE)


@functools.lru_cache(maxsize=4)
def contract_error_names(root: Path | None = None) -> frozenset[str]:
    """Every custom error name of the suite (see the module docstring)."""
    root = root or repository_root()
    names = {"Error", "Panic"}
    manifest = compiled_manifest_path(root)
    try:
        types = json.loads(manifest.read_text())["contractTypes"]
        for contract in types.values():
            names.update(i["name"] for i in contract.get("abi", []) if i.get("type") == "error")
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not compiled yet: the sources below
    for source in sorted((root / "contracts").rglob("*.sol")):
        names.update(_DECLARATION.findall(source.read_text(errors="replace")))
    return frozenset(names)


def known_error(name: str, where: str, errors: Collection[str]) -> str:
    """``name`` if it is one of ``errors``; else a ``ScenarioError`` with the closest names."""
    if name in errors:
        return name
    close = difflib.get_close_matches(name, sorted(errors), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}?" if close else "see the contracts' error declarations"
    raise ScenarioError(f"{where}: {name!r} is not a custom error of the contracts; {hint}")


def _key_text(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else f"<{node.tag}>"


def _child_path(path: str, key: str) -> str:
    return key if not path else f"{path}.{key}"


def _walk(node: yaml.Node, path: str) -> Iterator[str]:
    """One message per duplicate key under ``node`` (``path`` names ``node`` like the parser's
    errors: ``markets.ETH``, ``steps[3].trade``)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, Any] = {}
        for key, value in node.value:
            text = _key_text(key)
            if text in seen:
                first = seen[text]
                where = path or "the top-level mapping"
                yield (
                    f"line {key.start_mark.line + 1}: duplicate key {text!r} in {where} "
                    f"(first at line {first.line + 1})"
                )
            else:
                seen[text] = key.start_mark
            yield from _walk(value, _child_path(path, text))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _walk(item, f"{path}[{i}]")


def duplicate_keys(root: yaml.Node | None) -> list[str]:
    """Every duplicate mapping key of a composed YAML document, each named with where it is."""
    return [] if root is None else list(_walk(root, ""))
