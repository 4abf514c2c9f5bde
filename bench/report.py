"""``bench/results.json`` and the generated part of ``docs/benchmarks.md``.

The JSON nests by section, so the issue's dotted paths resolve by walking the keys:
``gas.deposit_first`` is ``results["gas"]["deposit_first"]``. Every number is a JSON number, or
``null`` when the benchmark could not run (the reason is in ``notes`` under the same dotted key).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bench.trace import summarize

START, END = "<!-- bench:start -->", "<!-- bench:end -->"

#: The issue's required keys (dotted paths into results.json).
REQUIRED = (
    "gas.deposit_first",
    "gas.deposit_repeat",
    "gas.trade_open",
    "gas.fill_open",
    "gas.fill_increase",
    "gas.liquidate_solvent_1m",
    "gas.liquidate_covered_1m",
    "gas.liquidate_socialized_1m",
    "gas.liquidate_socialized_4m",
    "gas.socialize_n10",
    "gas.socialize_n100",
    "gas.socialize_n1000",
    "gas.liquidate_many_10_per_account",
    "gas.liquidate_many_50_per_account",
    "gas.liquidate_partial_1m",
    "keeper.scan_1000_s",
    "keeper.liquidate_all_1000_s",
    "fuzz.revm_steps_per_s",
    "fuzz.anvil_steps_per_s",
    "risk.fast_account_steps_per_s",
    "risk.fast_10000x1000x288_s",
    "risk.exact_paths_per_s",
)

AAVE_V33_LIQUIDATION_GAS = 393_000

#: Issue #20's peer: dYdX's Solidity perpetual (PerpetualV1 with P1Orders, P1Liquidation and
#: P1Deleveraging, solc 0.5.16), deployed on the same anvil and measured in one run (cancun,
#: receipts' gasUsed, the same 6-decimal token, funding 0). Rows: (operation, key, peer gas,
#: goal). Deposits' goal is Backstop's own figure when the issue was filed (no regression).
PEER_ROWS = (
    ("deposit, first", "deposit_first", 132_890, 71_774),
    ("deposit, repeat", "deposit_repeat", 98_562, 54_674),
    ("trade, two flat accounts, taker sends (`fillOrder`)", "fill_open", 163_744, 163_744),
    ("trade, two flat accounts, both signed, relayer sends", "trade_open", 241_970, 241_970),
    ("trade between holders, taker sends (`fillOrder`)", "fill_increase", 173_119, 173_119),
    ("trade between holders, both signed", "trade_increase", 251_391, 251_391),
    ("solvent liquidation, one market", "liquidate_solvent_1m", 130_749, 130_749),
    ("bad debt, the fund covers all (peer: deleverage)", "liquidate_covered_1m", 138_228, 138_228),
    (
        "bad debt with socialization, first (peer: mark + deleverage)",
        "liquidate_socialized_1m",
        208_395,
        208_395,
    ),
    ("bad debt with socialization, steady state", "liquidate_socialized_1m_steady", 138_228, 138_228),
)

GAS_ROWS = [
    ("deposit_first", "deposit, first"),
    ("deposit_repeat", "deposit, repeat"),
    ("withdraw_no_positions", "withdraw, no positions"),
    ("withdraw_1m", "withdraw, positions in 1 market"),
    ("withdraw_4m", "withdraw, positions in 4 markets"),
    ("trade_open", "trade, open both sides"),
    ("trade_increase", "trade, increase"),
    ("trade_reduce", "trade, reduce"),
    ("trade_close", "trade, close"),
    ("trade_flip", "trade, flip"),
    ("fill_open", "fillOrder (taker sends), open both sides"),
    ("fill_increase", "fillOrder (taker sends), increase"),
    ("liquidate_solvent_1m", "liquidate, solvent, 1 market"),
    ("liquidate_covered_1m", "liquidate, bankrupt fully covered, 1 market"),
    ("liquidate_socialized_1m", "liquidate, bankrupt, cover + socialization, 1 market"),
    ("liquidate_solvent_4m", "liquidate, solvent, 4 markets"),
    ("liquidate_covered_4m", "liquidate, bankrupt fully covered, 4 markets"),
    ("liquidate_socialized_4m", "liquidate, bankrupt, cover + socialization, 4 markets"),
    ("liquidate_solvent_1m_steady", "liquidate, solvent, 1 market, steady state"),
    ("liquidate_socialized_1m_steady", "liquidate, cover + socialization, 1 market, steady state"),
    ("liquidate_partial_1m", "liquidatePosition, half of a solvent 1-market position"),
    ("liquidate_many_10_total", "liquidateMany, 10 solvent 1-market accounts (total)"),
    ("liquidate_many_10_per_account", "liquidateMany, 10 accounts: per account"),
    ("liquidate_many_50_total", "liquidateMany, 50 solvent 1-market accounts (total)"),
    ("liquidate_many_50_per_account", "liquidateMany, 50 accounts: per account"),
    ("settle_1m", "settle, pending loss in 1 market"),
    ("settle_4m", "settle, pending loss in 4 markets"),
    ("fund_stake", "insurance fund stake"),
    ("cover", "insurance fund cover"),
    ("sweep", "sweep the fund's fee credit to the fund"),
]


def get(results: dict[str, Any], dotted: str) -> Any:
    node: Any = results
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets: value, target, met (None when the value is missing)."""
    gas = results.get("gas", {})
    keeper = results.get("keeper", {})

    def row(name: str, key: str, value, target: str, ok, unit: str = "gas") -> dict[str, Any]:
        met = None if value is None else bool(ok)
        return {"name": name, "key": key, "value": value, "unit": unit, "target": target, "met": met}

    rows = []
    v = gas.get("liquidate_socialized_1m")
    rows.append(
        row(
            "liquidation, 1 market, fund cover + socialization",
            "gas.liquidate_socialized_1m",
            v,
            f"≤ 200,000 gas (Aave v3.3 liquidationCall ≈ {AAVE_V33_LIQUIDATION_GAS:,})",
            v is not None and v <= 200_000,
        )
    )
    v = gas.get("liquidate_socialized_1m_steady")
    if v is not None:
        rows.append(
            row(
                "  the same, steady state (informational: liquidator already holds the market, loss index non-zero)",
                "gas.liquidate_socialized_1m_steady",
                v,
                "≤ 200,000 gas",
                v <= 200_000,
            )
        )
    v = gas.get("trade_open")
    rows.append(
        row(
            "trade opening positions for both parties",
            "gas.trade_open",
            v,
            "≤ 200,000 gas",
            v is not None and v <= 200_000,
        )
    )
    for key, label in (("deposit_first", "deposit, first"), ("deposit_repeat", "deposit, repeat")):
        v = gas.get(key)
        rows.append(row(label, f"gas.{key}", v, "≤ 60,000 gas", v is not None and v <= 60_000))
    lo, hi = gas.get("socialize_n10"), gas.get("socialize_n1000")
    delta = None if lo is None or hi is None else round(100 * (hi - lo) / lo, 4)
    rows.append(
        row(
            "socialization gas, N = 1,000 vs N = 10",
            "gas.socialize_n1000 vs gas.socialize_n10",
            delta,
            "within 1 %",
            delta is not None and abs(delta) <= 1,
            unit="%",
        )
    )
    v = keeper.get("scan_1000_s")
    rows.append(
        row(
            "keeper: scan 1,000 accounts",
            "keeper.scan_1000_s",
            v,
            "≤ 1 s",
            v is not None and v <= 1,
            unit="s",
        )
    )
    v = keeper.get("liquidate_all_1000_s")
    rows.append(
        row(
            "keeper: all liquidations after a crash of 1,000 accounts (liquidateMany batches)",
            "keeper.liquidate_all_1000_s",
            v,
            "≤ 10 s (issue #16; one transaction per account took 32–48 s)",
            v is not None and v <= 10,
            unit="s",
        )
    )
    v = results.get("risk", {}).get("fast_account_steps_per_s")
    rows.append(
        row(
            "risk lab: fast engine account-steps per second (10,000 paths × 1,000 accounts × 288 steps)",
            "risk.fast_account_steps_per_s",
            v,
            "≥ 5,000,000 on 2 cores (issue #19)",
            v is not None and v >= 5_000_000,
            unit="/s",
        )
    )
    single = gas.get("liquidate_solvent_1m")
    for n in (10, 50):
        v = gas.get(f"liquidate_many_{n}_per_account")
        share = None if v is None or not single else round(100 * v / single, 1)
        rows.append(
            row(
                f"liquidateMany, batch of {n}: gas per account vs liquidate_solvent_1m",
                f"gas.liquidate_many_{n}_per_account",
                v,
                "≤ 60 % of gas.liquidate_solvent_1m" + ("" if share is None else f" (measured {share} %)"),
                share is not None and share <= 60,
            )
        )
    return rows


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        text = f"{value:,.3f}".rstrip("0").rstrip(".") if value < 100 else f"{value:,.1f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return text + unit


