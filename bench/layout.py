"""Names for storage slots: the compiler's storage layout, and a resolver from a concrete slot
number to ``variable[key].member``.

The layout comes from the project's own compiler shim (``tools/solc``) asked for nothing but
``storageLayout`` (about two seconds; cached under ``bench/tmp/`` by source hash). Mapping keys
can only be recognised among candidates the caller knows (addresses, market ids, order hashes);
anything else stays a raw slot number.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from eth_utils import keccak

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / "tmp"
SOURCES = {
    "MarginEngine": "contracts/MarginEngine.sol",
    "CollateralVault": "contracts/CollateralVault.sol",
    "InsuranceFund": "contracts/InsuranceFund.sol",
    "Token": "contracts/mocks/MockERC20.sol",
}
CONTRACT_NAMES = {"Token": "MockERC20"}


def storage_layouts() -> dict[str, dict[str, Any]]:
    """``{"MarginEngine": {"storage": [...], "types": {...}}, ...}`` (empty dict on failure)."""
    texts = {name: (ROOT / path).read_text() for name, path in SOURCES.items()}
    digest = hashlib.sha256(json.dumps(sorted(texts.items())).encode()).hexdigest()[:16]
    cached = CACHE / f"layout-{digest}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    standard = {
        "language": "Solidity",
        "sources": {SOURCES[n]: {"content": t} for n, t in texts.items()},
        "settings": {
            "remappings": ["@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/"],
            "outputSelection": {SOURCES[n]: {CONTRACT_NAMES.get(n, n): ["storageLayout"]} for n in SOURCES},
        },
    }
    solc = ROOT / "tools" / "solc" / "solc-v0.8.28"
    try:
        proc = subprocess.run(
            [
                str(solc),
                "--standard-json",
                "--base-path",
                ".",
                "--include-path",
                "node_modules",
                "--allow-paths",
                ".",
            ],
            input=json.dumps(standard),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
            check=False,
        )
        out = json.loads(proc.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}
    layouts = {}
    for name, path in SOURCES.items():
        contract = out.get("contracts", {}).get(path, {}).get(CONTRACT_NAMES.get(name, name))
        if contract and "storageLayout" in contract:
            layouts[name] = contract["storageLayout"]
    if len(layouts) == len(SOURCES):
        CACHE.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(layouts))
    return layouts


def _word(value: bytes | int) -> bytes:
    return value.to_bytes(32, "big") if isinstance(value, int) else value.rjust(32, b"\0")


class SlotNamer:
    """Resolves slot numbers of one contract. ``keys``: candidate mapping keys (32-byte words)
    with display names."""

    def __init__(self, layout: dict[str, Any], keys: dict[bytes, str]):
        self.types = layout.get("types", {}) or {}
        self.keys = keys
        self.names: dict[int, str] = {}
        for var in layout.get("storage", []):
            self._add(int(var["slot"]), var["label"], var["type"], depth=0)

    def _add(self, slot: int, label: str, type_id: str, depth: int) -> None:
        t = self.types.get(type_id, {})
        encoding = t.get("encoding", "inplace")
        if encoding == "mapping" and depth < 2:
            for key, key_name in self.keys.items():
                inner = int.from_bytes(keccak(_word(key) + _word(slot)), "big")
                self._add(inner, f"{label}[{key_name}]", t["value"], depth + 1)
            return
        if encoding == "dynamic_array" and depth < 2:
            base = int.from_bytes(keccak(_word(slot)), "big")
            element = t.get("base", "")
            size = max(1, int(self.types.get(element, {}).get("numberOfBytes", "32")) // 32)
            for i in range(8):
                self._add(base + i * size, f"{label}[{i}]", element, depth + 1)
            return
        members = t.get("members")
        if members:
            for m in members:
                self._add(slot + int(m["slot"]), f"{label}.{m['label']}", m["type"], depth)
            return
        if encoding == "inplace" and "base" in t:  # a fixed-size array of whole slots
            element_slots = max(1, int(self.types.get(t["base"], {}).get("numberOfBytes", "32")) // 32)
            count = int(t.get("numberOfBytes", "32")) // 32 // element_slots
            for i in range(count):
                self._add(slot + i * element_slots, f"{label}[{i}]", t["base"], depth)
            return
        existing = self.names.get(slot)
        if existing is None:
            self.names[slot] = label
        elif existing.rpartition(".")[0] == label.rpartition(".")[0] and "." in label:
            self.names[slot] = f"{existing},{label.rpartition('.')[2]}"  # packed members

    def name(self, slot: int) -> str | None:
        return self.names.get(slot)
