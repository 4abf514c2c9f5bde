"""OracleAdapter: validation of Chainlink answers, WAD normalization, L2 sequencer gating."""

from __future__ import annotations

import ape
import pytest

MARKET = 7  # not 0, so the errors visibly name the market
HEARTBEAT = 3600
GRACE = 1800


@pytest.fixture
def oracle(project, deployer):
    return project.OracleAdapter.deploy(deployer, sender=deployer)


@pytest.fixture
def feed(oracle, make_feed, deployer):
    f = make_feed(8, 2000 * 10**8)
    oracle.setFeed(MARKET, f, HEARTBEAT, sender=deployer)
    return f


def now(chain) -> int:
    return chain.blocks.head.timestamp


@pytest.mark.parametrize(
    ("decimals", "answer", "expected_wad"),
    [
        (8, 2000 * 10**8, 2000 * 10**18),
        (8, 1, 10**10),  # the smallest 8-decimal answer
        (18, 1234567890123456789, 1234567890123456789),
        (6, 1_500_000, 15 * 10**17),
        (20, 199, 1),  # more than 18 decimals rounds down
    ],
)
def test_price_is_normalized_to_wad(oracle, make_feed, deployer, decimals, answer, expected_wad):
    f = make_feed(decimals, answer)
    oracle.setFeed(MARKET, f, HEARTBEAT, sender=deployer)
    assert oracle.priceOf(MARKET) == expected_wad


@pytest.mark.parametrize("decimals", [8, 18])
@pytest.mark.parametrize("answer", [0, -1, -(2000 * 10**8)])
def test_non_positive_answer_is_refused(oracle, make_feed, deployer, decimals, answer):
    f = make_feed(decimals, answer)
    oracle.setFeed(MARKET, f, HEARTBEAT, sender=deployer)
    with ape.reverts(oracle.InvalidPrice, marketId=MARKET, answer=answer):
        oracle.priceOf(MARKET)


def test_never_updated_feed_is_refused(oracle, feed, deployer):
    feed.setAnswerAt(2000 * 10**8, 0, 0, sender=deployer)
    with ape.reverts(oracle.PriceNotInitialized, marketId=MARKET):
        oracle.priceOf(MARKET)


def test_answer_from_the_future_is_refused(oracle, feed, deployer, chain):
    future = now(chain) + 1000
    feed.setAnswerAt(2000 * 10**8, future, future, sender=deployer)
    with ape.reverts(oracle.PriceFromFuture, marketId=MARKET, updatedAt=future):
        oracle.priceOf(MARKET)


def price_at(oracle, chain, timestamp: int):
    """`priceOf` evaluated in a block mined at exactly `timestamp` (anvil may run a plain call on
    `latest` a second after the head block, which would blur a boundary test)."""
    chain.mine(timestamp=timestamp)
    return oracle.priceOf(MARKET, block_id=chain.blocks.head.number)


@pytest.mark.parametrize("decimals", [8, 18])
def test_answer_exactly_heartbeat_old_is_accepted(oracle, make_feed, deployer, chain, decimals):
    f = make_feed(decimals, 3 * 10**decimals)
    oracle.setFeed(MARKET, f, HEARTBEAT, sender=deployer)
    stamp = now(chain)
    f.setAnswerAt(3 * 10**decimals, stamp, stamp, sender=deployer)
    assert price_at(oracle, chain, stamp + HEARTBEAT) == 3 * 10**18


@pytest.mark.parametrize("decimals", [8, 18])
def test_stale_answer_is_refused(oracle, make_feed, deployer, chain, decimals):
    f = make_feed(decimals, 3 * 10**decimals)
    oracle.setFeed(MARKET, f, HEARTBEAT, sender=deployer)
    stamp = now(chain)
    f.setAnswerAt(3 * 10**decimals, stamp, stamp, sender=deployer)
    with ape.reverts(oracle.StalePrice, marketId=MARKET, updatedAt=stamp, heartbeat=HEARTBEAT):
        price_at(oracle, chain, stamp + HEARTBEAT + 1)


def test_feed_decimals_are_read_once_when_the_feed_is_set(oracle, feed, deployer):
    """docs/design.md §8: the decimals recorded with the feed scale every answer; ``decimals()`` is
    not read again on a price read. A Chainlink proxy's decimals are fixed, and a feed with other
    decimals is a new feed, set through the timelocked market update, which records them anew."""
    before = oracle.priceOf(MARKET)
    answer = feed.answer()
    assert before == answer * 10**10  # 8 decimals
    feed.setDecimals(18, sender=deployer)  # what a real aggregator proxy never does
    assert oracle.priceOf(MARKET) == before  # still scaled by the recorded 8 decimals
    assert oracle.feedOf(MARKET).decimals == 8
    tx = oracle.setFeed(MARKET, feed, HEARTBEAT, sender=deployer)  # setting the feed again ...
    [event] = [log for log in tx.events if log.event_name == "FeedSet"]
    assert event.decimals == oracle.feedOf(MARKET).decimals == 18  # ... records the new decimals
    assert oracle.priceOf(MARKET) == answer  # the same answer, now read with 18 decimals


def test_unknown_market_is_refused(oracle):
    with ape.reverts(oracle.FeedNotSet, marketId=99):
        oracle.priceOf(99)


# --- registration ---------------------------------------------------------------------------------


def test_set_feed_records_config_and_emits(oracle, make_feed, deployer):
    f = make_feed(8, 10**8)
    tx = oracle.setFeed(3, f, 60, sender=deployer)
    cfg = oracle.feedOf(3)
    assert (cfg.feed, cfg.heartbeat, cfg.decimals) == (f.address, 60, 8)
    [event] = [log for log in tx.events if log.event_name == "FeedSet"]
    assert (event.marketId, event.feed, event.heartbeat, event.decimals) == (3, f.address, 60, 8)


