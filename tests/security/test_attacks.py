"""Attack scenarios with the bound each one is held to (see docs/security.md).

Fund-staker exits ahead of a loss, the donation attack on fund shares and withdrawing unrealized
profit have their own tests (tests/unit/liquidation, tests/unit/fund, tests/unit/engine) and
stress scenarios (scenarios/staker_exit_before_loss.yaml, scenarios/attacks/rotating_staker.yaml);
the rotating-requests attack on fund exits is below.
"""

from __future__ import annotations

import ape

from backstop.model import ModelRevert
from backstop.units import WAD

PRICE = 2000 * WAD
TOKEN = 10**6
DAY = 86_400


def rejected(result, name: str) -> None:
    assert isinstance(result, ModelRevert), f"expected {name}, the call succeeded"
    assert result.name == name


def test_colluding_accounts_at_the_band_edge_only_move_their_own_money(system, alice, bob, carol):
    """Bob buys 1 ETH from his accomplice alice at 2,100, the edge of the 5 % band around 2,000.
    The 100 of 'profit' alice books is paid out of bob's own margin: the IM check forces bob to
    post the band loss plus IM up front, so the pair cannot leave the system a deficit without a
    real price move, and alice's side is never withdrawable before it is realized against a third
    party. Bound: extraction <= band x notional <= bob's deposit - IMR."""
    eth = system.add_market(PRICE)
    system.deposit(alice, 1_000 * TOKEN)
    system.deposit(carol, 10_000 * TOKEN)
    # Bob posts less than band loss + IM (100 + 200): refused.
    system.deposit(bob, 299 * TOKEN)
    collusive = system.match(
        system.order(alice, eth, False, WAD, 2100 * WAD), system.order(bob, eth, True, WAD, 2100 * WAD), WAD
    )
    assert isinstance(collusive, ModelRevert) and collusive.name == "InsufficientMargin"
    system.deposit(bob, 1 * TOKEN)  # exactly band loss + IM
    system.trade(bob, alice, eth, WAD, 2100 * WAD)
    assert system.engine.equityOf(bob) == system.engine.initialMarginOf(bob) == 200 * WAD
    # Alice's 100 of unrealized profit is not withdrawable.
    assert system.engine.freeCollateralOf(alice) == (1_000 - 200) * WAD
    # Realizing it needs a real counterparty at a real price: carol sells to alice at 2,000.
    system.trade(alice, carol, eth, WAD, PRICE)
    assert system.vault.marginOf(alice) == 1_100 * WAD
    system.withdraw(alice, 1_100 * TOKEN)
    # The 100 came out of bob's deposit; bob is still above IM, nothing is owed by the system.
    assert system.engine.equityOf(bob) == 200 * WAD
    assert not system.model.liquidatable(bob.address)
    system.check(alice, bob, carol)


def test_a_liquidation_griefed_by_a_top_up_costs_the_keeper_nothing(system, alice, bob, keeper):
    """The account front-runs the keeper with a deposit: liquidation is refused with
    NotLiquidatable and nothing moves. The keeper dry-runs before sending, so a griefed
    liquidation costs it no gas (tests/integration/test_keeper.py)."""
    eth = system.add_market(PRICE)
    system.deposit(keeper, 100_000 * TOKEN)
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 250 * TOKEN)
    system.trade(bob, alice, eth, WAD, PRICE)
    system.set_price(eth, 1800 * WAD)
    assert system.model.liquidatable(bob.address)
    system.deposit(bob, 100 * TOKEN)  # the top-up lands first
    result = system.liquidate(bob, keeper)
    assert isinstance(result, ModelRevert) and result.name == "NotLiquidatable"
    system.check(alice, bob, keeper)


