"""Hostile inputs not covered by the unit suites: each asserts the custom error and that nothing
moved (through the lockstep harness, every observable still equals the model afterwards).

Covered elsewhere (tests/unit/...): fee-on-transfer, re-entrant and returns-false tokens, 0 and
>18 decimals, every oracle failure, replays across chain and contract, expired, cancelled,
malleable and foreign signatures, zero and one-unit amounts, parameter bounds, role checks of
the vault, oracle, engine and fund.
"""

from __future__ import annotations

import ape

from backstop.model import ModelRevert
from backstop.orders import FAR_EXPIRY, Order, sign_order
from backstop.units import WAD
from tests.support.system import Signed

PRICE = 2000 * WAD
TOKEN = 10**6
ZERO = "0x" + "00" * 20
MAX_VALUE = 2**127 - 1


def rejected(result, name: str) -> None:
    assert isinstance(result, ModelRevert), f"expected {name}, the call succeeded"
    assert result.name == name


def test_rebasing_token_deposit_is_rejected_with_nothing_credited(project, deployer, alice, vault_state):
    token = project.RebasingToken.deploy(6, 10, sender=deployer)  # +0.1 % on every transfer
    vault = project.CollateralVault.deploy(token, sender=deployer)
    token.mint(alice, 1_000 * TOKEN, sender=deployer)
    token.approve(vault, 2**256 - 1, sender=alice)
    before = vault_state(vault, token, alice)
    with ape.reverts(vault.TransferAmountMismatch, expected=100 * TOKEN, received=100_100_000):
        vault.deposit(100 * TOKEN, sender=alice)
    assert vault_state(vault, token, alice) == before


def test_order_for_the_zero_address_is_rejected(system, eth, alice, bob):
    ghost = Order(ZERO, eth, False, WAD, PRICE, 0, FAR_EXPIRY)  # signed by alice, claiming no account
    maker = Signed(ghost, sign_order(ghost, alice.private_key, system.chain_id, system.engine.address))
    rejected(system.match(maker, system.order(bob, eth, True, WAD, PRICE), WAD), "InvalidSignature")
    system.check(alice, bob)


def test_fill_size_beyond_the_storage_range_is_rejected(system, eth, alice, bob):
    huge = MAX_VALUE + 1
    result = system.match(
        system.order(alice, eth, False, huge, PRICE), system.order(bob, eth, True, huge, PRICE), huge
    )
    rejected(result, "ValueOutOfRange")
    system.check(alice, bob)


def test_price_beyond_the_storage_range_is_rejected(system, eth, alice, bob):
    huge = MAX_VALUE + 1
    result = system.match(
        system.order(alice, eth, False, WAD, huge), system.order(bob, eth, True, WAD, huge), WAD
    )
    rejected(result, "ValueOutOfRange")
    system.check(alice, bob)


def test_a_size_times_price_that_overflows_the_position_reverts(system, eth, alice, bob):
    """Size and price each fit, but the fill's notional does not fit a position's 128-bit
    open notional: model and engine both refuse it by value (check 10), with nothing moved."""
    size = 2**120  # fits the 127-bit size bound; size × 2,000 does not fit int128
    maker = system.order(alice, eth, False, size, PRICE)
    taker = system.order(bob, eth, True, size, PRICE)
    result = system.match(maker, taker, size)  # the chain must revert with the same custom error
    rejected(result, "ValueOutOfRange")
    assert result.args == (size * PRICE // WAD,)  # the maker's |open notional|, checked first
    args = (_tuple(maker), maker.signature, _tuple(taker), taker.signature, size)
    with ape.reverts(system.engine.ValueOutOfRange, value=size * PRICE // WAD):
        system.engine.matchOrders(*args, sender=system.deployer)
    system.check(alice, bob)


def _tuple(signed):
    from backstop.orders import to_tuple

    return to_tuple(signed.order)


def test_withdraw_of_the_maximum_amount_reverts(system, eth, alice, vault_state):
    before = vault_state(system.vault, system.token, alice)
    with ape.reverts(system.vault.AmountTooLarge, amountTokens=2**256 - 1):
        system.vault.withdraw(2**256 - 1, sender=alice)
    assert vault_state(system.vault, system.token, alice) == before


def test_engine_hook_is_vault_only(system, stranger):
    with ape.reverts(system.engine.NotVault, caller=stranger.address):
        system.engine.settleAndFreeCollateral(stranger, sender=stranger)


def test_settlement_and_withdrawals_continue_while_paused(system, eth, alice, bob, carol, keeper):
    system.deposit(keeper, 100_000 * TOKEN)
    system.deposit(carol, 210 * TOKEN)
    system.trade(carol, alice, eth, WAD, PRICE)
    system.set_price(eth, 1700 * WAD)
    system.liquidate(carol, keeper)  # alice (short) now owes a pending loss
    system.set_global_paused(True)
    system.set_paused(eth, True)
    system.settle(alice, bob)
    assert system.engine.pendingLossOf(alice) == 0
    system.withdraw(bob, 10_000 * TOKEN)  # flat: everything, while paused
    system.check(alice, bob, carol, keeper)


def test_every_role_restricted_engine_function_refuses_a_stranger(system, eth, stranger):
    engine = system.engine
    params = engine.marketParams(eth)
    for call in (
        lambda: engine.addMarket(tuple(params), sender=stranger),
        lambda: engine.scheduleMarketUpdate(eth, tuple(params), sender=stranger),
        lambda: engine.executeMarketUpdate(eth, sender=stranger),
        lambda: engine.scheduleSequencerUpdate(stranger, 0, sender=stranger),
        lambda: engine.executeSequencerUpdate(sender=stranger),
        lambda: engine.lowerOpenInterestCap(eth, 1, sender=stranger),
        lambda: engine.setMarketPaused(eth, True, sender=stranger),
        lambda: engine.setGlobalPaused(True, sender=stranger),
        lambda: engine.grantRole(engine.GUARDIAN_ROLE(), stranger, sender=stranger),
    ):
        with ape.reverts(engine.AccessControlUnauthorizedAccount, account=stranger.address):
            call()
    for call in (
        lambda: engine.cancelMarketUpdate(eth, sender=stranger),
        lambda: engine.cancelSequencerUpdate(sender=stranger),
    ):
        with ape.reverts(engine.NotAdminOrGuardian, caller=stranger.address):
            call()
    assert not engine.isPaused(eth)
    assert engine.marketCount() == 1
