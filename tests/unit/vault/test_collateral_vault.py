"""CollateralVault: exact conversions, deposits, withdrawals, hostile tokens, engine-only ledger."""

from __future__ import annotations

import ape
import pytest
from eth_utils import keccak

from backstop.chain.abi import encode_call
from backstop.units import token_scale

MAX_INT256 = 2**255 - 1
ZERO = "0x" + "00" * 20
REENTRANT_CALL = keccak(text="ReentrancyGuardReentrantCall()")[:4]


@pytest.fixture
def setup(project, deployer, alice, make_token):
    """A 6-decimal token and a vault over it; alice holds 1,000,000 tokens and approved the vault."""

    def _setup(decimals: int = 6):
        token = make_token(decimals)
        vault = project.CollateralVault.deploy(token, sender=deployer)
        token.mint(alice, 10**6 * 10**decimals, sender=deployer)
        token.approve(vault, 2**256 - 1, sender=alice)
        return token, vault

    return _setup


@pytest.mark.parametrize("decimals", [6, 8, 18])
def test_deposit_withdraw_round_trip_is_exact(setup, alice, decimals):
    token, vault = setup(decimals)
    start = token.balanceOf(alice)
    amount = 1234 * 10**decimals + 5  # whole tokens plus a few units

    tx = vault.deposit(amount, sender=alice)

    credited = amount * token_scale(decimals)
    assert vault.marginOf(alice) == credited
    assert vault.totalMargin() == credited
    assert vault.assetsWad() == credited
    assert token.balanceOf(vault) == amount
    assert token.balanceOf(alice) == start - amount
    [deposited] = [log for log in tx.events if log.event_name == "Deposited"]
    assert (deposited.account, deposited.amountTokens, deposited.amountWad) == (
        alice.address,
        amount,
        credited,
    )

    tx = vault.withdraw(amount, sender=alice)

    assert vault.marginOf(alice) == 0
    assert vault.totalMargin() == 0
    assert token.balanceOf(vault) == 0
    assert token.balanceOf(alice) == start
    [withdrawn] = [log for log in tx.events if log.event_name == "Withdrawn"]
    assert (withdrawn.account, withdrawn.amountTokens, withdrawn.amountWad) == (
        alice.address,
        amount,
        credited,
    )


@pytest.mark.parametrize("decimals", [6, 8, 18])
def test_one_unit_deposit_credits_exactly_one_scale_step(setup, alice, decimals):
    token, vault = setup(decimals)
    vault.deposit(1, sender=alice)
    assert vault.marginOf(alice) == 10 ** (18 - decimals)
    vault.withdraw(1, sender=alice)
    assert vault.marginOf(alice) == 0
    assert token.balanceOf(vault) == 0


def test_partial_withdrawals_leave_the_rest(setup, alice):
    token, vault = setup(6)
    vault.deposit(100_000_000, sender=alice)
    vault.withdraw(30_000_000, sender=alice)
    vault.withdraw(1, sender=alice)
    assert vault.marginOf(alice) == (100_000_000 - 30_000_000 - 1) * 10**12
    assert token.balanceOf(vault) == 69_999_999


def test_deposit_of_zero_reverts_and_nothing_moves(setup, alice, vault_state):
    token, vault = setup(6)
    before = vault_state(vault, token, alice)
    with ape.reverts(vault.ZeroAmount):
        vault.deposit(0, sender=alice)
    assert vault_state(vault, token, alice) == before


def test_withdraw_of_zero_reverts_and_nothing_moves(setup, alice, vault_state):
    token, vault = setup(6)
    vault.deposit(5_000_000, sender=alice)
    before = vault_state(vault, token, alice)
    with ape.reverts(vault.ZeroAmount):
        vault.withdraw(0, sender=alice)
    assert vault_state(vault, token, alice) == before


def test_withdraw_more_than_margin_reverts_with_free_collateral(setup, alice, vault_state):
    token, vault = setup(6)
    vault.deposit(5_000_000, sender=alice)
    before = vault_state(vault, token, alice)
    with ape.reverts(
        vault.InsufficientFreeCollateral,
        account=alice.address,
        requestedWad=5_000_001 * 10**12,
        freeWad=5_000_000 * 10**12,
    ):
        vault.withdraw(5_000_001, sender=alice)
    assert vault_state(vault, token, alice) == before