def test_keeper_reward_covers_gas_at_realistic_sizes_and_not_for_dust(system, alice, bob, carol, keeper):
    """The reward is 1 % of the liquidated notional. Measured here: the gas of a one-market
    liquidation (~224k). At 30 gwei and ETH at 2,000 that costs ~13.4 tokens: the 18-token reward
    on a 1-ETH position pays for it, a 0.0001-ETH position's 0.0018 does not. The floor
    (docs/security.md) is notional >= gas x gas price / rewardRatio: ~1,350 at 30 gwei on L1,
    ~0.5 at 0.01 gwei on an L2."""
    eth = system.add_market(PRICE)
    system.deposit(keeper, 100_000 * TOKEN)
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 250 * TOKEN)
    system.deposit(carol, 21_000)  # 0.021 token: just above the IM of 0.0001 ETH
    system.trade(bob, alice, eth, WAD, PRICE)  # realistic: 1 ETH
    system.trade(carol, alice, eth, WAD // 10_000, PRICE)  # dust: 0.0001 ETH
    system.set_price(eth, 1800 * WAD)
    big = system.liquidate(bob, keeper)
    gas = big["receipt"].gas_used
    gas_cost_tokens = gas * 30 * 10**9 * 2000 * WAD // 10**18  # 30 gwei, ETH at 2,000, in WAD
    assert big["keeper_reward"] == 18 * WAD > gas_cost_tokens
    floor_notional = gas_cost_tokens * 100  # reward ratio 1 %
    assert 1_000 * WAD < floor_notional < 1_800 * WAD
    assert system.model.liquidatable(carol.address)
    dust = system.liquidate(carol, keeper)
    assert dust["keeper_reward"] < gas_cost_tokens  # nobody rational liquidates this on L1
    system.check(alice, bob, carol, keeper)


def test_rotating_requests_cannot_exit_ahead_of_loss(
    system, alice, bob, carol, dave, keeper, accounts, ledger
):
    """The finding (docs/security.md): requests did not lock their shares, so one stake, moved
    from address to address, backed staggered requests of which one always had an open window;
    the rotating staker left with 100 % of its pre-loss value and the honest staker paid the whole
    cover. Now ``requestRedeem`` escrows the shares: the attacker's two addresses can only request
    the shares each holds, the escrowed shares cannot move or back a second request, neither
    window opens before the loss, and both stakers bear it pro-rata."""
    eth = system.add_market(PRICE)
    honest, attacker, alt, third = carol, dave, accounts[6], accounts[7]
    system.stake(honest, 1_000 * TOKEN)
    system.stake(attacker, 1_000 * TOKEN)
    shares = system.fund.balanceOf(attacker)
    assert shares == 10**15
    # Day 0: the attacker splits its stake over two addresses and requests on both, 4 days apart.
    system.transfer_shares(attacker, alt, shares // 2)
    system.request_unstake(attacker, shares // 2)
    system.advance(4 * DAY)
    system.request_unstake(alt, shares // 2)
    assert system.fund.balanceOf(system.fund) == shares and system.fund.balanceOf(attacker) == 0

    # Day 5: a loss is coming. Every rotation attempt reverts and moves nothing.
    system.advance(DAY)
    before = ledger(system, honest, attacker, alt, third)
    with ape.reverts(system.fund.ERC20InsufficientBalance, sender=attacker.address, balance=0, needed=1):
        system.fund.transfer(third, 1, sender=attacker)  # escrowed shares are not the attacker's
    rejected(system.request_unstake(attacker, shares // 2, controller=third), "InvalidRedeemRequest")
    rejected(system.request_unstake(alt, 1), "RedeemRequestOpen")  # one open request per controller
    rejected(system.unstake(attacker, shares // 2), "CooldownNotElapsed")
    rejected(system.unstake(alt, shares // 2), "CooldownNotElapsed")
    assert ledger(system, honest, attacker, alt, third) == before

    # The loss: bob's 1-ETH long at 2,000 on 210 tokens, liquidated at 1,700: the fund pays 107.
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 210 * TOKEN)
    system.deposit(keeper, 1_000 * TOKEN)
    system.set_price(eth, PRICE)  # a fresh answer after five days
    system.trade(bob, alice, eth, WAD, PRICE)
    system.set_price(eth, 1700 * WAD)
    result = system.liquidate(bob, keeper)
    assert result["covered"] == 107 * WAD
    assert system.fund.totalAssets() == 1_893 * TOKEN

    # Day 7 and day 11: each request pays min(value at request, value now) = its share of the loss.
    system.advance(2 * DAY)
    system.set_price(eth, 1700 * WAD)
    paid_first = system.fund.maxWithdraw(attacker)
    system.unstake(attacker, shares // 2)
    system.advance(4 * DAY)
    system.set_price(eth, 1700 * WAD)
    paid_second = system.fund.maxWithdraw(alt)
    system.unstake(alt, shares // 2)
    attacker_total = system.token.balanceOf(attacker) + system.token.balanceOf(alt)
    honest_value = system.fund.convertToAssets(system.fund.balanceOf(honest))
    # 500 · 1,893 / 2,000 = 473.25 tokens each (5·10^14 · (1,893·10^6 + 1) // (2·10^15 + 10^6)).
    assert (paid_first, paid_second) == (473_250_000, 473_250_000)
    assert attacker_total == 946_500_000  # 1,000 − 53.5: half the 107-token cover
    assert honest_value == 946_500_000  # the honest staker lost 53.5 tokens too
    assert system.fund.totalAssets() == 946_500_000 and system.fund.totalSupply() == shares
    system.check(honest, attacker, alt)


def _value(system, account) -> int:
    return system.fund.convertToAssets(system.fund.balanceOf(account))


def _pro_rata(system, shares: int) -> int:
    """What ``shares`` are worth now by the ERC-4626 formula (virtual share and asset included)."""
    return shares * (system.fund.totalAssets() + 1) // (system.fund.totalSupply() + 10**6)


def test_staking_around_fees_and_sweeps_gains_nothing_beyond_the_pro_rata_share(
    system, alice, bob, carol, dave, stranger
):
    """Fees are booked as the fund's credit in the vault and swept in later (docs/design.md §6).
    The fund's ``totalAssets`` counts the credit, so the share price moves when a fee is booked and
    never at the sweep: a staker who stakes just before a sweep buys at the price that already
    counts the credit, and one who exits just after fees accrue takes exactly its pro-rata part of
    them. A sweep by a stranger moves the credit to the fund and nothing else."""
    from tests.support.system import MarketSpec

    eth = system.add_market(PRICE, MarketSpec(maker_fee_ratio=WAD // 5_000, taker_fee_ratio=WAD // 2_000))
    honest, attacker = carol, dave
    system.stake(honest, 1_000 * TOKEN)
    honest_shares = system.fund.balanceOf(honest)
    system.deposit(alice, 10_000 * TOKEN)
    system.deposit(bob, 10_000 * TOKEN)
    system.trade(alice, bob, eth, 10 * WAD, PRICE)  # 20,000 of notional: fees 4 + 10 tokens
    assert system.vault.fundCredit() == 14 * TOKEN and system.token.balanceOf(system.fund) == 1_000 * TOKEN
    # The fees are the honest staker's at once: its shares are worth its stake plus (almost) all 14.
    assert _value(system, honest) == _pro_rata(system, honest_shares) == 1_013_999_999

    # The attacker stakes just before a sweep: it pays the price that counts the credit.
    system.stake(attacker, 1_000 * TOKEN)
    attacker_shares = system.fund.balanceOf(attacker)
    staked_value = _value(system, attacker)
    assert staked_value <= 1_000 * TOKEN
    before = (_value(system, honest), staked_value, system.fund.totalAssets(), system.fund.totalSupply())
    balances = {a: system.token.balanceOf(a) for a in (alice, bob, honest, attacker, stranger)}
    margins = {a: system.vault.marginOf(a) for a in (alice, bob)}
    vault_tokens = system.token.balanceOf(system.vault)

    system.sweep(stranger)  # anyone may sweep; it moves the credit and nothing else
    assert system.vault.fundCredit() == 0
    assert system.token.balanceOf(system.fund) == 2_014 * TOKEN
    assert system.token.balanceOf(system.vault) == vault_tokens - 14 * TOKEN
    assert (
        _value(system, honest),
        _value(system, attacker),
        system.fund.totalAssets(),
        system.fund.totalSupply(),
    ) == before
    assert {a: system.token.balanceOf(a) for a in balances} == balances
    assert {a: system.vault.marginOf(a) for a in margins} == margins
    rejected(system.sweep(stranger), "NothingToSweep")

    # The attacker redeems right after the next fees accrue: it gets its pro-rata part of them.
    system.trade(bob, alice, eth, 10 * WAD, PRICE)  # both close: fees of 4 + 10 tokens again
    assert system.vault.fundCredit() == 14 * TOKEN
    gain = _pro_rata(system, attacker_shares) - staked_value
    supply = system.fund.totalSupply() + 10**6
    assert gain <= 14 * TOKEN * attacker_shares // supply + 1  # its share of the new fees, no more
    system.request_unstake(attacker, attacker_shares)
    requested_value = system.fund.redeemRequestOf(attacker).assets
    assert requested_value == staked_value + gain
    system.advance(7 * DAY)
    system.unstake(attacker, attacker_shares)
    assert system.token.balanceOf(attacker) - balances[attacker] == requested_value
    # The honest staker kept the rest: its stake, the first 14 less rounding and its half of the next.
    assert _value(system, honest) >= 1_000 * TOKEN + 14 * TOKEN + 7 * TOKEN - 2
    system.check(alice, bob, honest, attacker, stranger)


def test_cover_and_redemptions_beyond_the_funds_tokens_are_paid_out_of_its_credit(
    system, alice, bob, carol, dave, keeper
):
    """The credit is as good as tokens: a cover larger than the tokens the fund holds takes the
    rest out of the credit (no token moves: it is in the vault already), and a claim that needs
    more tokens than the fund holds first sweeps the credit in. What was payable when fees were
    transferred at once stays payable."""
    from tests.support.system import MarketSpec

    eth = system.add_market(PRICE, MarketSpec(maker_fee_ratio=WAD // 5_000, taker_fee_ratio=WAD // 2_000))
    system.stake(carol, 100 * TOKEN)
    system.deposit(alice, 20_000 * TOKEN)
    system.deposit(dave, 10_000 * TOKEN)
    system.deposit(bob, 210 * TOKEN)
    system.deposit(keeper, 1_000 * TOKEN)
    system.trade(dave, alice, eth, 20 * WAD, PRICE)  # 40,000 of notional: fees 8 + 20 tokens
    system.trade(bob, alice, eth, WAD, PRICE)  # 2,000: fees 0.4 + 1
    assert system.vault.fundCredit() == 29_400_000 and system.token.balanceOf(system.fund) == 100 * TOKEN
    # Bob's long, liquidated at 1,700: a deficit of about 107, more than the fund's 100 tokens.
    system.set_price(eth, 1700 * WAD)
    covered = system.liquidate(bob, keeper)["covered"] // 10**12
    assert 100 * TOKEN < covered < 129_400_000
    assert system.token.balanceOf(system.fund) == 0  # every token went first ...
    credit = system.vault.fundCredit()
    assert credit == 29_400_000 - (covered - 100 * TOKEN)  # ... the rest came out of the credit
    assert system.fund.totalAssets() == credit
    # Carol's whole stake is now worth the credit and nothing in tokens: her claim pulls it.
    shares = system.fund.balanceOf(carol)
    system.request_unstake(carol, shares)
    owed = system.fund.redeemRequestOf(carol).assets
    assert 0 < owed <= credit
    system.advance(7 * DAY)
    system.set_price(eth, 1700 * WAD)  # a fresh answer for the final check of the open positions
    wallet = system.token.balanceOf(carol)
    system.unstake(carol, shares)
    assert system.token.balanceOf(carol) - wallet == owed
    assert system.vault.fundCredit() == 0  # pulled in full by the claim
    assert system.token.balanceOf(system.fund) == credit - owed == system.fund.totalAssets()
    system.check(alice, bob, carol, dave, keeper)
