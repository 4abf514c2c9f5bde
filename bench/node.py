"""A local anvil for a benchmark, and Ape connected to it.

The benchmarks start anvil themselves (the npm build the project pins) instead of letting Ape's
test provider start it: Ape always passes ``--steps-tracing``, which records every EVM step and
makes a 250k-gas trade about 25 times slower to mine (≈ 10 instead of ≈ 240 per second). Gas is
the same either way. The gas benchmarks run on an anvil *with* step tracing (they send few
transactions and use the step traces for the storage breakdown); the socialization and keeper
benchmarks run on one without it, like a real node.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import requests

ANVIL_FLAGS = ["--hardfork", "cancun", "--block-base-fee-per-gas", "0", "--gas-price", "0", "--silent"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def anvil_version() -> str:
    exe = shutil.which("anvil")
    if exe is None:
        return "not found"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0].strip() if out else "unknown"


@contextlib.contextmanager
def anvil(*, steps_tracing: bool = False, startup_timeout: float = 90.0) -> Iterator[str]:
    """Starts ``anvil`` on a free port (waiting up to ``startup_timeout`` s for its RPC, generous
    on a busy machine); yields its URL; stops it on exit."""
    exe = shutil.which("anvil")
    if exe is None:
        raise RuntimeError("anvil is not on PATH (run `make install`, or add node_modules/.bin)")
    port = _free_port()
    extra = shlex.split(os.environ.get("BENCH_ANVIL_FLAGS", ""))  # for experiments; recorded in meta
    cmd = [exe, "--port", str(port), *ANVIL_FLAGS, *(["--steps-tracing"] if steps_tracing else []), *extra]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
                if requests.post(uri, json=body, timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"anvil did not start on port {port}")
            time.sleep(0.2)
        yield uri
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def ape_on(uri: str) -> Iterator[object]:
    """Ape's ``ethereum:local:foundry`` provider connected to the anvil at ``uri`` (not managed
    by Ape: it neither starts nor stops it)."""
    from ape import networks

    with networks.parse_network_choice("ethereum:local:foundry", provider_settings={"host": uri}) as provider:
        yield provider
