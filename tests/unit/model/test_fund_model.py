# Pure Python, no chain. Run without the Ape plugin (its entry point is named `ape_test`):
#   .venv/bin/python -m pytest tests/unit/model -p no:ape_test -q
"""The insurance fund of the reference model: ERC-4626 share math with a decimals offset of 6 and the
EIP-7540 request (escrow) -> cooldown -> claim rules, and the cancel rule (docs/margin-math.md §"Insurance fund").

Token amounts are in units of a 6-decimal token (1 token = 10**6 units); shares are the fund's own
ERC-20 units, 10**6 per token unit at the start (the offset). With ``A = totalAssets`` and
``S = totalSupply``:

    convertToShares(a) = a·(S + 10^6) // (A + 1)       convertToAssets(s) = s·(A + 1) // (S + 10^6)

A handy identity for the hand computations: ``10^15 + 10^6 = 10^6·(10^9 + 1)``.
"""

from __future__ import annotations

import pytest

from backstop.model import MarketParams, Model
from tests.unit.model.test_model import ALICE, BOB, CAROL, DAVE, W, reverts, tokens, trade

DAY = 86400
COOLDOWN = 7 * DAY
WINDOW = 2 * DAY
TRADER = "0x00000000000000000000000000000000000007AD"
WINNER = "0x0000000000000000000000000000000000000171"
KEEPER = "0x000000000000000000000000000000000000CEE9"


def plain_params(**overrides: int) -> MarketParams:
    """IM 10 %, MM 5 %, no keeper reward, no insurance fee, no trading fees: deficits are round."""
    base = {
        "im_ratio": W("0.1"),
        "mm_ratio": W("0.05"),
        "keeper_reward_ratio": 0,
        "insurance_fee_ratio": 0,
        "price_band_ratio": W("0.1"),
        "maker_fee_ratio": 0,
        "taker_fee_ratio": 0,
        "oi_cap": W(1_000_000),
    }
    base.update(overrides)
    return MarketParams(**base)


def fund_model(**kwargs: int) -> Model:
    """Market 0 at 100 without fees or liquidation rewards."""
    model = Model(6, **kwargs)
    model.add_market(plain_params(), W(100))
    return model


