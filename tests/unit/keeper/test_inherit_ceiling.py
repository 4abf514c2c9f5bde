"""The inherit ceiling of the pass plan (``plan_pass(max_notional=)``, docs/keeper.md §"The inherit
ceiling"): the keeper's gross notional ``Σ ceil(|size|·P)`` after every planned action stays at or
under the ceiling; past it, partial steps that fit, or nothing (``unabsorbable reason=ceiling``).

The figures of test_capital_plan.py: P = 100, imRatio 10 %, mmRatio 5 %, K = 1 % of N, so a
position of ``q`` units has N = 100·q.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backstop.decisions import Batch, GasModel, PartialStep, Unabsorbable, gross_notional, plan_pass
from backstop.decisions.capital import step_reward, whole_reward
from backstop.units import WAD
from tests.unit.keeper.test_capital_plan import (
    BUFFER,
    KEEPER,
    RANDOM_TERMS,
    TERMS,
    A,
    B,
    Book,
    P,
    _book,
    _take,
    _wads,
    book,
    fair,
    keeper,
    market,
)


def plan(targets, me, ceiling, *, terms=TERMS):
    return plan_pass(
        targets,
        me,
        terms,
        buffer_ratio=BUFFER,
        min_step_notional=0,
        gas=GasModel(),
        max_notional=ceiling,
    )


# A solvent long of 10 units (N = 1,000, MMR = 50) with E = 40: liquidatable, too big for a
# ceiling of 600.
SOLVENT = book(A, 40 * WAD, m1=fair(10 * WAD))


def test_gross_notional_counts_both_sides_rounded_up():
    me = keeper(0, m1=fair(3 * WAD), m2=fair(-2 * WAD))
    assert gross_notional(me, TERMS) == 500 * WAD
    assert me.notional(TERMS) == 500 * WAD
    # 1 wei of base at 100 + 1 wei: ceil(1·(100e18 + 1) / 1e18) = 101 wei of notional.
    odd = keeper(0, m1=(-1, 0))
    assert gross_notional(odd, {1: market(1, price=P + 1)}) == 101


def test_without_a_ceiling_the_whole_account_is_taken():
    result = plan([SOLVENT], keeper(1_000 * WAD), None)
    assert result.actions == (Batch((A,), 140_000, (1,)),)
    assert result.ceiling_limited == ()
    assert gross_notional(result.keeper_after, TERMS) == 1_000 * WAD


def test_the_ceiling_turns_a_whole_takeover_into_the_partial_step_that_fits():
    result = plan([SOLVENT], keeper(1_000 * WAD), 600 * WAD)
    # 6 units (N = 600) is the largest step under the ceiling; the account, left with 4 units
    # (MMR 20) and E = 40 − K(6) = 34, is healthy, so the steps stop there.
    assert result.actions == (PartialStep(A, 1, 6 * WAD),)
    assert result.ceiling_limited == (A,)
    assert result.unabsorbable == ()
    assert gross_notional(result.keeper_after, TERMS) == 600 * WAD


def test_the_ceiling_binds_exactly_at_the_boundary():
    assert plan([SOLVENT], keeper(1_000 * WAD), 1_000 * WAD).actions == (Batch((A,), 140_000, (1,)),)
    result = plan([SOLVENT], keeper(1_000 * WAD), 1_000 * WAD - 1)
    [step] = result.actions
    assert isinstance(step, PartialStep)
    assert gross_notional(result.keeper_after, TERMS) <= 1_000 * WAD - 1
    assert result.ceiling_limited == (A,)


def test_a_keeper_at_its_ceiling_takes_nothing_more_and_says_why():
    me = keeper(10_000 * WAD, m2=fair(5 * WAD))  # N = 500 already
    bankrupt = book(B, -10 * WAD, m3=fair(1 * WAD))  # E = −10: whole or nothing
    result = plan([SOLVENT, bankrupt], me, 500 * WAD)
    assert result.actions == ()
    assert result.keeper_after == me
    assert result.unabsorbable == (
        Unabsorbable(B, -10 * WAD, 0, "ceiling"),
        Unabsorbable(A, 40 * WAD, 0, "ceiling"),
    )
    assert result.ceiling_limited == (B, A)


def test_capital_still_comes_first_in_the_reason():
    poor = keeper(5 * WAD)
    bankrupt = book(B, -10 * WAD, m3=fair(1 * WAD))
    [u] = plan([bankrupt], poor, 50 * WAD).unabsorbable
    assert u.reason == "capital"


def test_netting_lowers_the_notional_so_the_takeover_fits():
    me = keeper(1_000 * WAD, m1=fair(-8 * WAD))  # short 8: N = 800
    result = plan([SOLVENT], me, 800 * WAD)  # after the long 10: long 2, N = 200
    assert result.actions == (Batch((A,), 140_000, (1,)),)
    assert gross_notional(result.keeper_after, TERMS) == 200 * WAD


def test_a_negative_ceiling_is_refused():
    with pytest.raises(ValueError, match="max_notional"):
        plan([SOLVENT], keeper(1_000 * WAD), -1)


# --- property: the planned notional never exceeds the ceiling ------------------------------------------


@st.composite
def ceiling_passes(draw):
    markets = list(range(1, 11))
    targets = [_book(draw, f"0x{i:040x}", markets, _wads(-20, 100)) for i in range(draw(st.integers(1, 6)))]
    me = _book(draw, KEEPER, markets, _wads(0, 400))
    ceiling = draw(st.one_of(st.just(0), _wads(0, 4_000)))
    return targets, me, draw(st.sampled_from([0, WAD // 10])), ceiling


@settings(max_examples=200, deadline=None)
@given(ceiling_passes())
def test_replaying_the_plan_never_takes_the_keeper_past_the_ceiling(case):
    targets, me, buffer, ceiling = case
    result = plan_pass(
        targets,
        me,
        RANDOM_TERMS,
        buffer_ratio=buffer,
        min_step_notional=WAD,
        gas=GasModel(budget=400_000),
        max_notional=ceiling,
    )
    books = {b.account: b for b in targets}
    sim = me
    for action in result.actions:
        if isinstance(action, Batch):
            for account in action.accounts:
                target = books[account]
                for m, (size, _) in target.positions.items():
                    sim = _take(sim, m, size, RANDOM_TERMS[m].price, 0)
                reward = whole_reward(target, RANDOM_TERMS)
                sim = Book(sim.account, sim.margin + reward, sim.pending_loss, sim.positions)
                assert gross_notional(sim, RANDOM_TERMS) <= ceiling
            continue
        t = RANDOM_TERMS[action.market_id]
        size = books[action.account].positions[action.market_id][0]
        delta = action.size if size > 0 else -action.size
        sim = _take(sim, action.market_id, delta, t.price, step_reward(t, action.size))
        assert gross_notional(sim, RANDOM_TERMS) <= ceiling
    assert sim.positions == result.keeper_after.positions
    if result.actions:
        assert gross_notional(result.keeper_after, RANDOM_TERMS) <= ceiling
    else:
        assert result.keeper_after == me
    # Every account the ceiling held back is either stepped into or reported.
    untaken = {u.account for u in result.unabsorbable}
    stepped = {a.account for a in result.actions if isinstance(a, PartialStep)}
    assert set(result.ceiling_limited) <= untaken | stepped
