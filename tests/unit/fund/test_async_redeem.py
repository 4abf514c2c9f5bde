"""InsuranceFund's EIP-7540 asynchronous redemption: escrow, one request per controller, the
cancel rule, expired requests, operators, allowances, previews and ERC-165 (docs/design.md §6,
docs/margin-math.md "Insurance fund"). Every call runs in lockstep with the reference model."""

from __future__ import annotations

import ape

from backstop.model import ModelRevert

TOKEN = 10**6
DAY = 86_400
COOLDOWN = 7 * DAY
WINDOW = 2 * DAY


def rejected(result, name: str) -> None:
    assert isinstance(result, ModelRevert), f"expected {name}, the call succeeded"
    assert result.name == name


def donate(system, sender, amount: int) -> None:
    """A plain token transfer into the fund (income, as fees are)."""
    system.token.mint(sender, amount, sender=system.deployer)
    system.token.transfer(system.fund, amount, sender=sender)
    system.model.donate_to_fund(amount)


def test_previews_revert_for_async_redemption(system, alice):
    system.stake(alice, 100 * TOKEN)
    for preview, amount in ((system.fund.previewRedeem, 10**12), (system.fund.previewWithdraw, TOKEN)):
        with ape.reverts(system.fund.AsyncRedeemNoPreview, amount=amount):
            preview(amount)
    # Deposits stay synchronous ERC-4626: their previews are exact.
    assert system.fund.previewDeposit(TOKEN) == 10**12 == system.fund.convertToShares(TOKEN)
    assert system.fund.previewMint(10**12) == TOKEN


def test_supports_interface(system):
    fund = system.fund
    assert fund.supportsInterface("0x620ee8e4")  # IERC7540Redeem
    assert fund.supportsInterface("0xe3bc4e65")  # IERC7540Operator
    assert fund.supportsInterface("0x01ffc9a7")  # IERC165
    assert not fund.supportsInterface("0xffffffff")
    assert not fund.supportsInterface("0xce3bbe50")  # IERC7540Deposit: deposits are synchronous
    assert fund.share() == fund.address


def test_escrowed_shares_cannot_be_transferred_or_requested_twice(system, alice, bob, carol):
    system.stake(alice, 100 * TOKEN)
    shares = system.fund.balanceOf(alice)
    system.request_unstake(alice, shares)
    with ape.reverts(system.fund.ERC20InsufficientBalance, sender=alice.address, balance=0, needed=1):
        system.fund.transfer(bob, 1, sender=alice)
    rejected(system.transfer_shares(alice, bob, 1), "ERC20InsufficientBalance")
    # Another controller cannot be given the same shares, and the controller has one open request.
    rejected(system.request_unstake(alice, shares, controller=bob), "InvalidRedeemRequest")
    with ape.reverts(system.fund.RedeemRequestOpen, controller=alice.address):
        system.fund.requestRedeem(1, alice, alice, sender=alice)
    system.stake(alice, TOKEN)
    rejected(system.request_unstake(alice, 1), "RedeemRequestOpen")
    system.request_unstake(alice, 10**12, controller=carol)  # new shares, another controller: fine
    assert system.fund.balanceOf(system.fund) == shares + 10**12
    system.check(alice, bob, carol)


def test_cancel_forfeits_cooldown_gains(system, alice, bob):
    system.stake(alice, 1_000 * TOKEN)
    system.stake(bob, 1_000 * TOKEN)
    system.request_unstake(alice, 10**15)  # worth V = 1,000 tokens
    donate(system, bob, 200 * TOKEN)  # income during the cooldown: 10^15 shares now worth 1,100
    system.advance(COOLDOWN + 1)
    tx = system.cancel_unstake(alice)
    # r = ⌊V·(S' − n)/(A' − V)⌋ = ⌊10^9 · (10^15 + 10^6) / (1.2·10^9 + 1)⌋ = 833,333,333,472,222.
    [event] = [log for log in tx.events if log.event_name == "RedeemRequestCancelled"]
    assert (event.controller, event.returnedShares, event.burnedShares) == (
        alice.address,
        833_333_333_472_222,
        166_666_666_527_778,
    )
    assert system.fund.balanceOf(alice) == 833_333_333_472_222
    assert system.fund.convertToAssets(system.fund.balanceOf(alice)) == 999_999_999  # ≤ V
    assert system.fund.convertToAssets(system.fund.balanceOf(bob)) == 1_199_999_999  # the whole gain
    assert system.fund.redeemRequestOf(alice).shares == 0 and system.fund.balanceOf(system.fund) == 0
    rejected(system.cancel_unstake(alice), "NoRedeemRequest")
    system.check(alice, bob)


def test_cancel_after_a_loss_gives_back_every_share(system, alice, accounts):
    system.stake(alice, 1_000 * TOKEN)
    system.request_unstake(alice, 4 * 10**14)
    # The engine draws 100 tokens of cover (impersonated: a liquidation would do the same).
    system.chain.set_balance(system.engine.address, 10**18)
    system.fund.cover(100 * TOKEN, sender=accounts[system.engine.address])
    system.model.fund_tokens -= 100 * TOKEN
    system.model.vault_tokens += 100 * TOKEN
    system.cancel_unstake(alice)  # the 4·10^14 shares are worth 360 < 400 tokens: all come back
    assert system.fund.balanceOf(alice) == 10**15 and system.fund.totalSupply() == 10**15
    system.check(alice)