def bad_debt(model: Model, deficit_tokens: int) -> dict:
    """A trader with 100 tokens long 10 @ 100 is liquidated at ``100 - (100 + d)/10``: D = d tokens.

    With no keeper reward and no insurance fee, ``m0 = 100 + 10·(P - 100) = -d`` and ``D = d``. The
    cover the fund pays is ``min(d, coverable())`` tokens.
    """
    model.deposit(TRADER, tokens(100))
    model.deposit(WINNER, tokens(1_000_000))
    model.deposit(KEEPER, tokens(1_000_000))
    trade(model, TRADER, WINNER, W(10), W(100))
    model.set_price(0, W(100) - W(100 + deficit_tokens) // 10)
    result = model.liquidate(TRADER, KEEPER)
    assert result["deficit"] == W(deficit_tokens)
    model.set_price(0, W(100))
    return result


def test_constructor_defaults():
    model = Model()
    assert (model.cooldown, model.window, model.floor_tokens, model.per_event_cap_tokens) == (
        7 * DAY,
        2 * DAY,
        0,
        0,
    )
    assert model.scale == 10**12
    assert model.fund_assets() == model.fund_supply() == model.coverable() == 0
    assert model.redeem_request(ALICE) is None


# --- share math -----------------------------------------------------------------------------------


def test_first_deposit_then_fees_raise_the_share_price():
    model = Model(6)
    model.add_market(plain_params(maker_fee_ratio=W("0.001"), taker_fee_ratio=W("0.002")), W(100))

    # First deposit of 1,000 tokens: 10^9 · (0 + 10^6) // (0 + 1) = 10^15 shares.
    assert model.stake(ALICE, tokens(1_000)) == 10**15
    assert model.fund_assets() == 10**9 and model.fund_supply() == 10**15
    # Worth 10^15 · (10^9 + 1) // (10^15 + 10^6) = 10^9 exactly (numerator = 10^9 · denominator).
    assert model.convert_to_assets(10**15) == 10**9

    # Trading fees: notional 1,000 -> maker 0.1 % = 1 token, taker 0.2 % = 2 tokens, to the fund.
    model.deposit(BOB, tokens(1_000))
    model.deposit(CAROL, tokens(1_000))
    trade(model, BOB, CAROL, W(10), W(100))
    assert model.fund_assets() == 1_003_000_000

    # Alice's shares: 10^15 · 1,003,000,001 / (10^15 + 10^6) = 1,003,000,001 / (1 + 10^-9)
    #   = 1,002,999,999.997 -> 1,002,999,999 units. The 10^6 virtual shares keep a sliver of the fees.
    assert model.convert_to_assets(10**15) == 1_002_999_999

    # A second staker deposits 1,003 tokens at the new price:
    #   1,003·10^6 · 10^6·(10^9 + 1) // 1,003,000,001 = 10^15 + 10^6 − 10^6·(10^9 + 1)/1,003,000,001
    #   = 10^15 + 10^6 − 997,008.97 = 1,000,000,000,002,991.03 -> 1,000,000,000,002,991 shares.
    assert model.stake(DAVE, tokens(1_003)) == 1_000_000_000_002_991
    # Both now hold (nearly) the same value: each 1,002.999999 tokens.
    assert model.convert_to_assets(model.fund_shares(DAVE)) == 1_002_999_999
    assert model.convert_to_assets(model.fund_shares(ALICE)) == 1_002_999_999
    assert model.fund_supply() == model.fund_shares(ALICE) + model.fund_shares(DAVE)


def test_a_zero_stake_mints_nothing_and_is_allowed():
    model = fund_model()
    assert model.stake(ALICE, 0) == 0
    assert model.fund_supply() == 0 and model.fund_assets() == 0


def test_conversions_round_down():
    model = fund_model()
    model.stake(ALICE, tokens(1_000))
    model.donate_to_fund(tokens(100))
    # 10^8 · 10^6·(10^9 + 1) / 1,100,000,001 = 90,909,090,917,355.38 -> down: ...355 (a withdraw of
    # 10^8 burns at least the rounded-up ...356).
    assert model.convert_to_shares(10**8) == 90_909_090_917_355
    # 10^14 · 1,100,000,001 / 10^6·(10^9 + 1) = 109,999,999.89 -> 109,999,999.
    assert model.convert_to_assets(10**14) == 109_999_999


def _inflation(victim_units: int, donation_units: int) -> tuple[int, int, int]:
    """Attacker stakes 1 unit, donates, victim stakes: (victim shares, victim loss, attacker loss)."""
    model = fund_model()
    assert model.stake(BOB, 1) == 10**6  # 1 · (0 + 10^6) // (0 + 1)
    model.donate_to_fund(donation_units)
    shares = model.stake(ALICE, victim_units)
    victim_loss = victim_units - model.convert_to_assets(shares)
    attacker_loss = 1 + donation_units - model.convert_to_assets(10**6)
    return shares, victim_loss, attacker_loss


def test_donation_attack_costs_the_attacker_a_million_times_what_the_victim_loses():
    # Attacker: 1 unit for 10^6 shares, then donates 10,000 tokens: A = 10^10 + 1, S = 10^6.
    # Victim stakes 1,000 tokens: 10^9 · (10^6 + 10^6) // (10^10 + 2) = 199,999.99996 -> 199,999 shares.
    # Afterwards A = 11,000,000,001 and S = 1,199,999; the victim's shares are worth
    #   199,999 · 11,000,000,002 // 2,199,999 = 999,995,454 units: a loss of 4,546 units (0.004546
    #   token), the 0.99996 share lost to rounding at about 4,545.5 units a share.
    # The attacker's 10^6 shares are worth 10^6 · 11,000,000,002 // 2,199,999 = 5,000,002,273: the
    # virtual shares took half of its donation, 4,999,997,728 units (~5,000 tokens) lost.
    shares, victim_loss, attacker_loss = _inflation(tokens(1_000), tokens(10_000))
    assert (shares, victim_loss, attacker_loss) == (199_999, 4_546, 4_999_997_728)


@pytest.mark.parametrize("victim", [1, 10**3, 10**6, 10**9, 10**12])
@pytest.mark.parametrize("donation", [10**3, 10**6, 10**9, 10**12, 10**15])
def test_donation_attack_is_bounded(victim, donation):
    shares, victim_loss, attacker_loss = _inflation(victim, donation)
    # The victim mints 0 shares only if victim · 2·10^6 < donation + 2: the attacker must donate two
    # million times the deposit (and loses half of it to the virtual shares).
    assert (shares == 0) == (victim * 2 * 10**6 < donation + 2)
    # Otherwise the victim loses less than one share's worth, (A + 1) / (S + 10^6) ≤ (donation +
    # victim + 3) / 2·10^6, plus one unit of rounding...
    assert victim_loss <= (donation + victim + 3) // (2 * 10**6) + 1
    # ... while the attacker loses half its donation to the virtual shares (less the half of the
    # victim's loss it picks up): over 10^5 times the victim's loss beyond one unit of rounding.
    assert attacker_loss >= donation // 2 - victim_loss
    assert attacker_loss >= 10**5 * (victim_loss - 1)


# --- request, cooldown, exit ----------------------------------------------------------------------


@pytest.fixture
def staked() -> Model:
    """Alice alone staked 1,000 tokens (10^15 shares) and at t = 100 requests 4·10^14 shares."""
    model = fund_model()
    model.stake(ALICE, tokens(1_000))
    model.now = 100
    model.request_unstake(ALICE, 4 * 10**14)
    # 4·10^14 · (10^9 + 1) // (10^15 + 10^6) = 4·10^8 exactly.
    assert model.redeem_request(ALICE) == (4 * 10**14, 4 * 10**8, 100)
    return model


def test_request_needs_between_one_share_and_the_balance():
    model = fund_model()
    assert reverts(model, "InvalidRedeemRequest", model.request_unstake, ALICE, 1).args == (1, 0)
    model.stake(ALICE, tokens(1))
    reverts(model, "InvalidRedeemRequest", model.request_unstake, ALICE, 0)
    reverts(model, "InvalidRedeemRequest", model.request_unstake, ALICE, 10**12 + 1)
    model.request_unstake(ALICE, 10**12)
    assert model.redeem_request(ALICE) == (10**12, 10**6, 0)


def test_request_escrows_the_shares_and_allows_one_open_request(staked):
    assert staked.fund_shares(ALICE) == 6 * 10**14  # 4·10^14 moved into the fund's custody
    assert staked.fund_escrow() == 4 * 10**14 and staked.fund_supply() == 10**15  # still in the supply
    staked.now = 100 + COOLDOWN + WINDOW  # a live request (claimable until this second, inclusive)
    err = reverts(staked, "RedeemRequestOpen", staked.request_unstake, ALICE, 10**14)
    assert err.args == (ALICE, 100 + COOLDOWN + WINDOW)
    # Escrowed shares cannot be moved or requested again.
    err = reverts(staked, "ERC20InsufficientBalance", staked.transfer_shares, ALICE, BOB, 6 * 10**14 + 1)
    assert err.args == (ALICE, 6 * 10**14, 6 * 10**14 + 1)
    err = reverts(staked, "InvalidRedeemRequest", staked.request_unstake, ALICE, 6 * 10**14 + 1, BOB)
    assert err.args == (6 * 10**14 + 1, 6 * 10**14)


def test_redeem_in_the_window_in_parts(staked):
    staked.now = 100 + COOLDOWN - 1
    err = reverts(staked, "CooldownNotElapsed", staked.unstake, ALICE, 10**14)
    assert err.args == (100 + COOLDOWN, 100 + COOLDOWN - 1)

    staked.now = 100 + COOLDOWN  # inclusive
    # min(10^14 · (10^9 + 1) // (10^15 + 10^6) = 10^8, 4·10^8 · 10^14 // 4·10^14 = 10^8)
    assert staked.unstake(ALICE, 10**14) == 10**8
    assert staked.redeem_request(ALICE) == (3 * 10**14, 3 * 10**8, 100)
    assert staked.fund_shares(ALICE) == 6 * 10**14  # burnt from escrow, not from the wallet
    assert staked.fund_supply() == 9 * 10**14 and staked.fund_escrow() == 3 * 10**14
    assert staked.fund_assets() == 9 * 10**8
    err = reverts(staked, "ERC4626ExceededMaxRedeem", staked.unstake, ALICE, 3 * 10**14 + 1)
    assert err.args == (ALICE, 3 * 10**14 + 1, 3 * 10**14)

    staked.now = 100 + COOLDOWN + WINDOW  # last second of the window, inclusive
    assert staked.unstake(ALICE, 3 * 10**14) == 3 * 10**8
    assert staked.redeem_request(ALICE) is None  # fully used: deleted
    assert staked.fund_shares(ALICE) == 6 * 10**14 and staked.fund_supply() == 6 * 10**14
    assert staked.fund_assets() == 6 * 10**8
    reverts(staked, "NoRedeemRequest", staked.unstake, ALICE, 1)


def test_redeem_after_the_window_reverts(staked):
    staked.now = 100 + COOLDOWN + WINDOW + 1
    err = reverts(staked, "ClaimWindowExpired", staked.unstake, ALICE, 1)
    assert err.args == (100 + COOLDOWN + WINDOW, 100 + COOLDOWN + WINDOW + 1)
    reverts(staked, "ClaimWindowExpired", staked.fund_withdraw, ALICE, 1)
    assert staked.max_redeem(ALICE) == staked.max_withdraw(ALICE) == staked.pending_redeem(ALICE) == 0
    # Request again: the expired request is returned first (worth exactly its 4·10^8 at request:
    # 4·10^14 · (10^9 + 1) = 4·10^8 · 10^6·(10^9 + 1), so all of it), then a new cooldown starts.
    staked.request_unstake(ALICE, 4 * 10**14)
    assert staked.fund_shares(ALICE) == 6 * 10**14 and staked.fund_supply() == 10**15
    assert staked.redeem_request(ALICE) == (4 * 10**14, 4 * 10**8, 100 + COOLDOWN + WINDOW + 1)
    reverts(staked, "CooldownNotElapsed", staked.unstake, ALICE, 1)


def test_no_request_reverts_for_both_exits():
    model = fund_model()
    model.stake(ALICE, tokens(1))
    reverts(model, "NoRedeemRequest", model.unstake, ALICE, 1)
    reverts(model, "NoRedeemRequest", model.fund_withdraw, ALICE, 1)


def test_a_loss_during_cooldown_lowers_the_payout():
    model = fund_model()
    model.stake(ALICE, tokens(1_000))  # 10^15 shares
    # Bob at the same price: 10^9 · 10^6·(10^9 + 1) // (10^9 + 1) = 10^15 shares.
    assert model.stake(BOB, tokens(1_000)) == 10**15
    model.request_unstake(ALICE, 10**15)
    # 10^15 · (2·10^9 + 1) // 10^6·(2·10^9 + 1) = 10^9.
    assert model.redeem_request(ALICE) == (10**15, 10**9, 0)

    result = bad_debt(model, 400)  # the fund covers 400 tokens while Alice waits
    assert result["covered"] == W(400) and result["socialized"] == 0
    assert model.fund_assets() == 1_600_000_000

    model.now = COOLDOWN
    # Now worth 10^15 · (1.6·10^9 + 1) // 10^6·(2·10^9 + 1) = (1.6·10^18 + 10^9) // (2·10^9 + 1)
    #   = 800,000,000 (remainder 2·10^8): min(800,000,000, 10^9) -> she bears half the loss.
    assert model.unstake(ALICE, 10**15) == 800_000_000
    # Bob: 10^15 · (8·10^8 + 1) // 10^6·(10^9 + 1) = 800,000,000 (remainder 2·10^8): the other half.
    assert model.convert_to_assets(model.fund_shares(BOB)) == 800_000_000


def test_a_gain_during_cooldown_does_not_raise_the_payout_and_stays_for_others():
    model = fund_model()
    model.stake(ALICE, tokens(1_000))
    model.stake(BOB, tokens(1_000))
    model.request_unstake(ALICE, 10**15)  # worth 10^9
    model.donate_to_fund(tokens(200))  # fees or a donation: A = 2.2·10^9
    model.now = COOLDOWN + 1
    # Now worth 10^15 · (2.2·10^9 + 1) // 10^6·(2·10^9 + 1) = 1,099,999,999 (the 0.95 rounds away);
    # paid min(1,099,999,999, 10^9) = 10^9: the 100-token gain Alice saw coming is withheld.
    assert model.convert_to_assets(10**15) == 1_099_999_999
    assert model.unstake(ALICE, 10**15) == 10**9
    # Bob keeps all of it: 10^15 · (1.2·10^9 + 1) // 10^6·(10^9 + 1) = 1,199,999,999.
    assert model.fund_assets() == 1_200_000_000
    assert model.convert_to_assets(model.fund_shares(BOB)) == 1_199_999_999


def test_withdraw_assets_burns_the_larger_of_both_share_counts(staked):
    staked.donate_to_fund(tokens(100))  # A = 1.1·10^9, S = 10^15
    staked.now = 100 + COOLDOWN
    # previewWithdraw(10^8) = 90,909,090,917,356 (above) < ceilDiv(10^8 · 4·10^14, 4·10^8) = 10^14:
    # after a gain the request's own rate binds, so Alice cannot take more than it promised.
    assert staked.fund_withdraw(ALICE, 10**8) == 10**14
    assert staked.fund_assets() == 10**9  # paid exactly 10^8
    # The request shrinks by 10^14 shares and 4·10^8 · 10^14 // 4·10^14 = 10^8 assets.
    assert staked.redeem_request(ALICE) == (3 * 10**14, 3 * 10**8, 100)

    result = bad_debt(staked, 600)  # A = 4·10^8, S = 9·10^14
    assert result["covered"] == W(600)
    # After a loss the current rate binds: previewWithdraw(10^8) = ceil(10^14 · (9·10^8 + 1) /
    # (4·10^8 + 1)) = ceil(2.25·10^14 − 312,499.99921875) = 224,999,999,687,501 > 10^14.
    assert staked.fund_withdraw(ALICE, 10**8) == 224_999_999_687_501
    assert staked.fund_assets() == 3 * 10**8
    # Request: 3·10^14 − 224,999,999,687,501 = 75,000,000,312,499 shares and
    # 3·10^8 − floor(3·10^8 · 224,999,999,687,501 / 3·10^14) = 3·10^8 − 224,999,999 = 75,000,001.
    assert staked.redeem_request(ALICE) == (75_000_000_312_499, 75_000_001, 100)
    # A further 10^8 would need more shares than the request holds.
    most = staked.max_withdraw(ALICE)
    err = reverts(staked, "ERC4626ExceededMaxWithdraw", staked.fund_withdraw, ALICE, 10**8)
    assert err.args == (ALICE, 10**8, most)
    # S = 9·10^14 − 224,999,999,687,501 = 675,000,000,312,499; the request's shares are worth
    # 75,000,000,312,499 · (3·10^8 + 1) // (S + 10^6) = 33,333,333 < 75,000,001.
    assert most == 33_333_333
    left = staked.redeem_request(ALICE)[0]
    burnt = staked.fund_withdraw(ALICE, most)  # withdraw(maxWithdraw) succeeds
    assert 0 < burnt <= left and staked.fund_assets() == 3 * 10**8 - most


def test_a_request_worth_nothing_pays_nothing():
    model = fund_model()
    model.stake(ALICE, tokens(1_000))
    model.request_unstake(ALICE, 999_999)  # 999,999 · (10^9 + 1) // (10^15 + 10^6) = 0
    assert model.redeem_request(ALICE) == (999_999, 0, 0)
    model.now = COOLDOWN
    assert model.max_withdraw(ALICE) == 0 and model.max_redeem(ALICE) == 999_999
    err = reverts(model, "ERC4626ExceededMaxWithdraw", model.fund_withdraw, ALICE, 1)
    assert err.args == (ALICE, 1, 0)
    assert model.fund_withdraw(ALICE, 0) == 0  # withdraw(maxWithdraw) succeeds: nothing burnt
    assert model.unstake(ALICE, 999_999) == 0  # burns the dust shares, pays min(0, 0)
    assert model.fund_shares(ALICE) == 10**15 - 999_999 and model.fund_supply() == 10**15 - 999_999


def test_coverable_respects_floor_and_per_event_cap():
    model = fund_model(floor_tokens=tokens(100), per_event_cap_tokens=tokens(250))
    assert model.coverable() == 0
    model.stake(ALICE, tokens(90))
    assert model.coverable() == 0  # below the floor
    model.stake(ALICE, tokens(210))
    assert model.coverable() == tokens(200)  # 300 − 100
    model.stake(ALICE, tokens(1_000))
    assert model.coverable() == tokens(250)  # capped per event
    result = bad_debt(model, 400)
    assert result["covered"] == W(250) and result["socialized"] == W(150)
    assert model.fund_assets() == tokens(1_050)
    result = bad_debt(model, 400)
    assert result["covered"] == W(250)
    assert model.fund_assets() == tokens(800)


# --- cancel rule, expired requests, operators, allowances -------------------------------------------


def _two_stakers_alice_requests_all() -> Model:
    """Alice and Bob each stake 1,000 tokens (10^15 shares); Alice requests all hers (V = 10^9)."""
    model = fund_model()
    model.stake(ALICE, tokens(1_000))
    model.stake(BOB, tokens(1_000))
    model.request_unstake(ALICE, 10**15)
    assert model.redeem_request(ALICE) == (10**15, 10**9, 0)
    return model


def test_cancel_after_a_gain_returns_only_the_value_at_request():
    model = _two_stakers_alice_requests_all()
    model.donate_to_fund(tokens(200))  # A = 2.2·10^9: the 10^15 escrowed shares are worth 1.1·10^9
    model.now = COOLDOWN + 1  # claimable; a cancel is allowed at any time
    # n·A' = 10^15 · (2.2·10^9 + 1) > V·S' = 10^9 · (2·10^15 + 10^6), so
    # r = ⌊V·(S' − n) / (A' − V)⌋ = ⌊10^9 · (10^15 + 10^6) / (1.2·10^9 + 1)⌋ = 833,333,333,472,222.
    assert model.cancel_unstake(ALICE) == (833_333_333_472_222, 166_666_666_527_778)
    assert model.redeem_request(ALICE) is None and model.fund_escrow() == 0
    assert model.fund_shares(ALICE) == 833_333_333_472_222
    # Alice's shares are worth no more than at her request; Bob holds the whole gain.
    assert model.convert_to_assets(model.fund_shares(ALICE)) == 999_999_999
    assert model.convert_to_assets(model.fund_shares(BOB)) == 1_199_999_999
    reverts(model, "NoRedeemRequest", model.cancel_unstake, ALICE)


def test_cancel_after_a_loss_returns_every_share():
    model = _two_stakers_alice_requests_all()
    bad_debt(model, 400)  # A = 1.6·10^9: Alice's shares are worth 8·10^8 ≤ V
    assert model.cancel_unstake(ALICE) == (10**15, 0)
    assert model.fund_shares(ALICE) == model.fund_shares(BOB) == 10**15 and model.fund_supply() == 2 * 10**15


def test_cancel_immediately_rounds_against_the_canceller():
    model = fund_model()
    model.stake(ALICE, tokens(1_000))
    model.donate_to_fund(
        tokens(100)
    )  # A = 1.1·10^9: 10^14 shares are worth 109,999,999.89 -> V = 109,999,999
    model.request_unstake(ALICE, 10**14)
    assert model.redeem_request(ALICE)[1] == 109_999_999
    # Nothing changed, but V was rounded down: n·A' = 10^14 · 1,100,000,001 > V·S' =
    # 109,999,999 · (10^15 + 10^6), so r = ⌊109,999,999 · (9·10^14 + 10^6) / 990,000,002⌋
    # = 99,999,999,000,000: 10^6 shares (about one token unit) are burnt.
    assert model.cancel_unstake(ALICE) == (99_999_999_000_000, 10**6)
    assert model.convert_to_assets(99_999_999_000_000) == 109_999_998  # ≤ V


def test_only_the_controller_or_its_operator_claims_or_cancels(staked):
    staked.now = 100 + COOLDOWN
    err = reverts(staked, "NotControllerOrOperator", staked.unstake, ALICE, 1, BOB)
    assert err.args == (BOB, ALICE)
    reverts(staked, "NotControllerOrOperator", staked.fund_withdraw, ALICE, 1, BOB)
    reverts(staked, "NotControllerOrOperator", staked.cancel_unstake, ALICE, BOB)
    staked.set_operator(ALICE, BOB, True)
    assert staked.is_operator(ALICE, BOB) and not staked.is_operator(BOB, ALICE)
    assert staked.unstake(ALICE, 10**14, BOB) == 10**8
    assert staked.cancel_unstake(ALICE, BOB) == (3 * 10**14, 0)
    staked.set_operator(ALICE, BOB, False)
    reverts(staked, "ERC20InsufficientAllowance", staked.request_unstake, ALICE, 1, ALICE, BOB)


def test_request_for_another_controller_by_operator_or_allowance():
    model = fund_model()
    model.stake(ALICE, tokens(1))  # 10^12 shares
    err = reverts(model, "ERC20InsufficientAllowance", model.request_unstake, ALICE, 10, BOB, CAROL)
    assert err.args == (CAROL, 0, 10)
    model.approve_shares(ALICE, CAROL, 25)
    model.request_unstake(ALICE, 10, BOB, CAROL)  # Carol spends 10 of Alice's allowance; Bob controls
    assert model.share_allowance(ALICE, CAROL) == 15
    assert model.redeem_request(BOB) == (10, 0, 0) and model.redeem_request(ALICE) is None
    assert model.fund_shares(ALICE) == 10**12 - 10
    model.set_operator(ALICE, DAVE, True)  # an operator of the owner needs no allowance
    model.request_unstake(ALICE, 10**6, DAVE, DAVE)
    assert model.redeem_request(DAVE) == (10**6, 1, 0)
    reverts(model, "ZeroAddress", model.request_unstake, ALICE, 1, "0x" + "0" * 40)


def test_expired_request_is_returned_by_the_cancel_rule_on_the_next_request():
    model = _two_stakers_alice_requests_all()
    model.donate_to_fund(tokens(200))
    model.now = COOLDOWN + WINDOW + 1  # expired: nothing claimable, still escrowed
    assert model.max_redeem(ALICE) == 0 and model.fund_shares(ALICE) == 0
    # The next request first returns the expired one (833,333,333,472,222 shares, as a cancel),
    # then escrows the new shares out of them.
    model.request_unstake(ALICE, 10**14)
    assert model.fund_shares(ALICE) == 833_333_333_472_222 - 10**14
    assert model.fund_supply() == 2 * 10**15 - 166_666_666_527_778
    assert model.redeem_request(ALICE) == (10**14, model.convert_to_assets(10**14), COOLDOWN + WINDOW + 1)
