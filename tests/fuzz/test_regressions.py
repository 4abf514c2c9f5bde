"""Shrunk failing programs kept as regression tests (Curve's replay tests).

Each program is a minimal sequence of fuzz actions that once failed; it must now pass. Programs
found against a deliberate bug of ``tools/mutation.py`` name that mutant, and ``make mutation``
checks that each still fails on it (so the test keeps guarding what it was written for).
Add a new one from a failure report: the deep driver prints the shrunk program, the CI profile
attaches the failing example's program to the error (``replay with tests.fuzz.machine.replay``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from backstop.chain.evm import PyRevmBackend
from backstop.model import MAX_VALUE
from backstop.orders import FAR_EXPIRY, Order
from tests.fuzz.machine import replay
from tests.fuzz.world import World


@dataclass(frozen=True)
class Regression:
    #: The deliberate bug of tools/mutation.py this program exposes (None: a real bug it found).
    mutant: str | None
    program: list[tuple[str, dict[str, Any]]]


REGRESSIONS: dict[str, Regression] = {
    "socialized_loss_index_rounds_up": Regression(
        "socialization-index-rounded-down",
        [
            ("advance_time", {"kind": 6, "refresh": 1}),
            (
                "trade",
                {
                    "maker": 1,
                    "taker": 5,
                    "market": 1,
                    "maker_buys": 1,
                    "size_kind": 2,
                    "lev": 130,
                    "band": -45,
                    "fill": 75,
                    "twist": 31,
                    "keep": 0,
                },
            ),
            ("move_price", {"market": 5, "move": 2500}),
            ("keeper", {"who": 4}),
        ],
    ),
    "tiny_trade_after_full_withdrawal_needs_initial_margin": Regression(
        "im-check-skipped",
        [
            ("wait_for_exit", {"offset": -1, "refresh": 1}),
            ("withdraw", {"who": 2, "mode": 3, "pct": 65}),
            (
                "trade",
                {
                    "maker": 0,
                    "taker": 2,
                    "market": 0,
                    "maker_buys": 0,
                    "size_kind": 0,
                    "lev": 70,
                    "band": -129,
                    "fill": 59,
                    "twist": 21,
                    "keep": 5,
                },
            ),
        ],
    ),
    "insurance_fee_is_capped_by_remaining_equity": Regression(
        "insurance-fee-from-negative-equity",
        [
            (
                "trade",
                {
                    "maker": 0,
                    "taker": 1,
                    "market": 2,
                    "maker_buys": 1,
                    "size_kind": 2,
                    "lev": 110,
                    "band": 1059,
                    "fill": 66,
                    "twist": 56,
                    "keep": 4,
                },
            ),
            ("advance_time", {"kind": 6, "refresh": 1}),
            (
                "trade",
                {
                    "maker": 6,
                    "taker": 2,
                    "market": 1,
                    "maker_buys": 0,
                    "size_kind": 2,
                    "lev": 10,
                    "band": -203,
                    "fill": 77,
                    "twist": 15,
                    "keep": 1,
                },
            ),
            (
                "trade",
                {
                    "maker": 0,
                    "taker": 4,
                    "market": 1,
                    "maker_buys": 0,
                    "size_kind": 2,
                    "lev": 130,
                    "band": -352,
                    "fill": 28,
                    "twist": 16,
                    "keep": 3,
                },
            ),
            (
                "trade",
                {
                    "maker": 1,
                    "taker": 5,
                    "market": 1,
                    "maker_buys": 1,
                    "size_kind": 2,
                    "lev": 130,
                    "band": -45,
                    "fill": 75,
                    "twist": 31,
                    "keep": 0,
                },
            ),
            (
                "trade",
                {
                    "maker": 1,
                    "taker": 2,
                    "market": 0,
                    "maker_buys": 1,
                    "size_kind": 2,
                    "lev": 70,
                    "band": 629,
                    "fill": 4,
                    "twist": 43,
                    "keep": 3,
                },
            ),
            ("fill_resting", {"idx": 43, "taker": 6, "pct": 77, "sender": 6}),
            ("move_price", {"market": 0, "move": -4000}),
            ("move_price", {"market": 0, "move": -6000}),
            ("keeper", {"who": 4}),
        ],
    ),
    "fund_exit_waits_for_the_cooldown": Regression(
        "cooldown-ignored",
        [
            ("request_unstake", {"who": 4, "pct": 48}),
            ("unstake", {"who": 4, "pct": 21}),
        ],
    ),
    "requested_shares_move_into_the_funds_custody": Regression(
        "escrow-skipped",
        [
            ("request_unstake", {"who": 5, "pct": 50}),
            ("transfer_shares", {"who": 5, "to": 0, "pct": 100}),
        ],
    ),
    "partial_close_reduces_open_notional": Regression(
        "open-notional-not-reduced-on-partial-close",
        [
            (
                "trade",
                {
                    "maker": 1,
                    "taker": 4,
                    "market": 0,
                    "maker_buys": 0,
                    "size_kind": 2,
                    "lev": 160,
                    "band": 472,
                    "fill": 83,
                    "twist": 26,
                    "keep": 2,
                },
            ),
            (
                "trade",
                {
                    "maker": 4,
                    "taker": 3,
                    "market": 0,
                    "maker_buys": 0,
                    "size_kind": 3,
                    "lev": 40,
                    "band": 93,
                    "fill": 38,
                    "twist": 36,
                    "keep": 5,
                },
            ),
        ],
    ),
    "liquidator_receives_the_keeper_reward": Regression(
        "keeper-reward-not-paid",
        [
            (
                "trade",
                {
                    "maker": 1,
                    "taker": 2,
                    "market": 0,
                    "maker_buys": 1,
                    "size_kind": 2,
                    "lev": 70,
                    "band": 629,
                    "fill": 4,
                    "twist": 43,
                    "keep": 3,
                },
            ),
            ("wait_for_exit", {"offset": 1, "refresh": 1}),
            ("fill_resting", {"idx": 43, "taker": 6, "pct": 77, "sender": 6}),
            ("move_price", {"market": 0, "move": -6000}),
            ("keeper", {"who": 4}),
        ],
    ),
    "fund_exit_pays_at_most_the_value_at_request": Regression(
        "exit-pays-current-value",
        [
            ("request_unstake", {"who": 5, "pct": 37}),
            ("move_price", {"market": 3, "move": 2500}),
            (
                "trade",
                {
                    "maker": 2,
                    "taker": 5,
                    "market": 0,
                    "maker_buys": 0,
                    "size_kind": 4,
                    "lev": 90,
                    "band": -698,
                    "fill": 24,
                    "twist": 9,
                    "keep": 0,
                },
            ),
            ("wait_for_exit", {"offset": 1800, "refresh": 0}),
            ("unstake", {"who": 12, "pct": 1}),
        ],
    ),
    "socialized_loss_is_charged_to_the_winning_side": Regression(
        "loss-charged-to-losing-side",
        [
            ("advance_time", {"kind": 6, "refresh": 1}),
            (
                "trade",
                {
                    "maker": 1,
                    "taker": 5,
                    "market": 1,
                    "maker_buys": 1,
                    "size_kind": 2,
                    "lev": 130,
                    "band": -45,
                    "fill": 75,
                    "twist": 31,
                    "keep": 0,
                },
            ),
            ("move_price", {"market": 5, "move": 2500}),
            ("keeper", {"who": 4}),
        ],
    ),
}


@pytest.fixture(scope="module")
def world():
    return World(PyRevmBackend())


def test_socialized_loss_index_rounds_up(world):
    """A bankruptcy beyond the fund's cap raises the winners' loss index by ceil(R·1e18/OI)."""
    replay(world, REGRESSIONS["socialized_loss_index_rounds_up"].program)


def test_tiny_trade_after_full_withdrawal_needs_initial_margin(world):
    """After withdrawing everything, even a few-wei position needs its (rounded-up) initial margin."""
    replay(world, REGRESSIONS["tiny_trade_after_full_withdrawal_needs_initial_margin"].program)


def test_insurance_fee_is_capped_by_remaining_equity(world):
    """The liquidation fee never exceeds the equity left after the keeper reward."""
    replay(world, REGRESSIONS["insurance_fee_is_capped_by_remaining_equity"].program)


def test_fund_exit_waits_for_the_cooldown(world):
    """A staker cannot redeem before its request's cooldown has elapsed."""
    replay(world, REGRESSIONS["fund_exit_waits_for_the_cooldown"].program)


