"""Where the gas of one transaction goes, from anvil's traces.

``breakdown`` combines two traces of the same transaction:

- the call tracer: every call frame with the gas it used; a frame's *exclusive* gas is its own
  execution, without its sub-calls (the top frame's also includes the intrinsic cost and is net
  of the refund, as in the receipt);
- the struct logger (only on an anvil started with ``--steps-tracing``): storage and log opcodes,
  counted and summed, and SSTOREs split by what they did (EIP-2929/2200/3529 costs: 20,000+ a
  zero slot made non-zero, 2,900+ an update of a clean slot, ≤ 2,200 a no-op or a slot already
  written in this transaction; each plus 2,100 when the slot was cold).
"""

from __future__ import annotations

from typing import Any

from backstop.chain.abi import selector, signature
from bench.chain import Chain
from bench.layout import SlotNamer, storage_layouts

_LAYOUTS: dict[str, Any] = {}


def _layouts() -> dict[str, Any]:
    if not _LAYOUTS:
        _LAYOUTS.update(storage_layouts())
    return _LAYOUTS


def _key(key: str) -> bytes:
    if key.startswith("0x"):
        return bytes.fromhex(key[2:]).rjust(32, b"\0")
    return int(key).to_bytes(32, "big")


PRECOMPILES = {
    "0x0000000000000000000000000000000000000001": "ecrecover",
    "0x0000000000000000000000000000000000000002": "sha256",
    "0x0000000000000000000000000000000000000004": "identity",
}
CALL_OPS = {"CALL", "STATICCALL", "DELEGATECALL", "CALLCODE", "CREATE", "CREATE2"}