def test_set_feed_rejects_zero_feed(oracle, deployer):
    zero = "0x" + "00" * 20
    with ape.reverts(oracle.InvalidFeed, marketId=1, feed=zero):
        oracle.setFeed(1, zero, 60, sender=deployer)


def test_set_feed_rejects_zero_heartbeat(oracle, make_feed, deployer):
    f = make_feed()
    with ape.reverts(oracle.InvalidHeartbeat, marketId=1, heartbeat=0):
        oracle.setFeed(1, f, 0, sender=deployer)
    assert oracle.feedOf(1).feed == "0x" + "00" * 20


def test_set_feed_rejects_more_than_36_decimals(oracle, make_feed, deployer):
    f = make_feed(37, 1)
    with ape.reverts(oracle.InvalidFeed, marketId=1, feed=f.address):
        oracle.setFeed(1, f, 60, sender=deployer)


def test_set_feed_is_role_restricted(oracle, make_feed, stranger):
    f = make_feed()
    with ape.reverts(oracle.AccessControlUnauthorizedAccount, account=stranger.address):
        oracle.setFeed(1, f, 60, sender=stranger)
    with ape.reverts(oracle.AccessControlUnauthorizedAccount, account=stranger.address):
        oracle.setSequencerFeed(f, 60, sender=stranger)


# --- L2 sequencer uptime --------------------------------------------------------------------------


@pytest.fixture
def sequencer(oracle, feed, make_feed, deployer, chain):
    """Sequencer-uptime feed (0 = up), up since well before the grace period."""
    s = make_feed(0, 0, "L2 Sequencer Uptime Status Feed")
    up_since = now(chain) - GRACE - 10
    s.setAnswerAt(0, up_since, up_since, sender=deployer)
    oracle.setSequencerFeed(s, GRACE, sender=deployer)
    return s


def test_sequencer_up_past_grace_period_allows_prices(oracle, sequencer):
    assert oracle.priceOf(MARKET) == 2000 * 10**18
    assert oracle.sequencerFeed() == (sequencer.address, GRACE)


def test_sequencer_down_refuses_prices(oracle, sequencer, deployer):
    sequencer.setAnswer(1, sender=deployer)
    with ape.reverts(oracle.SequencerDown, marketId=MARKET):
        oracle.priceOf(MARKET)


def test_sequencer_within_grace_period_refuses_prices(oracle, sequencer, deployer, chain):
    sequencer.setAnswer(0, sender=deployer)  # just came back up
    up_since = sequencer.startedAt()
    with ape.reverts(oracle.SequencerGracePeriod, marketId=MARKET, upSince=up_since, gracePeriod=GRACE):
        oracle.priceOf(MARKET)
    with ape.reverts(oracle.SequencerGracePeriod, marketId=MARKET, upSince=up_since, gracePeriod=GRACE):
        price_at(oracle, chain, up_since + GRACE)  # still inside: the bound is inclusive
    assert price_at(oracle, chain, up_since + GRACE + 1) == 2000 * 10**18


def test_uninitialized_sequencer_feed_refuses_prices(oracle, sequencer, deployer):
    sequencer.setAnswerAt(0, 0, 0, sender=deployer)
    with ape.reverts(oracle.SequencerStatusInvalid, marketId=MARKET):
        oracle.priceOf(MARKET)


def test_removing_the_sequencer_feed_disables_the_check(oracle, sequencer, deployer):
    sequencer.setAnswer(1, sender=deployer)
    oracle.setSequencerFeed("0x" + "00" * 20, 0, sender=deployer)
    assert oracle.priceOf(MARKET) == 2000 * 10**18


def test_grace_period_beyond_96_bits_is_refused(oracle, sequencer, deployer):
    with ape.reverts(oracle.InvalidGracePeriod, gracePeriod=2**96):
        oracle.setSequencerFeed(sequencer, 2**96, sender=deployer)
    assert oracle.sequencerFeed() == (sequencer.address, GRACE)
    oracle.setSequencerFeed(sequencer, 2**96 - 1, sender=deployer)  # the largest one fits
    assert oracle.sequencerFeed() == (sequencer.address, 2**96 - 1)


# --- a positive answer that normalizes to 0 (finding 5 of issue #15) ----------------------------------------


def test_36_decimal_feed_whose_answer_normalizes_to_zero_reverts_invalid_price(oracle, make_feed, deployer):
    """decimals 36 and answer 5e17 is 5e-19 quote: 0 in WAD. The engine reads 0 as "not read yet"
    and a 0 price would zero every requirement, so it is refused like a 0 answer."""
    f = make_feed(36, 5 * 10**17)
    oracle.setFeed(2, f, 3600, sender=deployer)
    with ape.reverts(oracle.InvalidPrice, marketId=2, answer=5 * 10**17):
        oracle.priceOf(2)
    f.setAnswer(10**18, sender=deployer)  # exactly 1 wei of quote: the smallest usable price
    assert oracle.priceOf(2) == 1
    f.setAnswer(10**18 - 1, sender=deployer)
    with ape.reverts(oracle.InvalidPrice, marketId=2, answer=10**18 - 1):
        oracle.priceOf(2)
    wide = make_feed(37, 10**37)
    with ape.reverts(oracle.InvalidFeed, marketId=3, feed=wide.address):
        oracle.setFeed(3, wide, 3600, sender=deployer)
