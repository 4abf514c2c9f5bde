"""The capital-aware pass plan (backstop.decisions.capital, docs/keeper.md §"How the keeper sizes its
steps and batches"), with hand-computed WAD figures.

Unless a test says otherwise every market trades at P = 100, imRatio 10 %, mmRatio 5 %,
keeperRewardRatio 1 %, no cap that binds, no insurance fee. So a position of ``q`` base units
(WAD) has N = 100·q, IMR = 10·q, MMR = 5·q, K = q, and a takeover at fair value (openNotional =
size·P) realizes nothing; with buffer 10 % a keeper needs F' ≥ IMR'/10.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backstop.decisions import (
    Batch,
    Book,
    GasModel,
    MarketTerms,
    PartialStep,
    Skip,
    Unabsorbable,
    plan_pass,
    split_batch,
    valuation,
)
from backstop.decisions.capital import PARTIAL_SOLVENCY_SLACK, step_reward, whole_reward
from backstop.units import WAD

A = "0x" + "aa" * 20
B = "0x" + "bB" * 20
C = "0x" + "cc" * 20
D = "0x" + "0d" * 20
KEEPER = "0x" + "ee" * 20
P = 100 * WAD
BUFFER = WAD // 10


def market(m: int, *, price: int = P, cap: int = 10**9 * WAD, fee: int = 0) -> MarketTerms:
    return MarketTerms(
        market_id=m,
        price=price,
        im_ratio=WAD // 10,
        mm_ratio=WAD // 20,
        keeper_reward_ratio=WAD // 100,
        keeper_reward_cap=cap,
        insurance_fee_ratio=fee,
    )


TERMS = {m: market(m) for m in range(1, 10)}


def fair(size: int, price: int = P) -> tuple[int, int]:
    """A position opened at ``price``: openNotional = size·P (exact here), u = 0."""
    return size, size * price // WAD


def book(account: str, margin: int, **positions: tuple[int, int]) -> Book:
    return Book(account, margin, 0, {int(m[1:]): pos for m, pos in positions.items()})


def keeper(margin: int, **positions: tuple[int, int]) -> Book:
    return book(KEEPER, margin, **positions)


DEFAULT_GAS = GasModel()


def plan(targets, me, *, terms=TERMS, min_step=0, gas=DEFAULT_GAS, max_markets=8, buffer=BUFFER):
    return plan_pass(
        targets, me, terms, buffer_ratio=buffer, max_markets=max_markets, min_step_notional=min_step, gas=gas
    )


# --- valuation and rewards --------------------------------------------------------------------------


def test_valuation_rounds_like_the_engine():
    # short 7 wei at P = 0.5: size·P = −3.5 → floor −4, N = ceil(3.5) = 4; u = −4 − (−3) = −1;
    # IMR = ceil(4·0.3) = 2, MMR = ceil(4·0.1) = 1; collateral = 10 − 2 = 8, E = 7, F = min(8, 7) − 2 = 5.
    terms = {1: MarketTerms(1, WAD // 2, 3 * WAD // 10, WAD // 10, 0, 1, 0)}
    b = Book(A, 10, 2, {1: (-7, -3)})
    v = valuation(b, terms)
    assert (v.collateral, v.equity, v.imr, v.mmr, v.free_collateral) == (8, 7, 2, 1, 5)
    assert (b.equity(terms), b.imr(terms), b.mmr(terms), b.free_collateral(terms)) == (7, 2, 1, 5)
    # A gain does not count as free collateral: min(margin − pendingLoss, E).
    rich = Book(A, 10, 0, {1: (8, -10)})  # u = 4 + 10 = 14, E = 24, IMR = ceil(4·0.3) = 2
    assert rich.free_collateral(terms) == 10 - 2
    with pytest.raises(ValueError, match="size 0"):
        Book(A, 0, 0, {1: (0, 5)})
    with pytest.raises(ValueError, match="no terms for market 2"):
        valuation(Book(A, 0, 0, {2: (1, 1)}), terms)


def test_rewards_sum_per_market_rounded_down_and_cap():
    # liquidate: K = min(Σ floor(N_m·1 %), Σ cap_m) = min(10 + 10, 3 + 4) = 7.
    terms = {1: market(1, cap=3 * WAD), 2: market(2, cap=4 * WAD)}
    assert whole_reward(book(A, 0, m1=fair(10 * WAD), m2=fair(10 * WAD)), terms) == 7 * WAD
    assert whole_reward(book(A, 0, m1=fair(10 * WAD), m2=fair(10 * WAD)), TERMS) == 20 * WAD
    # liquidatePosition: N = ceil(q·P) = ceil(199/100) = 2 for q = 199 wei at P = 0.01, K = floor(2 %·2) = 0
    # (and for 50: N = 0.5, K = 0.01)
    t = MarketTerms(1, WAD // 100, 0, 0, 2 * WAD // 100, WAD, 0)
    assert step_reward(t, 199) == 0 and step_reward(t, 50 * WAD) == WAD // 100
    assert step_reward(market(1, cap=3 * WAD), 10 * WAD) == 3 * WAD  # min(10, 3)


# --- whole takeovers and batches ----------------------------------------------------------------------


def test_whole_takeovers_within_capital_form_one_batch():
    a = book(A, 20 * WAD, m1=fair(10 * WAD))  # E = 20, MMR = 50: −30
    b = book(B, 40 * WAD, m1=fair(10 * WAD))  # −10
    result = plan([b, a], keeper(1000 * WAD))
    # after A: margin 1000 + 10, long 10 (IMR 100), F = 910 ≥ 10; after B: margin 1020, IMR 200.
    assert result.actions == (Batch((A, B), 60_000 + 2 * 80_000, (1, 1)),)
    assert result.keeper_after == keeper(1020 * WAD, m1=(20 * WAD, 2000 * WAD))
    assert result.unabsorbable == result.skipped == result.skipped_self == ()


def test_buffer_binds_exactly_at_the_boundary():
    a = book(A, 20 * WAD, m1=fair(10 * WAD))  # E = 20, K = 10, IMR' = 100, buffer 10
    # margin 100: F' = 100 + 10 − 100 = 10 == 10 % of 100: accepted.
    assert plan([a], keeper(100 * WAD)).actions == (Batch((A,), 140_000, (1,)),)
    # 1 wei less: F' = 10 − 1 wei < 10, refused whole. A partial q keeps F' = M + q − 10q ≥ q:
    # q ≤ (100 − 1 wei)/10 → q = 10 − 1 wei (F' − buffer = 9 wei), and A keeps E − K = 10 + 1 wei.
    result = plan([a], keeper(100 * WAD - 1))
    assert result.actions == (PartialStep(A, 1, 10 * WAD - 1),)
    after = result.keeper_after
    assert after == keeper(100 * WAD - 1 + 10 * WAD - 1, m1=(10 * WAD - 1, 1000 * WAD - 100))
    assert after.free_collateral(TERMS) - after.imr(TERMS) // 10 == 9


def test_batches_are_cut_at_the_gas_budget():
    gas = GasModel(budget=300_000)
    # E − MMR: A −30, B −60 (two markets, 80k + 45k), C −20, D −10 (one market each, 80k)
    a = book(A, 20 * WAD, m1=fair(10 * WAD))
    b = book(B, 40 * WAD, m1=fair(10 * WAD), m2=fair(10 * WAD))
    c = book(C, 30 * WAD, m1=fair(10 * WAD))
    d = book(D, 40 * WAD, m1=fair(10 * WAD))
    result = plan([a, b, c, d], keeper(10_000 * WAD), gas=gas)
    # B, A: 60k + 125k + 80k = 265k; + C = 345k > 300k → cut; C, D: 60k + 160k = 220k.
    assert result.actions == (Batch((B, A), 265_000, (2, 1)), Batch((C, D), 220_000, (1, 1)))


def test_an_account_over_the_budget_on_its_own_goes_alone():
    gas = GasModel(budget=200_000)
    a = book(A, 0, m1=fair(10 * WAD))  # −50
    b = book(B, 100 * WAD, m1=fair(10 * WAD), m2=fair(10 * WAD), m3=fair(10 * WAD))  # −50, after A
    c = book(C, 40 * WAD, m1=fair(10 * WAD))  # −10
    result = plan([c, b, a], keeper(10_000 * WAD), gas=gas)
    # A 140k; A + B = 370k > 200k; B alone: 60k + 80k + 2·45k = 230k > budget, still planned; then C.
    assert result.actions == (
        Batch((A,), 140_000, (1,)),
        Batch((B,), 230_000, (3,)),
        Batch((C,), 140_000, (1,)),
    )


def test_split_batch_halves_with_their_own_gas_and_refuses_one_account():
    gas = GasModel()
    batch = Batch((A, B, C), 60_000 + 80_000 + 125_000 + 170_000, (1, 2, 3))
    first, second = split_batch(batch, gas)
    assert first == Batch((A, B), 265_000, (1, 2))
    assert second == Batch((C,), 230_000, (3,))
    assert split_batch(first, gas) == (Batch((A,), 140_000, (1,)), Batch((B,), 185_000, (2,)))
    with pytest.raises(ValueError, match="cannot be split"):
        split_batch(second, gas)
    with pytest.raises(ValueError):
        Batch((A,), 1, (1, 2))


# --- partial steps ------------------------------------------------------------------------------------


def test_partial_step_takes_the_largest_market_first():
    # A: m1 long 10 (N 1000), m2 long 20 (N 2000), margin 100: E = 100 < MMR 150, solvent.
    a = book(A, 100 * WAD, m1=fair(10 * WAD), m2=fair(20 * WAD))
    # Whole: F' = 100 + 30 − 300 < 30. m2 first: F' = 100 + q − 10q ≥ q → q = 10, F' == buffer; then
    # m1 has no room (−9q ≥ q) and is left.
    result = plan([a], keeper(100 * WAD))
    assert result.actions == (PartialStep(A, 2, 10 * WAD),)
    assert result.keeper_after == keeper(110 * WAD, m2=(10 * WAD, 1000 * WAD))
    assert result.unabsorbable == ()


def test_second_market_gets_a_step_with_the_capacity_left():
    a = book(A, 30 * WAD, m1=fair(10 * WAD), m2=fair(20 * WAD))  # E 30 < MMR 150
    # m2 whole position (q ≤ 25 by capital, 20 held): K 20 → A's E = 10 < MMR 50, still liquidatable.
    # keeper: margin 270, IMR 200, F 70. m1: 70 + q − 10q ≥ 20 + q → q = 5 (A's bound: 10 − q ≥ 3 wei).
    result = plan([a], keeper(250 * WAD))
    assert result.actions == (PartialStep(A, 2, 20 * WAD), PartialStep(A, 1, 5 * WAD))
    after = result.keeper_after
    assert after == keeper(275 * WAD, m2=(20 * WAD, 2000 * WAD), m1=(5 * WAD, 500 * WAD))
    assert (after.free_collateral(TERMS), after.imr(TERMS)) == (25 * WAD, 250 * WAD)


def test_the_account_must_stay_solvent_after_the_steps_reward():
    a = book(A, 5 * WAD, m1=fair(10 * WAD))  # E 5, K(10) = 10 > E
    # Whole: F' = 99 + 10 − 100 < 10. Keeper's bound q ≤ 9.9; A's: 5 − K(q) ≥ 3 wei → q = 5 − 3 wei.
    result = plan([a], keeper(99 * WAD))
    assert result.actions == (PartialStep(A, 1, 5 * WAD - PARTIAL_SOLVENCY_SLACK),)
    # E = 2 wei: not even one step's reward of 0 leaves 3 wei.
    tiny = book(A, 2, m1=fair(10 * WAD))
    assert plan([tiny], keeper(99 * WAD)).unabsorbable == (Unabsorbable(A, 2, 1 * WAD, "capital"),)


def test_steps_stop_once_the_account_is_healthy_and_its_fee_is_deducted():
    # A: m2 long 20 (N 2000), m1 long 0.1 (N 10); margin 100: E 100 < MMR 100.5. Keeper 201 − 1 wei:
    # whole F' = 201 − 1 wei + 20.1 − 201 < 20.1. m2: q ≤ 20.1 − ε, 20 held → K 20, keeper F 21 − 1 wei.
    a = book(A, 100 * WAD, m1=fair(WAD // 10), m2=fair(20 * WAD))
    me = keeper(201 * WAD - 1)
    # No fee: A keeps E 80 ≥ MMR 0.5, healthy: no step in m1 (which had room for 0.1 − 1 wei).
    assert plan([a], me).actions == (PartialStep(A, 2, 20 * WAD),)
    # Fee 3.9975 % in m2: min(79.95, 80) → A's E = 0.05 < 0.5; m1: the keeper could take
    # 1 − 1 wei − 9q ≥ q → 0.1 − 1 wei, A's E − K(q) ≥ 3 wei binds: q = 0.05 − 3 wei.
    terms = {1: market(1), 2: market(2, fee=39_975 * WAD // 1_000_000)}
    assert plan([a], me, terms=terms).actions == (
        PartialStep(A, 2, 20 * WAD),
        PartialStep(A, 1, WAD // 20 - PARTIAL_SOLVENCY_SLACK),
    )


def test_netting_against_the_keepers_opposite_position_lets_it_take_more():
    a = book(A, 50 * WAD, m1=fair(20 * WAD))  # E 50 < MMR 100
    # Keeper short 5 (IMR 50), margin 60. q ≤ 5 closes the short; beyond, long q − 5:
    # 60 + q − 10(q − 5) ≥ q − 5 → q ≤ 11.5. Flat with the same margin: 60 − 9q ≥ q → q ≤ 6.
    result = plan([a], keeper(60 * WAD, m1=fair(-5 * WAD)))
    assert result.actions == (PartialStep(A, 1, 11_500_000_000_000_000_000),)
    assert result.keeper_after == keeper(71_500_000_000_000_000_000, m1=fair(6_500_000_000_000_000_000))
    assert plan([a], keeper(60 * WAD)).actions == (PartialStep(A, 1, 6 * WAD),)


def test_netting_realizes_the_keepers_gain_into_free_collateral():
    a = book(A, 50 * WAD, m1=fair(20 * WAD))
    # Keeper short 5 sold at 120 (openNotional −600, u = +100), margin 0: F = min(0, 100) − 50 < 0.
    # Closing the short realizes 100 into margin: 100 + q − 10(q − 5) ≥ q − 5 → q ≤ 15.5.
    result = plan([a], keeper(0, m1=(-5 * WAD, -600 * WAD)))
    assert result.actions == (PartialStep(A, 1, 15_500_000_000_000_000_000),)
    assert result.keeper_after == keeper(115_500_000_000_000_000_000, m1=fair(10_500_000_000_000_000_000))


def test_a_keeper_below_its_buffer_is_brought_back_only_by_the_netted_part():
    # Keeper short 5 sold at 120 (u = +100), margin −90: F = min(−90, 10) − 50. Feasible only from
    # q ≈ 4.6 (netting realizes 20 per unit) to 6.5 (10 + q − 10(q − 5) ≥ q − 5); a plain binary
    # search over [0, 8.5] would test 4.25, fail, and never find that window.
    a = book(A, 20 * WAD, m1=fair(17 * WAD // 2))  # E 20 < MMR 42.5
    result = plan([a], keeper(-90 * WAD, m1=(-5 * WAD, -600 * WAD)))
    assert result.actions == (PartialStep(A, 1, 6_500_000_000_000_000_000),)
    assert result.keeper_after == keeper(16_500_000_000_000_000_000, m1=fair(1_500_000_000_000_000_000))


def test_steps_below_the_minimum_notional_are_skipped():
    a = book(A, 20 * WAD, m1=fair(10 * WAD))
    # The step of the boundary test, q = 10 − 1 wei, has N = 1000 − 100 wei.
    assert plan([a], keeper(100 * WAD - 1), min_step=1000 * WAD - 100).actions == (
        PartialStep(A, 1, 10 * WAD - 1),
    )
    result = plan([a], keeper(100 * WAD - 1), min_step=1000 * WAD - 99)
    assert result.actions == ()
    # whole needs F' = 10 − 1 wei to reach 10: 1 wei more margin
    assert result.unabsorbable == (Unabsorbable(A, 20 * WAD, 1, "capital"),)
    assert result.keeper_after == keeper(100 * WAD - 1)


# --- the 9th market -----------------------------------------------------------------------------------

EIGHT = {f"m{m}": fair(WAD) for m in range(1, 9)}  # long 1 in markets 1..8: IMR 80


def test_a_ninth_market_refuses_the_whole_takeover_and_steps_into_a_held_market():
    a = book(A, 100 * WAD, m9=fair(20 * WAD), m8=fair(10 * WAD))  # E 100 < MMR 150
    # m9 (N 2000) comes first but needs a 9th slot; m8 (held): 920 + q − 10q ≥ 8 + q → q ≤ 91.2, 10 held.
    result = plan([a], keeper(1000 * WAD, **EIGHT))
    assert result.actions == (PartialStep(A, 8, 10 * WAD),)
    assert result.keeper_after.positions[8] == (11 * WAD, 1100 * WAD)
    assert 9 not in result.keeper_after.positions
    # With a slot free (7 markets held) the whole takeover goes through.
    seven = {k: v for k, v in EIGHT.items() if k != "m1"}
    assert plan([a], keeper(1000 * WAD, **seven)).actions == (Batch((A,), 185_000, (2,)),)


def test_no_slot_for_any_market_is_unabsorbable_for_market_slots():
    # Rich keeper: capital would suffice (need 0), only the slot is missing.
    solvent = book(A, 40 * WAD, m9=fair(10 * WAD))
    result = plan([solvent], keeper(1000 * WAD, **EIGHT))
    assert result.actions == ()
    assert result.unabsorbable == (Unabsorbable(A, 40 * WAD, 0, "market_slots"),)
    # Bankrupt (long 10 bought at 110: E = 50 − 100 = −50) and short of capital too: if slots
    # allowed, keeper margin 100 + 10, IMR 180, F' = −70 against 18: needs 88.
    bankrupt = book(A, 50 * WAD, m9=(10 * WAD, 1100 * WAD))
    result = plan([bankrupt], keeper(100 * WAD, **EIGHT))
    assert result.unabsorbable == (Unabsorbable(A, -50 * WAD, 88 * WAD, "market_slots"),)
    # Slots short and capital short, but the keeper holds one of the markets: capital is binding.
    mixed = book(A, 50 * WAD, m9=(10 * WAD, 1100 * WAD), m8=fair(WAD))
    result = plan([mixed], keeper(100 * WAD, **EIGHT))
    assert [(u.reason, u.capital_needed > 0) for u in result.unabsorbable] == [("capital", True)]


# --- bankrupt accounts ----------------------------------------------------------------------------------


def test_bankrupt_account_is_unabsorbable_with_the_exact_capital_needed():
    a = book(A, 50 * WAD, m1=(10 * WAD, 1100 * WAD))  # bought at 110: E = 50 − 100 = −50
    # keeper takes long 10 at 100 (u = 0), margin 50 + K 10, IMR 100: F' = −40, buffer 10 → 50 short.
    result = plan([a], keeper(50 * WAD))
    assert result.actions == ()
    assert result.unabsorbable == (Unabsorbable(A, -50 * WAD, 50 * WAD, "capital"),)
    # that much more margin and it goes whole (F' == buffer); 1 wei less and it does not
    assert plan([a], keeper(100 * WAD)).actions == (Batch((A,), 140_000, (1,)),)
    assert plan([a], keeper(100 * WAD - 1)).unabsorbable == (Unabsorbable(A, -50 * WAD, 1, "capital"),)


# --- targets, order and self ---------------------------------------------------------------------------


def test_keeper_healthy_and_flat_targets_are_left_out():
    me = Book(KEEPER.upper().replace("0X", "0x"), 0, 0, {1: fair(10 * WAD)})  # the keeper: E 0 < MMR 50
    healthy = book(B, 50 * WAD, m1=fair(10 * WAD))  # E == MMR: not liquidatable
    flat = book(C, -5 * WAD)
    a = book(A, 0, m1=fair(WAD))
    result = plan([me, healthy, flat, a, book(A, -99 * WAD, m1=fair(WAD))], keeper(1000 * WAD))
    assert result.skipped_self == (me,)
    assert result.skipped == (Skip(B, "healthy"), Skip(C, "no_position"))
    assert result.actions == (Batch((A,), 140_000, (1,)),)  # A's first entry only


def test_order_is_kept_and_a_partial_step_ends_a_batch():
    a = book(A, 0, m1=fair(20 * WAD))  # −100
    b = book(B, 10 * WAD, m1=fair(10 * WAD))  # −40
    c = book(C, 10 * WAD, m1=fair(-10 * WAD))  # −40, after B (0xbb… < 0xcc…)
    # A whole: margin 270, long 20 (IMR 200), F 70. B whole: 280 − 300 < 30; step 70 − 9q ≥ 20 + q →
    # q = 5: margin 275, long 25. C short 10 nets it: reduce realizes 1000 − 1000 = 0, margin 285, long 15.
    result = plan([c, b, a], keeper(250 * WAD))
    assert result.actions == (
        Batch((A,), 140_000, (1,)),
        PartialStep(B, 1, 5 * WAD),
        Batch((C,), 140_000, (1,)),
    )
    assert result.keeper_after == keeper(285 * WAD, m1=fair(15 * WAD))


def test_arguments_are_checked():
    with pytest.raises(ValueError):
        plan([], keeper(0), buffer=-1)
    with pytest.raises(ValueError):
        plan([], keeper(0), max_markets=0)
    empty = plan([], keeper(7))
    assert empty.actions == () and empty.keeper_after == keeper(7)


# --- property: the simulated keeper never goes below its buffer ----------------------------------------


def _ceil_wad(x: int, price: int) -> int:
    return -(-(x * price) // WAD)


def _fill(pos: tuple[int, int] | None, delta: int, price: int) -> tuple[int, int, int]:
    """docs/margin-math.md §"A fill", written again here for the replay."""
    s, n = pos or (0, 0)
    c = _ceil_wad(delta, price)
    if s == 0 or (s > 0) == (delta > 0):
        return s + delta, n + c, 0
    if abs(delta) < abs(s):
        k = -(-(n * abs(delta)) // abs(s))
        return s + delta, n - k, -c - k
    if abs(delta) == abs(s):
        return 0, 0, -c - n
    opened = delta + s
    return opened, _ceil_wad(opened, price), -_ceil_wad(-s, price) - n


def _take(me: Book, m: int, delta: int, price: int, reward: int) -> Book:
    positions = dict(me.positions)
    s, n, realized = _fill(positions.get(m), delta, price)
    positions.pop(m, None)
    if s:
        positions[m] = (s, n)
    return Book(me.account, me.margin + realized + reward, me.pending_loss, positions)


def _wads(low: int, high: int) -> st.SearchStrategy[int]:
    """Whole WADs in ``[low, high]`` plus up to one WAD of dust (hypothesis favours small integers,
    so drawing whole units first spreads the figures over the range)."""
    return st.builds(lambda whole, dust: whole * WAD + dust, st.integers(low, high), st.integers(0, WAD - 1))


SIZES = st.builds(lambda size, short: -size if short else size, _wads(0, 300), st.booleans()).filter(bool)
SKEWS = _wads(-5, 4)


def _book(draw, account: str, markets: list[int], margins: st.SearchStrategy[int]) -> Book:
    """A book of up to 4 (targets) or 8 (keeper) positions opened near the current prices."""
    most = 3 if account == KEEPER else 4
    chosen = draw(st.lists(st.sampled_from(markets), unique=True, max_size=most))
    positions = {}
    for m in chosen:
        size = draw(SIZES)
        positions[m] = (size, size * RANDOM_TERMS[m].price // WAD + draw(SKEWS))
    return Book(account, draw(margins), draw(st.integers(0, WAD)), positions)


RANDOM_TERMS = {
    m: MarketTerms(m, (m * 37 % 11 + 1) * WAD + m, WAD // 10, WAD // 20, WAD // 100, 3 * WAD, WAD // 200)
    for m in range(1, 11)
}


@st.composite
def passes(draw):
    markets = list(range(1, 11))
    target_margins = _wads(-20, 100)
    targets = [_book(draw, f"0x{i:040x}", markets, target_margins) for i in range(draw(st.integers(0, 6)))]
    me = _book(draw, KEEPER, markets, _wads(0, 400))
    return targets, me, draw(st.sampled_from([0, WAD // 10, WAD // 2])), draw(st.integers(1, 8))


def _check_buffer(me: Book, buffer: int) -> None:
    v = valuation(me, RANDOM_TERMS)
    assert v.free_collateral >= -(-(v.imr * buffer) // WAD)
    assert v.equity >= v.imr  # the engine's check follows


@settings(max_examples=200, deadline=None)
@given(passes())
def test_replaying_the_plan_never_takes_the_keeper_below_its_buffer(case):
    targets, me, buffer, max_markets = case
    result = plan_pass(
        targets,
        me,
        RANDOM_TERMS,
        buffer_ratio=buffer,
        max_markets=max_markets,
        min_step_notional=WAD,
        gas=GasModel(budget=400_000),
    )
    books = {b.account: b for b in targets}
    sim = me
    acted: set[str] = set()
    for action in result.actions:
        if isinstance(action, Batch):
            assert action.gas <= 400_000 or len(action.accounts) == 1
            for account in action.accounts:
                target = books[account]
                for m, (size, _) in target.positions.items():
                    sim = _take(sim, m, size, RANDOM_TERMS[m].price, 0)
                    assert len(sim.positions) <= max(max_markets, len(me.positions))
                reward = whole_reward(target, RANDOM_TERMS)
                sim = Book(sim.account, sim.margin + reward, sim.pending_loss, sim.positions)
                _check_buffer(sim, buffer)
                acted.add(account)
            continue
        t = RANDOM_TERMS[action.market_id]
        target = books[action.account]
        size = target.positions[action.market_id][0]
        reward = step_reward(t, action.size)
        assert 0 < action.size <= abs(size)
        assert -(-(action.size * t.price) // WAD) >= WAD  # min_step_notional
        assert target.equity(RANDOM_TERMS) - reward >= PARTIAL_SOLVENCY_SLACK
        assert target.equity(RANDOM_TERMS) < target.mmr(RANDOM_TERMS)  # still liquidatable
        sim = _take(sim, action.market_id, action.size if size > 0 else -action.size, t.price, reward)
        assert len(sim.positions) <= max(max_markets, len(me.positions))
        _check_buffer(sim, buffer)
        after = _take(target, action.market_id, -action.size if size > 0 else action.size, t.price, -reward)
        fee = min(
            -(-(action.size * t.price) // WAD) * t.insurance_fee_ratio // WAD,
            max(after.equity(RANDOM_TERMS), 0),
        )
        books[action.account] = Book(after.account, after.margin - fee, after.pending_loss, after.positions)
        acted.add(action.account)
    assert sim == result.keeper_after
    liquidatable = {
        b.account for b in targets if b.positions and b.equity(RANDOM_TERMS) < b.mmr(RANDOM_TERMS)
    }
    left = {u.account for u in result.unabsorbable}
    assert acted | left == liquidatable and not acted & left
    assert all(u.capital_needed >= 1 for u in result.unabsorbable if u.reason == "capital")
    assert all(u.capital_needed >= 0 for u in result.unabsorbable)