def test_withdraw_without_any_deposit_reverts(setup, alice, bob, vault_state):
    token, vault = setup(6)
    vault.deposit(5_000_000, sender=alice)
    before = vault_state(vault, token, alice, bob)
    with ape.reverts(vault.InsufficientFreeCollateral, account=bob.address, requestedWad=10**12, freeWad=0):
        vault.withdraw(1, sender=bob)
    assert vault_state(vault, token, alice, bob) == before


def test_deposit_amount_beyond_the_ledger_range_reverts(setup, alice, vault_state):
    token, vault = setup(6)
    too_large = MAX_INT256 // 10**12 + 1
    before = vault_state(vault, token, alice)
    with ape.reverts(vault.AmountTooLarge, amountTokens=too_large):
        vault.deposit(too_large, sender=alice)
    assert vault_state(vault, token, alice) == before


@pytest.mark.parametrize("decimals", [0, 19, 24])
def test_constructor_rejects_unsupported_decimals(project, deployer, make_token, decimals):
    token = make_token(decimals)
    with ape.reverts(project.CollateralVault.UnsupportedDecimals, decimals=decimals):
        project.CollateralVault.deploy(token, sender=deployer)


def test_constructor_rejects_zero_token(project, deployer, deploy_revert_data):
    data = deploy_revert_data(project.CollateralVault, ZERO, sender=deployer)
    assert data == encode_call("ZeroAddress(string)", "token")


# --- hostile tokens -----------------------------------------------------------------------------


def test_fee_on_transfer_token_deposit_is_rejected_with_nothing_credited(
    project, deployer, alice, vault_state
):
    token = project.FeeOnTransferToken.deploy(6, 100, sender=deployer)  # 1 % fee
    vault = project.CollateralVault.deploy(token, sender=deployer)
    token.mint(alice, 1_000_000_000, sender=deployer)
    token.approve(vault, 2**256 - 1, sender=alice)
    before = vault_state(vault, token, alice)
    with ape.reverts(vault.TransferAmountMismatch, expected=100_000_000, received=99_000_000):
        vault.deposit(100_000_000, sender=alice)
    assert vault_state(vault, token, alice) == before
    assert vault.marginOf(alice) == 0


def test_reentrant_token_cannot_double_withdraw(project, deployer, vault_state):
    token = project.ReentrantToken.deploy(6, sender=deployer)
    vault = project.CollateralVault.deploy(token, sender=deployer)
    attacker = project.ReentrancyAttacker.deploy(vault, sender=deployer)
    token.mint(attacker, 100_000_000, sender=deployer)
    attacker.deposit(100_000_000, sender=deployer)
    token.setHooked(attacker, True, sender=deployer)

    attacker.attackWithdraw(100_000_000, sender=deployer)

    # The re-entrant withdraw was attempted from the transfer hook and refused by the guard.
    assert attacker.attempts() == 1
    assert attacker.lastReentrySucceeded() is False
    assert bytes(attacker.lastRevertData()) == REENTRANT_CALL
    # Exactly one withdrawal happened.
    assert token.balanceOf(attacker) == 100_000_000
    assert token.balanceOf(vault) == 0
    assert vault.marginOf(attacker) == 0
    assert vault.totalMargin() == 0


def test_reentrant_token_cannot_double_deposit(project, deployer):
    token = project.ReentrantToken.deploy(6, sender=deployer)
    vault = project.CollateralVault.deploy(token, sender=deployer)
    attacker = project.ReentrancyAttacker.deploy(vault, sender=deployer)
    token.mint(attacker, 300_000_000, sender=deployer)
    token.setHooked(attacker, True, sender=deployer)

    attacker.attackDeposit(100_000_000, sender=deployer)

    assert attacker.attempts() == 1
    assert attacker.lastReentrySucceeded() is False
    assert bytes(attacker.lastRevertData()) == REENTRANT_CALL
    assert vault.marginOf(attacker) == 100_000_000 * 10**12
    assert token.balanceOf(vault) == 100_000_000