def test_partial_close_reduces_open_notional(world):
    """Reducing a position removes the closed share of its cost basis."""
    replay(world, REGRESSIONS["partial_close_reduces_open_notional"].program)


def test_liquidator_receives_the_keeper_reward(world):
    """The keeper reward taken from a liquidated account is credited to the liquidator."""
    replay(world, REGRESSIONS["liquidator_receives_the_keeper_reward"].program)


def test_fund_exit_pays_at_most_the_value_at_request(world):
    """Fees that raise the share price during the cooldown stay in the fund."""
    replay(world, REGRESSIONS["fund_exit_pays_at_most_the_value_at_request"].program)


def test_socialized_loss_is_charged_to_the_winning_side(world):
    """A long's bankruptcy is charged to the shorts, not to the other longs."""
    replay(world, REGRESSIONS["socialized_loss_is_charged_to_the_winning_side"].program)


# --- discrepancies the deep profile found (docs/fuzzing.md) -------------------------------------


def test_fill_beyond_128_bit_open_notional_reverts_as_the_model_predicts(world):
    """Found by the deep profile: the fill's open notional q · 30,000 leaves the 128-bit position
    storage; engine and model both refuse it with ValueOutOfRange at check 10 (it once reverted
    with OpenZeppelin's SafeCast error on chain while the model went on to the OI cap)."""
    machine = replay(world, [])
    q = MAX_VALUE  # 2^127 - 1: a valid fill size, but q · 30,000 does not fit an int128 notional
    market = 1
    price = machine.prices[market]
    buyer, seller = machine.addr[0], machine.addr[1]
    maker = world.sign(0, Order(buyer, market, True, q, price, 0, FAR_EXPIRY))
    taker = world.sign(1, Order(seller, market, False, q, price, 0, FAR_EXPIRY))
    refused = machine.outcomes["trade:ValueOutOfRange"]
    machine._match("trade", maker, taker, q, sender=2)  # fails unless both revert alike
    assert machine.outcomes["trade:ValueOutOfRange"] == refused + 1


