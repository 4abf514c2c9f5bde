"""Batch liquidation, `liquidateMany(accounts)` (docs/design.md §4b).

Default market: IM 10 %, MM 5 %, keeper reward 1 %, insurance fee 1 %, band 5 %, no trading fees,
a 6-decimal collateral; every call in lockstep with the model (`System`), whose entries the
`Liquidated` / `LiquidationSkipped` events must follow in order.
"""

from __future__ import annotations

import pytest

from backstop.units import WAD
from tests.unit.liquidation.helpers import observables, rejected

PRICE = 2000 * WAD
TOKEN = 10**6


@pytest.fixture
def erin(accounts):
    return accounts[6]


@pytest.fixture
def three_longs(system, eth, alice, bob, carol, dave):
    """bob, carol and dave long 1 ETH at 2,000 with 250, 240 and 1,000 of margin; alice short 3.
    At 1,800: bob E = 50, carol E = 40 (both < MMR = 90), dave E = 800 (healthy)."""
    system.deposit(alice, 20_000 * TOKEN)
    for who, margin in ((bob, 250), (carol, 240), (dave, 1_000)):
        system.deposit(who, margin * TOKEN)
        system.trade(who, alice, eth, WAD, PRICE)
    system.set_price(eth, 1800 * WAD)
    return eth


def test_batch_liquidates_in_order_and_returns_the_count(
    system, three_longs, alice, bob, carol, dave, keeper
):
    eth = three_longs
    assert system.engine.liquidateMany.call([bob.address, carol.address], sender=keeper) == 2

    result = system.liquidate_many([bob, carol], keeper)

    # Each: N = 1,800, K = 18; bob's fee 18 (keeps 14), carol's 18 (keeps 4).
    assert [e["account"].lower() for e in result["liquidated"]] == [
        bob.address.lower(),
        carol.address.lower(),
    ]
    assert [e["keeper_reward"] for e in result["liquidated"]] == [18 * WAD, 18 * WAD]
    assert [system.vault.marginOf(w) for w in (bob, carol)] == [14 * WAD, 4 * WAD]
    assert system.engine.positionOf(keeper, eth) == (2 * WAD, 3_600 * WAD)
    assert result["skipped"] == []
    system.check(alice, bob, carol, dave, keeper)


def test_batch_skips_healthy_flat_and_repeated_accounts(
    system, three_longs, alice, bob, carol, dave, erin, keeper
):
    system.deposit(erin, 70 * TOKEN)  # flat
    result = system.liquidate_many([bob, dave, bob, erin, carol], keeper)

    assert [e["account"].lower() for e in result["liquidated"]] == [
        bob.address.lower(),
        carol.address.lower(),
    ]
    # dave: E = 800, MMR = 90; bob again: flat with 14 left; erin: flat with 70.
    assert [(a.lower(), e, m) for a, e, m in result["skipped"]] == [
        (dave.address.lower(), 800 * WAD, 90 * WAD),
        (bob.address.lower(), 14 * WAD, 0),
        (erin.address.lower(), 70 * WAD, 0),
    ]
    skipped = [log for log in result["receipt"].events if log.event_name == "LiquidationSkipped"]
    assert [(log.account, log.equity, log.maintenanceMargin) for log in skipped] == [
        (dave.address, 800 * WAD, 90 * WAD),
        (bob.address, 14 * WAD, 0),
        (erin.address, 70 * WAD, 0),
    ]
    system.check(alice, bob, carol, dave, erin, keeper)


def test_batch_of_only_healthy_accounts_liquidates_nobody(system, three_longs, alice, dave, erin, keeper):
    system.deposit(erin, 70 * TOKEN)
    before = observables(system, alice, dave, erin, keeper)
    assert system.engine.liquidateMany.call([dave.address, erin.address], sender=keeper) == 0
    result = system.liquidate_many([dave, erin], keeper)
    assert result["liquidated"] == []
    assert observables(system, alice, dave, erin, keeper) == before


