"""InsuranceFund: ERC-4626 shares with a virtual offset, cover limits, and EIP-7540 exits
(escrowed request, cooldown, claim window). tests/unit/fund/test_async_redeem.py has the rest."""

from __future__ import annotations

import ape

from backstop.model import ModelRevert
from tests.support.system import FundSpec, System

TOKEN = 10**6
COOLDOWN = 7 * 86_400
WINDOW = 2 * 86_400
ZERO = "0x" + "00" * 20


def rejected(result, name: str) -> None:
    assert isinstance(result, ModelRevert), f"expected {name}, the call succeeded"
    assert result.name == name


def test_stake_mints_shares_with_the_virtual_offset(system, alice, bob):
    system.stake(alice, 1_000 * TOKEN)
    assert system.fund.balanceOf(alice) == 1_000 * TOKEN * 10**6  # 10^6 virtual shares per unit
    system.stake(bob, 500 * TOKEN)
    assert system.fund.balanceOf(bob) == 500 * TOKEN * 10**6
    assert system.fund.totalAssets() == 1_500 * TOKEN
    system.check(alice, bob)


def test_donation_attack_on_an_empty_fund_does_not_pay(system, alice, bob):
    """The classic first-depositor attack: stake 1 unit, donate a lot, hope the victim's deposit
    rounds to zero shares. With 10^6 virtual shares (and one virtual asset) the victim's rounding
    loss is at most about one share's value, assets / (supply + 10^6) ≈ 0.005 token here, while
    the virtual shares capture about half of the donation: the attack costs the attacker ~5,000
    tokens to take less than a cent from the victim."""
    system.stake(alice, 1)
    donation = 10_000 * TOKEN
    system.token.mint(alice, donation, sender=system.deployer)
    system.token.transfer(system.fund, donation, sender=alice)
    system.model.fund_tokens += donation  # a donation is a plain token transfer
    system.stake(bob, 1_000 * TOKEN)
    bob_value = system.fund.convertToAssets(system.fund.balanceOf(bob))
    alice_value = system.fund.convertToAssets(system.fund.balanceOf(alice))
    assert system.fund.balanceOf(bob) > 0
    assert 1_000 * TOKEN - bob_value <= TOKEN // 100  # the victim loses at most 0.01 token
    assert alice_value + 1 <= donation * 6 // 10  # the attacker loses at least 40 % of its donation
    system.check(alice, bob)


def test_cover_is_protocol_only(system, stranger):
    with ape.reverts(system.fund.NotProtocol, caller=stranger.address):
        system.fund.cover(1, sender=stranger)


def test_wire_is_deployer_only_and_once(project, deployer, stranger, make_token):
    token = make_token(6)
    fund = project.InsuranceFund.deploy(token, COOLDOWN, WINDOW, 0, 0, sender=deployer)
    with ape.reverts(fund.NotDeployer, caller=stranger.address):
        fund.wire(stranger, stranger, sender=stranger)
    with ape.reverts(fund.ZeroAddress, what="protocol"):
        fund.wire(ZERO, stranger, sender=deployer)
    with ape.reverts(fund.ZeroAddress, what="coverRecipient"):
        fund.wire(stranger, ZERO, sender=deployer)
    fund.wire(stranger, deployer, sender=deployer)
    with ape.reverts(fund.AlreadyWired):
        fund.wire(deployer, deployer, sender=deployer)


def test_cover_pays_at_most_coverable_above_the_floor(project, chain, deployer, alice, accounts):
    system = System(project, chain, deployer, fund_spec=FundSpec(floor_tokens=100 * TOKEN))
    system.stake(alice, 250 * TOKEN)
    assert system.fund.coverable() == 150 * TOKEN
    # The engine is the protocol; impersonate it to call cover directly.
    engine = accounts[system.engine.address]
    chain.set_balance(system.engine.address, 10**18)
    tx = system.fund.cover(400 * TOKEN, sender=engine)
    [paid] = [log for log in tx.events if log.event_name == "CoverPaid"]
    assert (paid.requested, paid.paid) == (400 * TOKEN, 150 * TOKEN)
    assert system.token.balanceOf(system.vault) == 150 * TOKEN
    assert system.fund.totalAssets() == 100 * TOKEN
    assert system.fund.coverable() == 0


def test_request_redeem_validates_the_share_amount(system, alice):
    system.stake(alice, 100 * TOKEN)
    shares = system.fund.balanceOf(alice)
    rejected(system.request_unstake(alice, 0), "InvalidRedeemRequest")
    rejected(system.request_unstake(alice, shares + 1), "InvalidRedeemRequest")
    with ape.reverts(system.fund.InvalidRedeemRequest, shares=shares + 1, balance=shares):
        system.fund.requestRedeem(shares + 1, alice, alice, sender=alice)
    tx = system.request_unstake(alice, shares)
    [event] = [log for log in tx.events if log.event_name == "RedeemRequest"]
    assert (event.controller, event.owner, event.requestId, event.sender, event.shares) == (
        alice.address,
        alice.address,
        0,
        alice.address,
        shares,
    )
    r = system.fund.redeemRequestOf(alice)
    assert (r.shares, r.assets, r.requestedAt) == (shares, 100 * TOKEN, tx.timestamp)
    assert system.fund.balanceOf(alice) == 0  # escrowed
    assert system.fund.balanceOf(system.fund) == shares
    assert system.fund.totalSupply() == shares  # escrowed shares stay in the supply
    system.check(alice)