def test_returns_false_token_deposit_without_allowance_reverts(project, deployer, alice, vault_state):
    token = project.ReturnsFalseToken.deploy(6, sender=deployer)
    vault = project.CollateralVault.deploy(token, sender=deployer)
    token.mint(alice, 100_000_000, sender=deployer)
    before = vault_state(vault, token, alice)
    with ape.reverts(vault.SafeERC20FailedOperation, token=token.address):
        vault.deposit(100_000_000, sender=alice)
    assert vault_state(vault, token, alice) == before


def test_returns_false_token_failed_withdraw_keeps_margin(project, deployer, alice, vault_state):
    token = project.ReturnsFalseToken.deploy(6, sender=deployer)
    vault = project.CollateralVault.deploy(token, sender=deployer)
    token.mint(alice, 100_000_000, sender=deployer)
    token.approve(vault, 100_000_000, sender=alice)
    vault.deposit(100_000_000, sender=alice)
    token.setFailing(True, sender=deployer)
    before = vault_state(vault, token, alice)
    with ape.reverts(vault.SafeERC20FailedOperation, token=token.address):
        vault.withdraw(100_000_000, sender=alice)
    assert vault_state(vault, token, alice) == before


# --- wiring and the engine-only ledger ----------------------------------------------------------


@pytest.fixture
def wired(project, deployer, alice, setup):
    """A vault wired to a mock engine and a stand-in insurance fund address."""
    token, vault = setup(6)
    engine = project.MockMarginAuthority.deploy(sender=deployer)
    engine.setVault(vault, sender=deployer)
    fund = deployer  # any address: fees are booked to its credit, a sweep transfers them
    vault.wire(engine, fund, sender=deployer)
    vault.deposit(1_000_000_000, sender=alice)  # 1,000 tokens
    return token, vault, engine, fund


def test_wire_is_deployer_only(project, deployer, stranger, setup):
    _, vault = setup(6)
    engine = project.MockMarginAuthority.deploy(sender=deployer)
    with ape.reverts(vault.NotDeployer, caller=stranger.address):
        vault.wire(engine, stranger, sender=stranger)
    assert vault.engine() == ZERO


def test_wire_happens_once(wired, deployer, project):
    _, vault, engine, _ = wired
    other = project.MockMarginAuthority.deploy(sender=deployer)
    with ape.reverts(vault.AlreadyWired):
        vault.wire(other, deployer, sender=deployer)
    assert vault.engine() == engine.address


def test_wire_rejects_zero_addresses(setup, deployer, project):
    _, vault = setup(6)
    engine = project.MockMarginAuthority.deploy(sender=deployer)
    with ape.reverts(vault.ZeroAddress, what="engine"):
        vault.wire(ZERO, deployer, sender=deployer)
    with ape.reverts(vault.ZeroAddress, what="insuranceFund"):
        vault.wire(engine, ZERO, sender=deployer)


def test_ledger_functions_reject_everyone_but_the_engine(wired, alice, stranger, vault_state):
    token, vault, _, _ = wired
    before = vault_state(vault, token, alice, stranger)
    with ape.reverts(vault.NotEngine, caller=stranger.address):
        vault.adjustMargin(stranger, 10**18, sender=stranger)
    with ape.reverts(vault.NotEngine, caller=stranger.address):
        vault.adjustMargins(alice, 0, 1, stranger, 10**18, 0, 0, sender=stranger)
    assert vault_state(vault, token, alice, stranger) == before


def test_withdraw_is_limited_by_the_engines_free_collateral(wired, alice, vault_state):
    token, vault, engine, _ = wired
    engine.setFree(alice, 400 * 10**18, sender=alice)
    before = vault_state(vault, token, alice)
    with ape.reverts(
        vault.InsufficientFreeCollateral,
        account=alice.address,
        requestedWad=400_000_001 * 10**12,
        freeWad=400 * 10**18,
    ):
        vault.withdraw(400_000_001, sender=alice)
    assert vault_state(vault, token, alice) == before
    vault.withdraw(400_000_000, sender=alice)
    assert vault.marginOf(alice) == 600 * 10**18


def test_negative_free_collateral_blocks_any_withdrawal(wired, alice):
    _, vault, engine, _ = wired
    engine.setFree(alice, -1, sender=alice)
    with ape.reverts(
        vault.InsufficientFreeCollateral, account=alice.address, requestedWad=10**12, freeWad=-1
    ):
        vault.withdraw(1, sender=alice)


