"""ABI helpers and the compiled artifacts: canonical signatures, selectors, calldata, Ape's compiled
manifest (its path is defined here once), and the one custom-error selector → name map.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_abi import encode
from eth_utils import keccak

#: Ape's compiled manifest, relative to a project root.
COMPILED_MANIFEST = Path(".build") / "__local__.json"
#: ``Error(string)`` and ``Panic(uint256)``, the two errors Solidity itself raises.
STANDARD_ERRORS: dict[bytes, str] = {
    keccak(text="Error(string)")[:4]: "Error",
    keccak(text="Panic(uint256)")[:4]: "Panic",
}


def repository_root() -> Path:
    """The Ape project root: the parent of the ``backstop`` package."""
    return Path(__file__).resolve().parents[2]


def compiled_manifest_path(root: Path | None = None) -> Path:
    """``<root>/.build/__local__.json`` (default root: this repository)."""
    return (root or repository_root()) / COMPILED_MANIFEST


def canonical(param: dict[str, Any]) -> str:
    """The canonical ABI type of a parameter (tuples spelled out)."""
    kind = param["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(canonical(c) for c in param["components"]) + ")" + kind[len("tuple") :]
    return kind


def signature(item: dict[str, Any]) -> str:
    """``name(type,...)`` of an ABI function, event or error."""
    return f"{item['name']}({','.join(canonical(i) for i in item.get('inputs', []))})"


def abi_item(abi: Sequence[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    """The first ``kind`` (``function``, ``event``, ``error``) called ``name``, or None."""
    return next((i for i in abi if i.get("type") == kind and i.get("name") == name), None)


def selector(signature: str) -> bytes:
    """The 4-byte selector of ``name(type,...)``."""
    return keccak(text=signature)[:4]


def encode_call(signature: str, *args: Any) -> bytes:
    """Selector + ABI-encoded arguments, e.g. ``encode_call("deposit(uint256)", 5)``."""
    types = signature[signature.index("(") + 1 : -1]
    arg_types = _split_types(types)
    return selector(signature) + (encode(arg_types, list(args)) if arg_types else b"")


def _split_types(types: str) -> list[str]:
    out, depth, start = [], 0, 0
    for i, ch in enumerate(types):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(types[start:i])
            start = i + 1
    if types[start:]:
        out.append(types[start:])
    return out


def abi_errors(abi: Iterable[dict[str, Any]]) -> Iterator[tuple[str, bytes]]:
    """``(name, selector)`` of every custom error of an ABI."""
    for item in abi:
        if item.get("type") == "error":
            yield item["name"], selector(signature(item))


def error_names(abis: Iterable[Sequence[dict[str, Any]]], *, standard: bool = False) -> dict[bytes, str]:
    """Custom error selector → name over ``abis`` (errors bubble up between the suite's contracts;
    the first ABI wins a clash); with ``standard``, ``Error`` and ``Panic`` too."""
    out: dict[bytes, str] = dict(STANDARD_ERRORS) if standard else {}
    for abi in abis:
        for name, sel in abi_errors(abi):
            out.setdefault(sel, name)
    return out


def error_name(data: bytes, names: dict[bytes, str]) -> str:
    """The custom error of revert ``data``: its name, else its raw selector, or ``revert`` when
    the data has no selector."""
    if len(data) < 4:
        return "revert"
    return names.get(data[:4], "0x" + data[:4].hex())


@dataclass
class Artifacts:
    """Deployment bytecode and ABIs of an Ape project's compiled manifest."""

    contract_types: dict[str, Any]
    path: Path | None = None
    _errors: dict[str, bytes] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Artifacts:
        """Reads a compiled manifest (default: this repository's)."""
        path = Path(path) if path is not None else compiled_manifest_path()
        return cls(json.loads(path.read_text())["contractTypes"], path)

    def bytecode(self, name: str) -> bytes:
        code = self.contract_types[name]["deploymentBytecode"]["bytecode"]
        return bytes.fromhex(code.removeprefix("0x"))

    def runtime_bytecode(self, name: str) -> bytes:
        """The deployed (runtime) code of ``name``, as ``eth_getCode`` returns it for a contract
        without immutables."""
        code = self.contract_types[name]["runtimeBytecode"]["bytecode"]
        return bytes.fromhex(code.removeprefix("0x"))

    def abi(self, name: str) -> list[dict[str, Any]]:
        return self.contract_types[name]["abi"]

    def initcode(self, name: str, ctor_types: list[str] | None = None, *args: Any) -> bytes:
        """Bytecode of ``name`` followed by its ABI-encoded constructor arguments."""
        if ctor_types is None:
            ctor = next((i for i in self.abi(name) if i["type"] == "constructor"), None)
            ctor_types = [canonical(p) for p in ctor["inputs"]] if ctor else []
        return self.bytecode(name) + (encode(ctor_types, list(args)) if ctor_types else b"")

    def error_selectors(self, names: list[str] | None = None) -> dict[str, bytes]:
        """Custom error name → selector over the given contracts (default: all). Raises if one name
        has two different signatures, which would make a name ambiguous."""
        out: dict[str, bytes] = {}
        for contract in names or list(self.contract_types):
            for name, sel in abi_errors(self.abi(contract)):
                if out.setdefault(name, sel) != sel:
                    raise ValueError(f"error name {name} has two signatures")
        return out

    def event_topics(self, name: str) -> dict[str, bytes]:
        """Event name → topic 0 for contract ``name``."""
        return {
            item["name"]: keccak(text=signature(item)) for item in self.abi(name) if item["type"] == "event"
        }
