# Pure Python, no chain. Run without the Ape plugin (its entry point is named `ape_test`):
#   .venv/bin/python -m pytest tests/unit/model -p no:ape_test -q
"""The insurance fund of the reference model: ERC-4626 share math with a decimals offset of 6 and the
request -> cooldown -> exit rules (docs/margin-math.md §"Insurance fund").

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
    assert model.withdraw_request(ALICE) is None


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


def test_preview_withdraw_rounds_up():
    model = fund_model()
    model.stake(ALICE, tokens(1_000))
    model.donate_to_fund(tokens(100))
    # 10^8 · 10^6·(10^9 + 1) / 1,100,000,001 = 90,909,090,917,355.38 -> up: ...356; deposits down: ...355.
    assert model.preview_withdraw(10**8) == 90_909_090_917_356
    assert model.convert_to_shares(10**8) == 90_909_090_917_355


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
    assert model.withdraw_request(ALICE) == (4 * 10**14, 4 * 10**8, 100)
    return model


def test_request_needs_between_one_share_and_the_balance():
    model = fund_model()
    assert reverts(model, "InvalidWithdrawRequest", model.request_unstake, ALICE, 1).args == (1, 0)
    model.stake(ALICE, tokens(1))
    reverts(model, "InvalidWithdrawRequest", model.request_unstake, ALICE, 0)
    reverts(model, "InvalidWithdrawRequest", model.request_unstake, ALICE, 10**12 + 1)
    model.request_unstake(ALICE, 10**12)
    assert model.withdraw_request(ALICE) == (10**12, 10**6, 0)


def test_request_replaces_an_earlier_one(staked):
    staked.now = 200
    staked.request_unstake(ALICE, 10**14)
    assert staked.withdraw_request(ALICE) == (10**14, 10**8, 200)


def test_redeem_in_the_window_in_parts(staked):
    staked.now = 100 + COOLDOWN - 1
    err = reverts(staked, "CooldownNotElapsed", staked.unstake, ALICE, 10**14)
    assert err.args == (100 + COOLDOWN, 100 + COOLDOWN - 1)

    staked.now = 100 + COOLDOWN  # inclusive
    # min(10^14 · (10^9 + 1) // (10^15 + 10^6) = 10^8, 4·10^8 · 10^14 // 4·10^14 = 10^8)
    assert staked.unstake(ALICE, 10**14) == 10**8
    assert staked.withdraw_request(ALICE) == (3 * 10**14, 3 * 10**8, 100)
    assert staked.fund_shares(ALICE) == 9 * 10**14
    assert staked.fund_assets() == 9 * 10**8
    err = reverts(staked, "ExceedsRequest", staked.unstake, ALICE, 3 * 10**14 + 1)
    assert err.args == (3 * 10**14 + 1, 3 * 10**14)

    staked.now = 100 + COOLDOWN + WINDOW  # last second of the window, inclusive
    assert staked.unstake(ALICE, 3 * 10**14) == 3 * 10**8
    assert staked.withdraw_request(ALICE) is None  # fully used: deleted
    assert staked.fund_shares(ALICE) == 6 * 10**14 and staked.fund_supply() == 6 * 10**14
    assert staked.fund_assets() == 6 * 10**8
    reverts(staked, "NoWithdrawRequest", staked.unstake, ALICE, 1)


def test_redeem_after_the_window_reverts(staked):
    staked.now = 100 + COOLDOWN + WINDOW + 1
    err = reverts(staked, "WithdrawalWindowExpired", staked.unstake, ALICE, 1)
    assert err.args == (100 + COOLDOWN + WINDOW, 100 + COOLDOWN + WINDOW + 1)
    reverts(staked, "WithdrawalWindowExpired", staked.fund_withdraw, ALICE, 1)
    staked.request_unstake(ALICE, 4 * 10**14)  # request again: a new cooldown
    reverts(staked, "CooldownNotElapsed", staked.unstake, ALICE, 1)


def test_no_request_reverts_for_both_exits():
    model = fund_model()
    model.stake(ALICE, tokens(1))
    reverts(model, "NoWithdrawRequest", model.unstake, ALICE, 1)
    reverts(model, "NoWithdrawRequest", model.fund_withdraw, ALICE, 1)


def test_a_loss_during_cooldown_lowers_the_payout():
    model = fund_model()
    model.stake(ALICE, tokens(1_000))  # 10^15 shares
    # Bob at the same price: 10^9 · 10^6·(10^9 + 1) // (10^9 + 1) = 10^15 shares.
    assert model.stake(BOB, tokens(1_000)) == 10**15
    model.request_unstake(ALICE, 10**15)
    # 10^15 · (2·10^9 + 1) // 10^6·(2·10^9 + 1) = 10^9.
    assert model.withdraw_request(ALICE) == (10**15, 10**9, 0)

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
    assert staked.withdraw_request(ALICE) == (3 * 10**14, 3 * 10**8, 100)

    result = bad_debt(staked, 600)  # A = 4·10^8, S = 9·10^14
    assert result["covered"] == W(600)
    # After a loss the current rate binds: previewWithdraw(10^8) = ceil(10^14 · (9·10^8 + 1) /
    # (4·10^8 + 1)) = ceil(2.25·10^14 − 312,499.99921875) = 224,999,999,687,501 > 10^14.
    assert staked.fund_withdraw(ALICE, 10**8) == 224_999_999_687_501
    assert staked.fund_assets() == 3 * 10**8
    # Request: 3·10^14 − 224,999,999,687,501 = 75,000,000,312,499 shares and
    # 3·10^8 − floor(3·10^8 · 224,999,999,687,501 / 3·10^14) = 3·10^8 − 224,999,999 = 75,000,001.
    assert staked.withdraw_request(ALICE) == (75_000_000_312_499, 75_000_001, 100)
    # A further 10^8 would need more shares than the request holds.
    err = reverts(staked, "ExceedsRequest", staked.fund_withdraw, ALICE, 10**8)
    assert err.args[1] == 75_000_000_312_499


def test_a_request_worth_nothing_pays_nothing():
    model = fund_model()
    model.stake(ALICE, tokens(1_000))
    model.request_unstake(ALICE, 999_999)  # 999,999 · (10^9 + 1) // (10^15 + 10^6) = 0
    assert model.withdraw_request(ALICE) == (999_999, 0, 0)
    model.now = COOLDOWN
    reverts(model, "ExceedsRequest", model.fund_withdraw, ALICE, 0)
    assert model.unstake(ALICE, 999_999) == 0  # burns the dust shares, pays min(0, 0)
    assert model.fund_shares(ALICE) == 10**15 - 999_999


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