def test_withdraw_settles_pending_loss_before_paying(wired, alice):
    token, vault, engine, _ = wired
    engine.setPendingLoss(alice, 250 * 10**18, sender=alice)
    engine.setFree(alice, 750 * 10**18, sender=alice)
    vault.withdraw(750_000_000, sender=alice)
    assert vault.marginOf(alice) == 0
    assert vault.totalMargin() == 0
    assert token.balanceOf(vault) == 250_000_000  # the loss stays in the vault for the winners


def test_engine_adjusts_margin_and_total(wired, alice, bob):
    _, vault, engine, _ = wired
    tx = engine.adjustMargin(alice, -(10**18), sender=alice)
    engine.adjustMargin(bob, 10**18, sender=alice)
    assert vault.marginOf(alice) == 999 * 10**18
    assert vault.marginOf(bob) == 10**18
    assert vault.totalMargin() == 1000 * 10**18
    [adjusted] = [log for log in tx.events if log.event_name == "MarginAdjusted"]
    assert (adjusted.account, adjusted.deltaWad) == (alice.address, -(10**18))


def test_adjust_margins_books_both_parties_and_both_fees_to_the_funds_credit(wired, alice, bob):
    token, vault, engine, fund = wired
    fund_before = token.balanceOf(fund)
    tx = engine.adjustMargins(alice, -(10**18), 1_500_000, bob, 10**18, 250_000, sender=alice)
    assert vault.marginOf(alice) == 997_500_000 * 10**12  # 1,000 − 1 − 1.5 fee
    assert vault.marginOf(bob) == 750_000 * 10**12  # +1 − 0.25 fee
    assert vault.totalMargin() == vault.marginOf(alice) + vault.marginOf(bob)
    # Booked, not transferred: the tokens stay in the vault as the fund's credit.
    assert vault.fundCredit() == 1_750_000
    assert token.balanceOf(fund) == fund_before
    assert token.balanceOf(vault) == 1000_000_000
    assert not [log for log in tx.events if log.event_name == "Transfer"]
    adjusted = [(e.account, e.deltaWad) for e in tx.events if e.event_name == "MarginAdjusted"]
    assert adjusted == [(alice.address, -(10**18)), (bob.address, 10**18)]
    paid = [(e.account, e.amountTokens) for e in tx.events if e.event_name == "PaidToFund"]
    assert paid == [(alice.address, 1_500_000), (bob.address, 250_000)]
    engine.adjustMargins(alice, 0, 1, bob, 0, 0, sender=alice)  # the credit accumulates
    assert vault.fundCredit() == 1_750_001


def test_a_stranger_sweep_moves_exactly_the_credit_to_the_fund(wired, alice, bob, stranger, vault_state):
    token, vault, engine, fund = wired
    engine.adjustMargins(alice, 0, 1_500_000, bob, 0, 250_000, sender=alice)
    before = vault_state(vault, token, alice, bob, stranger)
    fund_before = token.balanceOf(fund)
    tx = vault.sweepToFund(sender=stranger)
    [swept] = [log for log in tx.events if log.event_name == "SweptToFund"]
    assert (swept.caller, swept.amountTokens) == (stranger.address, 1_750_000)
    transfers = [(t["from"], t.to, t.value) for t in tx.events if t.event_name == "Transfer"]
    assert transfers == [(vault.address, fund.address, 1_750_000)]
    assert vault.fundCredit() == 0
    assert token.balanceOf(fund) == fund_before + 1_750_000
    # Nothing but the credit moved: every margin, the total and every other balance are as before.
    after = vault_state(vault, token, alice, bob, stranger)
    assert after == {**before, "vault_tokens": before["vault_tokens"] - 1_750_000}
    with ape.reverts(vault.NothingToSweep):
        vault.sweepToFund(sender=stranger)