def selectors(abis: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """``0x12345678`` → function name, over every compiled contract."""

    out: dict[str, str] = {}
    for abi in abis.values():
        for item in abi:
            if item.get("type") == "function":
                out["0x" + selector(signature(item)).hex()] = item["name"]
    return out


def intrinsic_gas(calldata: str) -> int:
    """21,000 plus 16 per non-zero and 4 per zero calldata byte (no access list, no creation)."""
    data = bytes.fromhex(calldata.removeprefix("0x"))
    return 21_000 + sum(16 if b else 4 for b in data)


def _frames(
    node: dict[str, Any], names: dict[str, str], sels: dict[str, str], depth: int = 0
) -> list[dict[str, Any]]:
    to = (node.get("to") or "").lower()
    used = int(node.get("gasUsed", "0x0"), 16)
    children = node.get("calls", []) or []
    child_used = sum(int(c.get("gasUsed", "0x0"), 16) for c in children)
    contract = names.get(to) or PRECOMPILES.get(to) or to
    selector = (node.get("input") or "0x")[:10]
    fn = "" if to in PRECOMPILES else sels.get(selector, selector)
    frame = {
        "depth": depth,
        "call": f"{contract}.{fn}" if fn else contract,
        "type": node.get("type", ""),
        "gas": used,
        "exclusive": used - child_used,
    }
    out = [frame]
    for child in children:
        out.extend(_frames(child, names, sels, depth + 1))
    return out


def _sstores(
    struct_logs: list[dict[str, Any]],
    names: dict[str, str],
    entry: str,
    namers: dict[str, Any],
    cold: bool = False,
):
    """Every SSTORE with the contract it wrote, the slot (named where the layout and a known
    mapping key resolve it), the value written (zero or not) and its cost; with ``cold``, every
    cold SLOAD (first read of a slot in the transaction, 2,100 gas) instead."""
    frames = [entry.lower()]
    pending: str | None = None
    out = []
    for step in struct_logs:
        depth = int(step.get("depth", 1))
        while len(frames) > depth:
            frames.pop()
        if len(frames) < depth and pending is not None:
            frames.append(pending)
        pending = None
        op = step.get("op", "")
        stack = step.get("stack") or []
        if op in ("CALL", "STATICCALL", "DELEGATECALL", "CALLCODE") and len(stack) >= 2:
            addr = "0x" + int(stack[-2], 16).to_bytes(32, "big")[-20:].hex()
            pending = frames[-1] if op in ("DELEGATECALL", "CALLCODE") else addr
        cold_read = op == "SLOAD" and int(step.get("gasCost", 0)) >= 2_100 and len(stack) >= 1
        if (not cold and op == "SSTORE" and len(stack) >= 2) or (cold and cold_read):
            slot = int(stack[-1], 16)
            contract = names.get(frames[-1], frames[-1]) if frames else "?"
            namer = namers.get(contract)
            label = namer.name(slot) if namer is not None else None
            entry = {
                "contract": contract,
                "slot": label or (str(slot) if slot < 2**16 else hex(slot)[:12] + "…"),
                "gas": int(step.get("gasCost", 0)),
            }
            if op == "SSTORE":
                entry["writes"] = "zero" if int(stack[-2], 16) == 0 else "non-zero"
            out.append(entry)
    return out


def _storage(struct_logs: list[dict[str, Any]]) -> dict[str, Any]:
    ops: dict[str, list[int]] = {}
    sstore = {"new_slot": [0, 0], "update": [0, 0], "noop_or_dirty": [0, 0]}
    for step in struct_logs:
        op = step.get("op", "")
        if op in CALL_OPS:
            continue  # their gasCost includes the gas forwarded to the callee
        cost = int(step.get("gasCost", 0))
        if op in ("SSTORE", "SLOAD", "KECCAK256", "TSTORE", "TLOAD") or op.startswith("LOG"):
            entry = ops.setdefault(op, [0, 0])
            entry[0] += 1
            entry[1] += cost
        if op == "SSTORE":
            kind = "new_slot" if cost >= 20_000 else "update" if cost >= 2_900 else "noop_or_dirty"
            sstore[kind][0] += 1
            sstore[kind][1] += cost
    refund = int(struct_logs[-1].get("refund", 0)) if struct_logs else 0
    return {
        "steps": len(struct_logs),
        "opcodes": {op: {"count": c, "gas": g} for op, (c, g) in sorted(ops.items())},
        "sstore": {k: {"count": c, "gas": g} for k, (c, g) in sstore.items()},
        "refund_counter": refund,
    }


def breakdown(
    chain: Chain, tx_hash: str, names: dict[str, str], keys: dict[str, str] | None = None
) -> dict[str, Any]:
    """The call frames of ``tx_hash`` (and its storage profile if the node records steps).
    ``names``: address → contract name (``Token``, ``MarginEngine``…, as in ``bench.layout``);
    ``keys``: candidate mapping keys (hex address or 32-byte word, or a small int as a string) →
    display name, to name the slots SSTORE writes."""
    sels = selectors(chain.abis)
    names = {k.lower(): v for k, v in names.items()}
    trace = chain.call_trace(tx_hash)
    tx = chain.rpc("eth_getTransactionByHash", [tx_hash])
    receipt = chain.rpc("eth_getTransactionReceipt", [tx_hash])
    out: dict[str, Any] = {
        "gas_used": int(receipt["gasUsed"], 16),
        "intrinsic": intrinsic_gas(tx["input"]),
        "calldata_bytes": len(bytes.fromhex(tx["input"].removeprefix("0x"))),
        "frames": _frames(trace, names, sels),
    }
    try:
        logs = chain.struct_logs(tx_hash, stack=True)
    except RuntimeError:
        logs = []
    if logs:
        out["storage"] = _storage(logs)
        words = {_key(k): v for k, v in {**names, **(keys or {})}.items()}
        namers = {contract: SlotNamer(layout, words) for contract, layout in _layouts().items()}
        out["storage"]["sstores"] = _sstores(logs, names, tx["to"], namers)
        out["storage"]["cold_sloads"] = _sstores(logs, names, tx["to"], namers, cold=True)
    return out


def summarize(b: dict[str, Any]) -> dict[str, int]:
    """Gas by callee (``Contract.function``, summed over its calls, exclusive of nested calls);
    the top frame is split into intrinsic cost and the entry contract's own execution (net of
    the refund)."""
    out: dict[str, int] = {"intrinsic (21,000 + calldata)": b["intrinsic"]}
    for frame in b["frames"]:
        gas = frame["exclusive"]
        key = frame["call"]
        if frame["depth"] == 0:
            gas -= b["intrinsic"]
            key += " (own execution, net of refund)"
        else:
            calls = sum(1 for f in b["frames"] if f["call"] == frame["call"] and f["depth"] > 0)
            key = f"{key} ×{calls}" if calls > 1 else key
        out[key] = out.get(key, 0) + gas
    return out