def _met(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "n/a"}[value]


def markdown(results: dict[str, Any]) -> str:
    meta = results.get("meta", {})
    gas = results.get("gas", {})
    notes = results.get("notes", {})
    keeper = results.get("keeper", {})
    fuzz = results.get("fuzz", {})
    out: list[str] = []
    out.append(
        f"Generated by `make bench` on {meta.get('date', '?')}, commit `{meta.get('git_commit', '?')}`"
        f"{' (with uncommitted changes)' if meta.get('git_dirty') else ''}; {meta.get('cpu', '?')}, "
        f"{meta.get('cores', '?')} cores, load average {meta.get('load_average_start', '?')} at start; "
        f"{meta.get('anvil', '?')}; solc {meta.get('solc', '?')} (optimizer {meta.get('optimizer', '?')}); "
        f"whole run {_fmt(meta.get('runtime_s'), ' s')}."
    )
    out.append("")
    out.append("### Targets")
    out.append("")
    out.append("| target | value | target | met |")
    out.append("|---|---:|---|:---:|")
    for r in results.get("targets", []):
        unit = r.get("unit", "gas")
        if unit == "%" and r["value"] is not None:
            shown = f"{r['value']:+.4f} %"
        else:
            shown = _fmt(r["value"], "" if unit == "gas" else f" {unit}")
        name = r["name"].strip()
        if r["name"].startswith("  "):
            name = "↳ " + name
        out.append(f"| {name} (`{r['key']}`) | {shown} | {r['target']} | {_met(r['met'])} |")
    out.append("")
    out.append("### Gas per operation")
    out.append("")
    out.append("`gasUsed` of the transaction (intrinsic cost included, refunds deducted).")
    out.append("")
    out.append("| operation | key | gas | state |")
    out.append("|---|---|---:|---|")
    for key, label in GAS_ROWS:
        if key in gas or f"gas.{key}" in notes:
            note = notes.get(f"gas.{key}", "").replace("|", "\\|")
            out.append(f"| {label} | `gas.{key}` | {_fmt(gas.get(key))} | {note} |")
    out.append("")
    out.append("### Against dYdX's Solidity perpetual (issue #20)")
    out.append("")
    out.append(
        "The peer's figures were measured on the same anvil in one run (PerpetualV1 with P1Orders, "
        "P1Liquidation and P1Deleveraging; receipts' `gasUsed`). Ratio = Backstop / peer."
    )
    out.append("")
    out.append("| operation | key | Backstop | dYdX | ratio | goal | met |")
    out.append("|---|---|---:|---:|---:|---:|:---:|")
    for label, key, peer, goal in PEER_ROWS:
        v = gas.get(key)
        ratio = "n/a" if v is None else f"{v / peer:.2f}"
        met = None if v is None else v <= goal
        out.append(f"| {label} | `gas.{key}` | {_fmt(v)} | {peer:,} | {ratio} | ≤ {goal:,} | {_met(met)} |")
    out.append("")
    out.extend(_floor_table(gas, results.get("breakdown", {})))
    social = results.get("socialization", {})
    out.append("### Socialization is O(1)")
    out.append("")
    out.append(
        "| opposite-side traders | key | liquidation gas | covered by fund | socialized | index delta per ETH |"
    )
    out.append("|---:|---|---:|---:|---:|---:|")
    for n in (10, 100, 1000):
        d = social.get(f"n{n}", {})
        out.append(
            f"| {_fmt(d.get('opposite_side_traders', n))} | `gas.socialize_n{n}` | {_fmt(gas.get(f'socialize_n{n}'))} | "
            f"{_fmt(d.get('covered'))} | {_fmt(d.get('socialized'))} | "
            f"{_fmt(None if d.get('index_delta_wad') is None else d['index_delta_wad'] / 1e18)} |"
        )
    out.append("")
    out.append("### Keeper")
    out.append("")
    out.append("| measure | key | value |")
    out.append("|---|---|---:|")
    for key, label, unit in (
        ("scan_1000_s", "dry-run pass over 1,000 healthy accounts (sync + scan + decide)", " s"),
        ("scan_only_1000_s", "scan only (`healthOf` in batches of 500)", " s"),
        ("cold_sync_1000_s", "initial index sync of a fresh keeper (event logs)", " s"),
        ("liquidate_all_1000_s", "liquidate every liquidatable account after the crash", " s"),
        ("liquidations_per_s", "liquidations per second", ""),
        ("liquidatable_after_crash", "accounts liquidatable after the crash", ""),
        ("bankrupt_after_crash", "of which bankrupt", ""),
        ("liquidated", "liquidations confirmed", ""),
        ("failed", "failed", ""),
        ("passes", "keeper passes", ""),
        ("left_with_positions", "accounts still holding positions afterwards", ""),
        ("liquidation_gas_mean", "mean gas per keeper liquidation", ""),
        ("batch_size", "keeper setting: accounts per `healthOf` call", ""),
        ("max_in_flight", "keeper setting: liquidations in flight", ""),
    ):
        if key in keeper:
            out.append(f"| {label} | `keeper.{key}` | {_fmt(keeper[key], unit)} |")
    if "keeper" in notes:
        out.append("")
        out.append(f"Keeper: {notes['keeper']}")
    out.append("")
    out.append("### Fuzz throughput")
    out.append("")
    out.append("| backend | key | steps/s | note |")
    out.append("|---|---|---:|---|")
    for backend in ("revm", "anvil"):
        key = f"{backend}_steps_per_s"
        detail = results.get("fuzz_detail", {}).get(backend, {})
        note = notes.get(f"fuzz.{key}") or (
            f"{sum(x['steps'] for x in detail.get('lines', []))} steps, {detail.get('failures', 0)} failures, "
            f"`{detail.get('command', '')}`"
            if detail
            else ""
        )
        out.append(f"| {backend} | `fuzz.{key}` | {_fmt(fuzz.get(key))} | {note.replace('|', '/')} |")
    out.append("")
    risk = results.get("risk", {})
    out.append("### Risk lab")
    out.append("")
    out.append("| measure | key | value | note |")
    out.append("|---|---|---:|---|")
    for key, label, unit in (
        ("fast_account_steps_per_s", "fast engine, account-steps per second", "/s"),
        ("fast_10000x1000x288_s", "fast engine, 10,000 paths × 1,000 accounts × 288 steps", " s"),
        ("fast_example_paths_per_s", "fast engine, paths/s on risk/eth_flash_crash.yaml", ""),
        ("exact_paths_per_s", "exact engine, paths/s on risk/eth_flash_crash.yaml", ""),
    ):
        note = notes.get(f"risk.{key}", "").replace("|", "/")
        out.append(
            f"| {label} | `risk.{key}` | {_fmt(risk.get(key), '' if unit == '/s' else unit)} | {note} |"
        )
    out.append("")
    breakdowns = results.get("breakdown", {})
    if breakdowns:
        out.append("### Where the gas goes")
        out.append("")
        out.append(
            "Per call frame, from anvil's call tracer: each callee's own execution (its nested calls "
            "are listed separately; the caller pays the 2,600 / 100 gas of making the call). New "
            "storage slots (zero → non-zero, 20,000 gas each before refunds) from the step trace."
        )
        for key in (
            "trade_open",
            "liquidate_socialized_1m",
            "liquidate_socialized_1m_steady",
            "liquidate_socialized_4m",
        ):
            b = breakdowns.get(key)
            if not b:
                continue
            out.append("")
            out.append(f"**`gas.{key}`** = {_fmt(b['gas_used'])} ({b['calldata_bytes']} calldata bytes)")
            out.append("")
            out.append("| frame | gas |")
            out.append("|---|---:|")
            for frame, g in summarize(b).items():
                out.append(f"| {frame} | {_fmt(g)} |")
            storage = b.get("storage")
            if storage:
                new = [x for x in storage.get("sstores", []) if x["gas"] >= 20_000]
                s = storage["sstore"]
                out.append(
                    f"| *SSTORE: {s['new_slot']['count']} new slots ({_fmt(s['new_slot']['gas'])}), "
                    f"{s['update']['count']} updates ({_fmt(s['update']['gas'])}), "
                    f"{s['noop_or_dirty']['count']} no-op/dirty ({_fmt(s['noop_or_dirty']['gas'])}); "
                    f"refund counter {_fmt(storage['refund_counter'])}* | |"
                )
                sload = storage["opcodes"].get("SLOAD", {"count": 0, "gas": 0})
                out.append(f"| *SLOAD: {sload['count']} reads ({_fmt(sload['gas'])})* | |")
                if new:
                    out.append("")
                    out.append("New slots: " + "; ".join(f"{x['contract']} `{x['slot']}`" for x in new) + ".")
        out.append("")
    return "\n".join(out)


