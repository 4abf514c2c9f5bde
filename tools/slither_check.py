"""Runs Slither over contracts/ through the repository's compiler shim and summarizes it.

Prints one line, ``slither: <h> high, <m> medium, <l> low, <i> informational``, then the high and
medium findings if any, and exits 1 if there are high or medium findings outside
``contracts/mocks/`` (test doubles are excluded). Low and informational findings are triaged in
docs/security.md. Usage: ``python tools/slither_check.py [--list]`` (``--list`` prints them all).
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_slither() -> list[dict]:
    slither = shutil.which("slither") or str(Path(sys.executable).parent / "slither")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "slither.json"  # Slither refuses to overwrite an existing file
        cmd = [
            slither,
            "contracts/",
            "--solc",
            str(ROOT / "tools" / "solc" / "solc-v0.8.28"),
            "--solc-standard-json",
            "--solc-remaps",
            "@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/",
            "--filter-paths",
            "node_modules|contracts/mocks",
            "--exclude-dependencies",
            "--json",
            str(out),
        ]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=os.environ.copy())
        if not out.exists():
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit("slither: did not produce a report")
        report = json.loads(out.read_text())
    if not report.get("success"):
        raise SystemExit(f"slither: failed: {report.get('error')}")
    shutil.rmtree(ROOT / "crytic-export", ignore_errors=True)
    return report.get("results", {}).get("detectors", [])


def main() -> int:
    findings = run_slither()
    counts = collections.Counter(f["impact"] for f in findings)
    print(
        f"slither: {counts['High']} high, {counts['Medium']} medium, "
        f"{counts['Low']} low, {counts['Informational'] + counts['Optimization']} informational"
    )
    listed = findings if "--list" in sys.argv else [f for f in findings if f["impact"] in ("High", "Medium")]
    for f in listed:
        print(f"  [{f['impact']}] {f['check']}: {f['description'].splitlines()[0]}")
    return 1 if counts["High"] or counts["Medium"] else 0


if __name__ == "__main__":
    sys.exit(main())