def test_racing_keeper_does_not_waste_the_batch(system, three_longs, alice, bob, carol, dave, erin, keeper):
    """erin liquidates bob first; the keeper's batch still liquidates carol and skips bob."""
    system.deposit(erin, 10_000 * TOKEN)
    system.liquidate(bob, erin)
    result = system.liquidate_many([bob, carol], keeper)
    assert [e["account"].lower() for e in result["liquidated"]] == [carol.address.lower()]
    assert [a.lower() for a, *_ in result["skipped"]] == [bob.address.lower()]
    system.check(alice, bob, carol, dave, erin, keeper)


def test_liquidator_margin_is_checked_once_at_the_end(system, eth, alice, bob, carol, dave, erin):
    """A long and a short at 1,790: erin (100 of margin) cannot take the long alone (IMR 179 >
    100 + 17.9), but the batch of both nets her to flat, and only the end state is checked."""
    system.deposit(dave, 20_000 * TOKEN)
    system.deposit(alice, 250 * TOKEN)
    system.trade(alice, dave, eth, WAD, PRICE)  # alice long 1 at 2,000
    system.set_price(eth, 1700 * WAD)
    system.deposit(bob, 170 * TOKEN)
    system.trade(dave, bob, eth, WAD, 1700 * WAD)  # bob short 1 at 1,700
    system.set_price(eth, 1790 * WAD)  # alice E = 40, bob E = 80, both < MMR = 89.5
    system.deposit(erin, 100 * TOKEN)

    rejected(
        system.liquidate(alice, erin),
        "InsufficientMargin",
        erin.address,
        117_900_000_000_000_000_000,
        179 * WAD,
    )
    result = system.liquidate_many([alice, bob], erin)
    assert len(result["liquidated"]) == 2
    # erin: 100 + 17.9 + 17.9, flat.
    assert system.vault.marginOf(erin) == 135_800_000_000_000_000_000
    assert list(system.engine.marketsOf(erin)) == []
    system.check(alice, bob, dave, erin)


def test_batch_with_a_bankrupt_account_runs_its_waterfall(
    system, three_longs, alice, bob, carol, dave, keeper
):
    eth = three_longs
    system.set_price(eth, 1700 * WAD)  # bob E = −50, carol E = −60: both bankrupt; fund empty
    result = system.liquidate_many([bob, carol], keeper)
    # bob: D = 50 + 17 = 67; carol: D = 60 + 17 = 77; all socialized to alice's short.
    assert [e["deficit"] for e in result["liquidated"]] == [67 * WAD, 77 * WAD]
    assert [e["socialized"] for e in result["liquidated"]] == [67 * WAD, 77 * WAD]
    # ΔL = ⌈67/3⌉ + ⌈77/3⌉ per unit (rounded up in wei, so winners are charged in full): alice's 3
    # owe 144 and 3 wei.
    assert system.engine.lossIndexOf(eth) == (0, 22_333_333_333_333_333_334 + 25_666_666_666_666_666_667)
    assert system.engine.pendingLossOf(alice) == 144 * WAD + 3
    system.check(alice, bob, carol, dave, keeper)


# --- bad input: each refused with its error, nothing moved ------------------------------------------


def test_empty_batch_is_refused(system, three_longs, alice, bob, keeper):
    before = observables(system, alice, bob, keeper)
    rejected(system.liquidate_many([], keeper), "EmptyBatch")
    assert observables(system, alice, bob, keeper) == before


def test_batch_listing_the_caller_is_refused(system, three_longs, alice, bob, carol, keeper):
    before = observables(system, alice, bob, carol, keeper)
    rejected(system.liquidate_many([bob, keeper, carol], keeper), "SelfLiquidation", keeper.address)
    assert observables(system, alice, bob, carol, keeper) == before  # bob was not liquidated either


def test_liquidator_short_of_initial_margin_at_the_end_is_refused(
    system, three_longs, alice, bob, carol, erin
):
    """erin has 200: one ETH (IMR 180 ≤ 218) fits, two (IMR 360 > 236) do not: the whole batch is
    refused and bob, liquidated first, is back as he was."""
    system.deposit(erin, 200 * TOKEN)
    before = observables(system, alice, bob, carol, erin)
    rejected(
        system.liquidate_many([bob, carol], erin),
        "InsufficientMargin",
        erin.address,
        236 * WAD,
        360 * WAD,
    )
    assert observables(system, alice, bob, carol, erin) == before
    system.liquidate_many([bob], erin)
    system.check(alice, bob, carol, erin)
