"""The CI fuzz profile on anvil through Ape: the same machine and bytecode as the deep profile.

Pinned seed, bounded run (the first ``ANVIL_EXAMPLES`` examples of the CI profile, up to
``CI_STEPS_PER_EXAMPLE`` steps each), a full comparison after every step. The chain is Ape's test
anvil, driven over raw JSON-RPC (``backstop.chain.evm.RpcBackend``); Ape's per-test snapshot undoes it.
The pyrevm test runs the whole profile (``CI_EXAMPLES``) on the same bytecode at about ten times the
speed; this one holds the node's own EVM and RPC to the model, which a quarter of it shows as well.
"""

from __future__ import annotations

import pytest

from backstop.chain.evm import RpcBackend
from tests.fuzz.driver import run_ci
from tests.fuzz.world import World

#: A quarter of the CI profile's examples (about 1,280 steps).
ANVIL_EXAMPLES = 16


def test_ci_profile_on_anvil_matches_the_model(request, capsys):
    try:
        chain = request.getfixturevalue("chain")  # Ape's test plugin (absent under -p no:ape_test)
    except pytest.FixtureLookupError:
        pytest.skip("needs Ape's test chain: run under `ape test`")
    backend = RpcBackend(chain.provider.uri)
    try:
        result = run_ci(World(backend), max_examples=ANVIL_EXAMPLES)
    finally:
        backend.close()
    with capsys.disabled():
        print(f"\n{result.line}")
    if result.error is not None:
        raise result.error
    assert result.steps > 1_000