def test_exit_needs_a_request_a_cooldown_and_the_window(system, alice):
    system.stake(alice, 100 * TOKEN)
    shares = system.fund.balanceOf(alice)
    rejected(system.unstake(alice, shares), "NoRedeemRequest")
    system.request_unstake(alice, shares)
    system.advance(COOLDOWN - 10)
    rejected(system.unstake(alice, shares), "CooldownNotElapsed")
    assert system.fund.pendingRedeemRequest(0, alice) == shares
    assert system.fund.claimableRedeemRequest(0, alice) == 0
    system.advance(WINDOW + 20)
    rejected(system.unstake(alice, shares), "ClaimWindowExpired")
    assert system.fund.pendingRedeemRequest(0, alice) == system.fund.claimableRedeemRequest(0, alice) == 0
    system.request_unstake(alice, shares)  # the expired request comes back, a new one starts the clock
    system.advance(COOLDOWN)
    assert system.fund.claimableRedeemRequest(0, alice) == shares
    assert system.fund.claimableRedeemRequest(1, alice) == 0  # every request has id 0
    rejected(system.unstake(alice, shares + 1), "ERC4626ExceededMaxRedeem")
    system.unstake(alice, shares // 4)
    system.unstake(alice, shares - shares // 4)
    assert system.token.balanceOf(alice) == 100 * TOKEN
    assert system.fund.redeemRequestOf(alice).shares == 0
    assert system.fund.totalSupply() == 0
    system.check(alice)


def test_max_redeem_and_max_withdraw_follow_the_request(system, alice):
    system.stake(alice, 100 * TOKEN)
    shares = system.fund.balanceOf(alice)
    assert system.fund.maxRedeem(alice) == 0
    system.request_unstake(alice, shares // 2)
    assert system.fund.maxRedeem(alice) == system.fund.maxWithdraw(alice) == 0
    system.advance(COOLDOWN + 1)
    assert system.fund.maxRedeem(alice) == shares // 2
    assert system.fund.maxWithdraw(alice) == 50 * TOKEN
    system.advance(WINDOW + 1)
    assert system.fund.maxRedeem(alice) == system.fund.maxWithdraw(alice) == 0


def test_withdraw_by_assets_pays_exactly_and_burns_enough_shares(system, alice):
    system.stake(alice, 100 * TOKEN)
    shares = system.fund.balanceOf(alice)
    system.request_unstake(alice, shares)
    system.advance(COOLDOWN + 1)
    system.fund_withdraw(alice, 40 * TOKEN)
    assert system.token.balanceOf(alice) == 40 * TOKEN
    assert system.fund.redeemRequestOf(alice).shares == shares * 6 // 10
    rejected(system.fund_withdraw(alice, 60 * TOKEN + 1), "ERC4626ExceededMaxWithdraw")
    system.fund_withdraw(alice, 60 * TOKEN)
    assert system.fund.totalSupply() == 0 and system.fund.totalAssets() == 0
    system.check(alice)


def test_cover_counts_the_credit_above_the_floor_and_pays_tokens_first(
    project, chain, deployer, alice, bob, carol, accounts
):
    """The floor and the per-event cap apply to the fund's assets, its tokens plus its credit in
    the vault. Cover is paid in tokens first; the credit pays only what the tokens cannot, and it
    is consulted only when the tokens above the floor do not cover the request."""
    from tests.support.system import MarketSpec

    system = System(project, chain, deployer, fund_spec=FundSpec(floor_tokens=100 * TOKEN))
    system.stake(alice, 250 * TOKEN)
    eth = system.add_market(2_000 * 10**18, MarketSpec(maker_fee_ratio=10**16, taker_fee_ratio=10**16))
    system.deposit(bob, 10_000 * TOKEN)
    system.deposit(carol, 10_000 * TOKEN)
    system.trade(bob, carol, eth, 10**18 * 5 // 4, 2_000 * 10**18)  # 2,500 of notional: 25 + 25 fees
    assert system.vault.fundCredit() == 50 * TOKEN
    assert system.fund.coverable() == 200 * TOKEN  # 250 + 50 − 100
    engine = accounts[system.engine.address]
    chain.set_balance(system.engine.address, 10**18)
    system.fund.cover(150 * TOKEN, sender=engine)  # the tokens above the floor suffice
    assert system.token.balanceOf(system.fund) == 100 * TOKEN and system.vault.fundCredit() == 50 * TOKEN
    tx = system.fund.cover(400 * TOKEN, sender=engine)  # now only the credit is above the floor
    [paid] = [log for log in tx.events if log.event_name == "CoverPaid"]
    assert (paid.requested, paid.paid) == (400 * TOKEN, 50 * TOKEN)
    # Tokens first: the fund's last 100 tokens would be paid before the credit, but the floor
    # keeps 100 of the assets: 50 tokens go, and the 50 of credit stay.
    assert system.token.balanceOf(system.fund) == 50 * TOKEN and system.vault.fundCredit() == 50 * TOKEN
    assert system.fund.totalAssets() == 100 * TOKEN and system.fund.coverable() == 0
