"""The fuzz harness's own tables: the invariant IDs against docs/invariants.md, the action order the
pinned runs depend on, and the lens layout (against IBackstopLens's documentation, and its codec:
decode ∘ encode is the identity)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from tests.fuzz import invariants
from tests.fuzz.dsl import actions_of
from tests.fuzz.lens import (
    ACCOUNT_HEAD_WORDS,
    MARKET_WORDS,
    SYSTEM_WORDS,
    AccountSnap,
    MarketSnap,
    Snapshot,
    decode_snapshot,
    encode_snapshot_words,
    snapshot_to_words,
    snapshot_words,
)
from tests.fuzz.machine import BackstopMachine

DOCS = Path(__file__).resolve().parents[2] / "docs" / "invariants.md"


def documented_ids() -> list[str]:
    """The IDs of docs/invariants.md's tables (the first cell of each row)."""
    return re.findall(r"^\| `(INV-[A-Z-]+)` \|", DOCS.read_text(), flags=re.MULTILINE)


def test_every_invariant_constant_is_documented_and_vice_versa():
    constants = {name: value for name, value in vars(invariants).items() if name.startswith("INV_")}
    assert all(value == name.replace("_", "-") for name, value in constants.items())
    assert list(invariants.DESCRIPTIONS) == list(constants.values())
    documented = documented_ids()
    assert len(documented) == len(set(documented))
    assert documented == list(invariants.DESCRIPTIONS)  # same IDs, same order
    assert all(d and "\n" not in d for d in invariants.DESCRIPTIONS.values())


def test_every_assertion_of_the_machine_names_an_invariant_constant():
    """No invariant ID written inline in the machine: every one goes through its constant."""
    here = Path(__file__).resolve().parent
    for path in [here / "core.py", here / "compare.py", *sorted((here / "rules").glob("*.py"))]:
        assert '"INV-' not in path.read_text(), path.name


def test_the_action_order_is_the_one_the_pinned_runs_were_drawn_with():
    """Both drivers sample actions by index into this order: changing it changes every pinned run
    (the CI seed, the regression programs drawn from it, ``tools/mutation.py``)."""
    assert [(name, weight) for name, weight, _ in actions_of(BackstopMachine)] == [
        ("deposit", 3),
        ("withdraw", 4),
        ("trade", 10),
        ("fill_resting", 4),
        ("cancel", 1),
        ("raise_nonce", 1),
        ("move_price", 5),
        ("tip", 3),
        ("feed_age", 1),
        ("advance_time", 2),
        ("wait_for_exit", 3),
        ("liquidate", 2),
        ("liquidate_position", 3),
        ("liquidate_many", 3),
        ("keeper_batch", 2),
        ("keeper", 6),
        ("settle", 2),
        ("stake", 2),
        ("request_unstake", 3),
        ("unstake", 3),
        ("fund_withdraw", 3),
        ("donate", 1),
        ("cancel_unstake", 2),
        ("transfer_shares", 1),
        ("approve_shares", 1),
        ("set_operator", 1),
        ("schedule_update", 1),
        ("execute_update", 2),
        ("guard_market", 1),
        ("pause", 2),
        ("fill_order", 3),
        ("sweep_to_fund", 1),
    ]


def _value(rng: random.Random) -> int:
    kind = rng.randrange(4)
    if kind == 0:
        return 0
    if kind == 1:
        return rng.randrange(2)
    bits = rng.choice((8, 64, 127, 255))
    return rng.randrange(-(2**bits), 2**bits)


def random_snapshot(rng: random.Random, n_markets: int, n_accounts: int) -> Snapshot:
    markets = [MarketSnap(*(_value(rng) for _ in range(MARKET_WORDS))) for _ in range(n_markets)]
    accounts = []
    for _ in range(n_accounts):
        held = rng.sample(range(n_markets), rng.randint(0, n_markets))
        head = [_value(rng) for _ in range(ACCOUNT_HEAD_WORDS - 1)] + [len(held)]
        sizes = [_value(rng) for _ in range(n_markets)]
        notionals = [_value(rng) for _ in range(n_markets)]
        accounts.append(AccountSnap(*head, held, sizes, notionals))
    system = [_value(rng) for _ in range(SYSTEM_WORDS - 1)] + [n_markets]
    return Snapshot(*system, markets, accounts)


@pytest.mark.parametrize("seed", range(40))
def test_lens_layout_round_trips(seed):
    rng = random.Random(seed)
    snap = random_snapshot(rng, rng.randint(0, 5), rng.randint(0, 9))
    words = snapshot_to_words(snap)
    n = len(snap.markets)
    assert len(words) == SYSTEM_WORDS + MARKET_WORDS * n + sum(
        ACCOUNT_HEAD_WORDS + len(a.markets) + 2 * n for a in snap.accounts
    )
    raw = encode_snapshot_words(words)
    assert snapshot_words(raw) == words
    assert decode_snapshot(raw, len(snap.accounts)) == snap
    assert decode_snapshot(words, len(snap.accounts)) == snap


INTERFACE = Path(__file__).resolve().parents[2] / "contracts" / "periphery" / "IBackstopLens.sol"
#: Where the Python names of tests/fuzz/lens.py differ from the Solidity ones (camelCase aside).
SOLIDITY_NAMES = {
    "pending": "pendingLoss",
    "imr": "initialMargin",
    "mmr": "maintenanceMargin",
    "free": "freeCollateral",
    "wallet": "walletTokens",
    "market_count": "marketCount",
}


def _solidity_name(python_name: str) -> str:
    head, *rest = SOLIDITY_NAMES.get(python_name, python_name).split("_")
    return head + "".join(part.title() for part in rest)


def test_lens_layout_matches_the_interface_documentation():
    """The named tuples of tests/fuzz/lens.py list the words in the order IBackstopLens documents
    for ``snapshotWords``: ``parts``, then ``SystemView``'s fields, the market fields, the account
    fields (ending with ``k``)."""
    source = INTERFACE.read_text()
    system = re.search(r"struct SystemView \{(.*?)\}", source, flags=re.DOTALL)
    assert system is not None
    system_fields = re.findall(r"^\s*\w+ (\w+);", system.group(1), flags=re.MULTILINE)
    assert ["parts", *system_fields] == [_solidity_name(f) for f in Snapshot._fields[:SYSTEM_WORDS]]
    natspec = " ".join(line.strip().removeprefix("///").strip() for line in source.splitlines())
    market = re.search(r"per market \(id order\), (\d+) words: `([^`]*)`", natspec)
    account = re.search(r"per account \(given order\): `([^`]*)`", natspec)
    assert market is not None and account is not None
    assert int(market.group(1)) == MARKET_WORDS
    assert market.group(2).split(", ") == [_solidity_name(f) for f in MarketSnap._fields]
    head = [_solidity_name(f) for f in AccountSnap._fields[:ACCOUNT_HEAD_WORDS]]
    assert account.group(1).split(", ") == [*head[:-1], "k"]
    assert (SYSTEM_WORDS, MARKET_WORDS, ACCOUNT_HEAD_WORDS) == (16, 6, 14)