def test_expired_request_returned_on_next_request(system, alice, bob):
    system.stake(alice, 1_000 * TOKEN)
    system.stake(bob, 1_000 * TOKEN)
    system.request_unstake(alice, 10**15)
    donate(system, bob, 200 * TOKEN)
    system.advance(COOLDOWN + WINDOW + 1)  # expired: nothing to claim, the shares still escrowed
    assert system.fund.maxRedeem(alice) == system.fund.maxWithdraw(alice) == 0
    rejected(system.unstake(alice, 1), "ClaimWindowExpired")
    assert system.fund.balanceOf(alice) == 0
    tx = system.request_unstake(alice, 10**14)
    names = [log.event_name for log in tx.events]
    assert names.index("RedeemRequestCancelled") < names.index("RedeemRequest")
    # The expired request came back by the cancel rule (as in the test above), then 10^14 of the
    # 833,333,333,472,222 returned shares were escrowed again.
    assert system.fund.balanceOf(alice) == 833_333_333_472_222 - 10**14
    assert system.fund.totalSupply() == 2 * 10**15 - 166_666_666_527_778
    assert system.fund.redeemRequestOf(alice).shares == 10**14
    system.check(alice, bob)


def test_operator_requests_claims_and_cancels_for_the_controller(system, alice, bob, carol):
    system.stake(alice, 100 * TOKEN)
    shares = system.fund.balanceOf(alice)
    rejected(system.request_unstake(alice, shares, sender=bob), "ERC20InsufficientAllowance")
    tx = system.set_operator(alice, bob, True)
    [event] = [log for log in tx.events if log.event_name == "OperatorSet"]
    assert (event.controller, event.operator, event.approved) == (alice.address, bob.address, True)
    assert system.fund.isOperator(alice, bob) and not system.fund.isOperator(bob, alice)
    system.request_unstake(alice, shares, sender=bob)  # bob, alice's operator, requests for her
    system.advance(COOLDOWN)
    with ape.reverts(system.fund.NotControllerOrOperator, caller=carol.address, controller=alice.address):
        system.fund.redeem(1, carol, alice, sender=carol)
    rejected(system.unstake(alice, shares // 2, sender=carol), "NotControllerOrOperator")
    rejected(system.cancel_unstake(alice, sender=carol), "NotControllerOrOperator")
    system.unstake(alice, shares // 2, sender=bob, receiver=carol)  # paid to the receiver bob names
    assert system.token.balanceOf(carol) == 50 * TOKEN
    system.set_operator(alice, bob, False)
    rejected(system.cancel_unstake(alice, sender=bob), "NotControllerOrOperator")
    system.cancel_unstake(alice)
    assert system.fund.balanceOf(alice) == shares - shares // 2
    system.check(alice, bob, carol)


def test_request_by_allowance_for_another_controller(system, alice, bob, carol):
    system.stake(alice, 100 * TOKEN)
    system.approve_shares(alice, bob, 10**13)
    tx = system.request_unstake(alice, 4 * 10**12, controller=carol, sender=bob)
    [event] = [log for log in tx.events if log.event_name == "RedeemRequest"]
    assert (event.controller, event.owner, event.sender) == (carol.address, alice.address, bob.address)
    assert system.fund.allowance(alice, bob) == 6 * 10**12
    assert system.fund.redeemRequestOf(carol).shares == 4 * 10**12
    rejected(
        system.request_unstake(alice, 7 * 10**12, controller=bob, sender=bob), "ERC20InsufficientAllowance"
    )
    system.advance(COOLDOWN)
    rejected(
        system.unstake(carol, 1, sender=alice), "NotControllerOrOperator"
    )  # the owner is not the controller
    system.unstake(carol, 4 * 10**12)
    assert system.token.balanceOf(carol) == 4 * TOKEN
    system.check(alice, bob, carol)


def test_max_claims_are_exact(system, alice, bob):
    system.stake(alice, 1_000 * TOKEN)
    system.stake(bob, 333 * TOKEN)
    system.request_unstake(alice, 777_777_777_777_777)
    donate(system, bob, 17 * TOKEN + 3)
    system.advance(COOLDOWN)
    most = system.fund.maxWithdraw(alice)
    system.model.now = system.chain.blocks.head.timestamp
    assert most == system.model.max_withdraw(alice.address) == system.fund.redeemRequestOf(alice).assets
    rejected(system.fund_withdraw(alice, most + 1), "ERC4626ExceededMaxWithdraw")
    system.fund_withdraw(alice, most)  # withdraw(maxWithdraw) succeeds and empties the request
    assert system.token.balanceOf(alice) == most
    assert system.fund.maxRedeem(alice) == 0 and system.fund.balanceOf(system.fund) == 0
    system.check(alice, bob)