def test_withdrawals_cannot_take_the_funds_credit(wired, alice, bob, vault_state):
    """All 1,000 tokens are Alice's margin, but 1.75 of them are the fund's credit (fees booked
    from Bob's margin, which went negative): Alice can take only what the vault holds beyond it."""
    token, vault, engine, _ = wired
    engine.adjustMargins(alice, 0, 0, bob, 0, 1_750_000, sender=alice)
    engine.setFree(alice, 1_000 * 10**18, sender=alice)
    before = vault_state(vault, token, alice)
    with ape.reverts(vault.InsufficientVaultTokens, available=998_250_000, needed=998_250_001):
        vault.withdraw(998_250_001, sender=alice)
    assert vault_state(vault, token, alice) == before
    vault.withdraw(998_250_000, sender=alice)
    assert token.balanceOf(vault) == vault.fundCredit() == 1_750_000


def test_fees_beyond_the_vaults_own_tokens_revert(wired, alice, bob, vault_state):
    """A fee is booked only out of tokens the vault holds beyond the credit, so the vault always
    holds the whole credit (as the fee's token transfer to the fund once required)."""
    token, vault, engine, _ = wired
    engine.adjustMargins(alice, 0, 400_000_000, bob, 0, 0, sender=alice)  # credit 400 of 1,000
    before = vault_state(vault, token, alice, bob)
    with ape.reverts(vault.InsufficientVaultTokens, available=600_000_000, needed=600_000_001):
        engine.adjustMargins(alice, 0, 600_000_000, bob, 0, 1, sender=alice)
    assert vault_state(vault, token, alice, bob) == before and vault.fundCredit() == 400_000_000
    engine.adjustMargins(alice, 0, 600_000_000, bob, 0, 0, sender=alice)
    assert vault.fundCredit() == token.balanceOf(vault) == 1_000_000_000


def test_fee_booking_reads_the_token_balance_only_when_the_ledger_cannot_prove_it(
    wired, alice, bob, vault_state
):
    """``claimsWad`` (the engine's Σ openNotional + unsettled loss) lets the vault prove from its
    ledger that it holds the fees (totalMargin ≥ claims, dust ≥ 0) and skip the balance read; with
    a bound it cannot meet it reads the balance. The outcome is the same, only the gas differs."""
    token, vault, engine, _ = wired
    adjust = engine.adjustMarginsWithClaims
    adjust(alice, 0, 1_000, bob, 0, 0, 0, sender=alice)  # the credit slot is non-zero from here on
    proven = adjust(alice, 0, 1_000, bob, 0, 0, 0, sender=alice)
    checked = adjust(alice, 0, 1_000, bob, 0, 0, 2**255 - 1, sender=alice)
    assert vault.fundCredit() == 3_000
    assert checked.gas_used - proven.gas_used > 2_000  # a cold balanceOf of the token
    # Past the vault's own part the checked path refuses, exactly as without the bound.
    before = vault_state(vault, token, alice, bob)
    with ape.reverts(vault.InsufficientVaultTokens, available=999_997_000, needed=999_997_001):
        adjust(alice, 0, 999_997_001, bob, 0, 0, 2**255 - 1, sender=alice)
    assert vault_state(vault, token, alice, bob) == before


def test_cover_from_credit_is_fund_only_and_bounded_by_the_credit(wired, alice, bob, stranger, vault_state):
    token, vault, engine, fund = wired
    engine.adjustMargins(alice, 0, 1_000, bob, 0, 0, sender=alice)
    before = vault_state(vault, token, alice, bob)
    with ape.reverts(vault.NotInsuranceFund, caller=stranger.address):
        vault.coverFromCredit(1, sender=stranger)
    with ape.reverts(vault.CreditExceeded, amountTokens=1_001, credit=1_000):
        vault.coverFromCredit(1_001, sender=fund)
    assert vault.fundCredit() == 1_000
    tx = vault.coverFromCredit(600, sender=fund)
    [event] = [log for log in tx.events if log.event_name == "CreditCover"]
    assert event.amountTokens == 600
    assert vault.fundCredit() == 400
    assert vault_state(vault, token, alice, bob) == before  # no token and no margin moved


def test_adjust_margins_fee_beyond_int256_reverts(wired, alice, bob, vault_state):
    token, vault, engine, _ = wired
    before = vault_state(vault, token, alice, bob)
    with ape.reverts(vault.AmountTooLarge):
        engine.adjustMargins(alice, 0, 2**255, bob, 0, 0, sender=alice)
    assert vault_state(vault, token, alice, bob) == before
