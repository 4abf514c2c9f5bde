"""The CI fuzz profile on anvil through Ape: the same machine and bytecode as the deep profile.

Pinned seed, bounded run (``tests.fuzz.driver.CI_EXAMPLES`` examples of up to
``CI_STEPS_PER_EXAMPLE`` steps), a full comparison after every step. The chain is Ape's test
anvil, driven over raw JSON-RPC (``backstop.chain.evm.RpcBackend``); Ape's per-test snapshot undoes it.
"""

from __future__ import annotations

import pytest

from backstop.chain.evm import RpcBackend
from tests.fuzz.driver import run_ci
from tests.fuzz.world import World


def test_ci_profile_on_anvil_matches_the_model(request, capsys):
    try:
        chain = request.getfixturevalue("chain")  # Ape's test plugin (absent under -p no:ape_test)
    except pytest.FixtureLookupError:
        pytest.skip("needs Ape's test chain: run under `ape test`")
    backend = RpcBackend(chain.provider.uri)
    try:
        result = run_ci(World(backend))
    finally:
        backend.close()
    with capsys.disabled():
        print(f"\n{result.line}")
    if result.error is not None:
        raise result.error
    assert result.steps > 1_000