def test_fee_charged_from_an_empty_vault_reverts_as_the_model_predicts(world):
    """Found by the deep profile: with no tokens in the vault, a fill's fees cannot be booked to
    the fund's credit (the vault must hold them) and the vault reverts InsufficientVaultTokens
    (after the OI cap check, before the margin checks). Before fees were booked as a credit, the
    token's transfer reverted ERC20InsufficientBalance at the same point; the model once let its
    vault balance go negative and reverted InsufficientMargin."""
    machine = replay(world, [])
    for who in range(len(machine.addr)):  # everyone takes everything out: the vault is empty
        machine.do("withdraw", {"who": who, "mode": 3, "pct": 1})
        machine.check()
    assert machine.model.vault_tokens == 0
    market, price, q = 0, machine.prices[0], 10**18  # one ETH: fees of 0.4 and 1 token, no margin
    buyer, seller = machine.addr[0], machine.addr[1]
    maker = world.sign(0, Order(buyer, market, True, q, price, 0, FAR_EXPIRY))
    taker = world.sign(1, Order(seller, market, False, q, price, 0, FAR_EXPIRY))
    refused = machine.outcomes["trade:InsufficientVaultTokens"]
    machine._match("trade", maker, taker, q, sender=2)  # fails unless both revert alike
    assert machine.outcomes["trade:InsufficientVaultTokens"] == refused + 1
    machine.compare()  # and nothing moved


def test_winner_withdrawal_beyond_the_vault_balance_waits_for_the_liquidation(world):
    """Realized profit is paid out of the losers' margin: while the bankrupt loser is not yet
    liquidated, the vault holds less than the flat winner's margin and it refuses the whole
    withdrawal (InsufficientVaultTokens, on chain and in the model: the vault's own part, its
    tokens beyond the fund's credit, is short); once the keeper has
    liquidated the loser (the fund covers part, the rest is socialized) it goes through."""
    machine = replay(world, [])

    def act(name: str, **kwargs: int) -> None:
        machine.do(name, kwargs)
        machine.check()

    def fill(maker: int, taker: int, maker_buys: bool, size: int, price: int) -> None:
        a = machine.addr
        mo = Order(a[maker], 0, maker_buys, size, price, machine._next_nonce(maker), FAR_EXPIRY)
        to = Order(a[taker], 0, not maker_buys, size, price, machine._next_nonce(taker), FAR_EXPIRY)
        accepted = machine.outcomes["trade:ok"]
        machine._match("trade", world.sign(maker, mo), world.sign(taker, to), size, sender=taker)
        machine.step_changed = False
        assert machine.outcomes["trade:ok"] == accepted + 1
        machine.check()

    # Only actors 0 and 1 and part of actor 2's margin stay in the vault.
    for who in (3, 4, 5, 6):
        act("withdraw", who=who, mode=3, pct=1)
    act("withdraw", who=2, mode=2, pct=33)
    eth = 10**18
    fill(0, 1, True, 7 * eth, 2_000 * eth)  # 0 buys 7 ETH from 1 at 2,000 (1 is near its IM)
    act("move_price", market=0, move=2_500)  # ETH at 2,500: 1 is bankrupt, 0 up 3,500
    fill(2, 0, True, 7 * eth, 2_500 * eth)  # 0 closes: sells to 2, realizing the 3,500
    winner = machine.addr[0]
    assert not machine.model.markets_of(winner)
    assert (
        machine.model.margin(winner) // world.scale > machine.model.vault_tokens - machine.model.fund_credit
    )

    refused = machine.outcomes["withdraw:InsufficientVaultTokens"]
    act("withdraw", who=0, mode=3, pct=1)  # the whole (free) margin: more than the vault holds
    assert machine.outcomes["withdraw:InsufficientVaultTokens"] == refused + 1

    act("deposit", who=6, kind=2, amount=500_000)  # the keeper funds itself (5,000 tokens)
    act("liquidate", liquidator=6, account=1)
    assert machine.outcomes["liquidate:socialized"] >= 1
    margin = machine.model.margin(winner)
    act("withdraw", who=0, mode=3, pct=1)  # INV-FLAT-WITHDRAW: now it must go through
    assert machine.model.margin(winner) < margin