def storage_floor(b: dict[str, Any]) -> dict[str, int]:
    """What one traced transaction pays for state and logs alone, from its ``breakdown``: the
    intrinsic cost, every SSTORE as charged (new slots 20,000, other writes 2,900 or 100), every
    cold SLOAD (2,100), the first call into each other contract (2,600, EIP-2929) and the LOG
    opcodes, less the refund the receipt granted. The rest of ``gas_used`` is computation, memory,
    warm reads, ``ecrecover`` and repeated calls."""
    st = b["storage"]
    new = st["sstore"]["new_slot"]["gas"]
    writes = st["sstore"]["update"]["gas"] + st["sstore"]["noop_or_dirty"]["gas"]
    cold = 2_100 * len(st.get("cold_sloads", ()))
    callees = {f["call"].split(".")[0] for f in b["frames"] if f["depth"] > 0}
    calls = 2_600 * len(callees)
    logs = sum(v["gas"] for k, v in st["opcodes"].items() if k.startswith("LOG"))
    spent = b["gas_used"]
    refund = min(st.get("refund_counter", 0), (spent + st.get("refund_counter", 0)) // 5)
    floor = b["intrinsic"] + new + writes + cold + calls + logs - refund
    return {
        "intrinsic": b["intrinsic"],
        "new_slots": st["sstore"]["new_slot"]["count"],
        "new": new,
        "writes": writes,
        "cold": cold,
        "calls": calls,
        "logs": logs,
        "refund": refund,
        "floor": floor,
        "rest": spent - floor,
    }


def _floor_table(gas: dict[str, Any], breakdowns: dict[str, Any]) -> list[str]:
    """The floor of each peer row over its goal, from its traced breakdown."""
    rows = [(label, key, goal) for label, key, _peer, goal in PEER_ROWS if key in breakdowns]
    over = [(label, key, goal) for label, key, goal in rows if gas.get(key, 0) > goal]
    if not over:
        return []
    out = [
        "Rows over their goal, split by `storage_floor` (bench/report.py) from the step trace: what "
        "the transaction pays for state and logs alone (intrinsic cost, every SSTORE as charged, each "
        "cold SLOAD 2,100, the first call into each other contract 2,600, the LOG opcodes, less the "
        "refund), and the rest (computation, memory, warm reads, `ecrecover`, repeated calls). A row "
        "whose floor is over its goal cannot get there without storing less.",
        "",
        "| key | measured | goal | intrinsic | new slots | other SSTOREs | cold SLOADs | first calls "
        "| logs | refund | floor | rest | floor ≤ goal |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for _label, key, goal in over:
        f = storage_floor(breakdowns[key])
        out.append(
            f"| `gas.{key}` | {_fmt(gas[key])} | {goal:,} | {f['intrinsic']:,} | "
            f"{f['new_slots']} × 20,000 = {f['new']:,} | {f['writes']:,} | {f['cold']:,} | {f['calls']:,} "
            f"| {f['logs']:,} | −{f['refund']:,} | {f['floor']:,} | {f['rest']:,} | {_met(f['floor'] <= goal)} |"
        )
    out.append("")
    return out


def write_doc(path: Path, table: str) -> None:
    """Replaces what is between the markers (appends the markers if the doc has none)."""
    text = path.read_text() if path.exists() else ""
    block = f"{START}\n{table}\n{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: block, text, count=1, flags=re.S)
    else:
        text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
