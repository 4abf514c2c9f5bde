"""The keeper's decision is a pure function of a health snapshot (CONVENTIONS 11).

``decide`` keeps every account that holds a position and has ``E < MMR`` (strict), most negative
``E − MMR`` first, ties by address (case-insensitive, ascending).
"""

from __future__ import annotations

from backstop.decisions import AccountHealth, decide, plan_liquidations
from backstop.units import WAD

A = "0x" + "aa" * 20
B = "0x" + "bB" * 20
C = "0x" + "cc" * 20
D = "0x" + "0d" * 20


def health(account: str, equity: int, mmr: int, *, positions: bool = True) -> AccountHealth:
    return AccountHealth(
        account=account,
        margin=equity,
        pending_loss=0,
        equity=equity,
        initial_margin=2 * mmr,
        maintenance_margin=mmr,
        has_positions=positions,
    )


def test_most_under_margined_account_comes_first():
    snapshot = [
        health(A, 80 * WAD, 90 * WAD),  # E − MMR = −10
        health(B, -50 * WAD, 100 * WAD),  # −150
        health(C, 10 * WAD, 60 * WAD),  # −50
    ]
    assert decide(snapshot) == [B, C, A]


def test_ties_are_broken_by_address_case_insensitively():
    # Same shortfall: 0x0d.. < 0xaa.. < 0xbb.. < 0xcc.. regardless of the checksum casing.
    snapshot = [health(C, 0, WAD), health(B, 0, WAD), health(D, 0, WAD), health(A, 0, WAD)]
    assert decide(snapshot) == [D, A, B, C]
    upper = "0x" + "AB" * 20
    lower = "0x" + "aa" * 20
    assert decide([health(upper, 0, WAD), health(lower, 0, WAD)]) == [lower, upper]


def test_equity_exactly_at_maintenance_is_not_liquidatable():
    assert decide([health(A, 90 * WAD, 90 * WAD)]) == []
    assert decide([health(A, 90 * WAD - 1, 90 * WAD)]) == [A]


def test_healthy_and_flat_accounts_are_left_alone():
    snapshot = [
        health(A, 100 * WAD, 90 * WAD),  # healthy
        health(B, -5 * WAD, 0, positions=False),  # flat with a negative margin: nothing to take over
        health(C, 0, 0, positions=False),
        health(D, 1, 2),
    ]
    assert decide(snapshot) == [D]


def test_shortfall_not_raw_equity_orders_the_list():
    # B has the lower equity but a small requirement; A is further below its maintenance.
    snapshot = [health(A, 100 * WAD, 400 * WAD), health(B, -10 * WAD, 1 * WAD)]
    assert decide(snapshot) == [A, B]


def test_accepts_any_iterable_and_counts_an_account_once():
    snapshot = (h for h in [health(A, 0, WAD), health(A.upper().replace("0X", "0x"), -WAD, WAD)])
    assert decide(snapshot) == [A]
    assert decide([]) == []


def test_decide_does_not_mutate_or_depend_on_input_order():
    snapshot = [health(A, 0, 3 * WAD), health(B, 0, 2 * WAD), health(C, 0, 5 * WAD)]
    frozen = list(snapshot)
    assert decide(snapshot) == decide(list(reversed(snapshot))) == [C, A, B]
    assert snapshot == frozen


def test_plan_never_targets_the_liquidator_and_reports_it_skipped():
    me = health(B.upper().replace("0X", "0x"), -5 * WAD, WAD)  # the keeper, in another case
    snapshot = [health(A, 0, 2 * WAD), me, health(C, 0, 3 * WAD)]
    plan = plan_liquidations(snapshot, B)
    assert plan.targets == (C, A)
    assert plan.skipped_self == (me,)
    # Without a liquidator nobody is left out, and the order is decide's.
    assert list(plan_liquidations(snapshot, None).targets) == decide(snapshot) == [me.account, C, A]


def test_plan_skips_nothing_when_the_liquidator_is_healthy():
    plan = plan_liquidations([health(A, 0, WAD), health(B, 5 * WAD, WAD)], B)
    assert plan.targets == (A,) and plan.skipped_self == ()
