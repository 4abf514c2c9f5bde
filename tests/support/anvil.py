"""A long-lived anvil of a test's own, and ``ape run`` against it: for the tests that run the
commands as an operator does (deploy, keeper, populate, stress, forks).

Each anvil gets a free port (bound to 0, then released), is waited for until it answers, and is
stopped when the block ends, whatever the test did. Other sessions may run anvils on this
machine: a test never assumes a fixed port.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APE = Path(sys.executable).parent / "ape"
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def rpc(url: str, method: str, *params: object) -> object:
    """The ``result`` of ``method(params)`` (an ``error`` answer fails the test)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    assert "error" not in answer, (method, answer)
    return answer["result"]


def block_number(url: str) -> int:
    return int(rpc(url, "eth_blockNumber"), 16)


@contextlib.contextmanager
def anvil(*args: str, timeout: float = 30) -> Iterator[str]:
    """Starts ``anvil --port <free> --silent ARGS``, yields its URL once it answers, stops it."""
    port = free_port()
    node = subprocess.Popen([str(ANVIL), "--port", str(port), "--silent", *args])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not listening(port):
            assert node.poll() is None, f"anvil {args} exited with {node.returncode}"
            assert time.monotonic() < deadline, f"anvil {args} did not start"
            time.sleep(0.1)
        yield url
    finally:
        node.terminate()
        node.wait(timeout=30)


def ape_run(args: list[str], host: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    """``ape run ARGS`` in the repository with ``APE_FOUNDRY_HOST=host`` (and ``env``)."""
    return subprocess.run(
        [str(APE), "run", *args],
        cwd=ROOT,
        env={**os.environ, "APE_FOUNDRY_HOST": host, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
