// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AggregatorV3Interface} from "../interfaces/AggregatorV3Interface.sol";
import {IOracleAdapter} from "../interfaces/IOracleAdapter.sol";

/// @title OracleLib
/// @notice Validation and WAD normalization of Chainlink answers (docs/design.md §8).
/// @dev Fails closed: every check that does not hold reverts with an `IOracleAdapter` error naming
///      the market. There is deliberately no try/catch fallback, so an out-of-gas call inside the
///      feed can never be mistaken for a defined oracle failure and mapped to a default price.
library OracleLib {
    /// @dev The answer of a Chainlink sequencer-uptime feed when the sequencer is up.
    int256 internal constant SEQUENCER_UP = 0;
    /// @dev Feeds with more decimals are refused at registration (10^36 keeps the scaling exact).
    uint8 internal constant MAX_FEED_DECIMALS = 36;

    /// @notice Reads and validates `cfg.feed` for `marketId`, returning the price in WAD.
    function readPriceWad(IOracleAdapter.FeedConfig memory cfg, uint256 marketId) internal view returns (uint256) {
        if (address(cfg.feed) == address(0)) revert IOracleAdapter.FeedNotSet(marketId);
        // roundId and answeredInRound are deprecated by Chainlink; startedAt says nothing on age.
        // slither-disable-next-line unused-return
        (, int256 answer,, uint256 updatedAt,) = cfg.feed.latestRoundData();
        if (answer <= 0) revert IOracleAdapter.InvalidPrice(marketId, answer);
        if (updatedAt == 0) revert IOracleAdapter.PriceNotInitialized(marketId);
        if (updatedAt > block.timestamp) revert IOracleAdapter.PriceFromFuture(marketId, updatedAt, block.timestamp);
        // Inclusive bound: an answer exactly `heartbeat` seconds old is still usable.
        if (block.timestamp - updatedAt > cfg.heartbeat) {
            revert IOracleAdapter.StalePrice(marketId, updatedAt, cfg.heartbeat, block.timestamp);
        }
        // The decimals recorded when the feed was set, not a `decimals()` call per read: a
        // Chainlink aggregator proxy's decimals are fixed, and a feed with other decimals is a new
        // feed, set through the engine's timelocked market update (docs/design.md §8).
        uint256 price = toWad(uint256(answer), cfg.decimals);
        // Above 18 decimals a tiny positive answer rounds down to 0, which the engine reads as
        // "not read yet" and which would zero every requirement: as unusable as a 0 answer.
        if (price == 0) revert IOracleAdapter.InvalidPrice(marketId, answer);
        return price;
    }

    /// @notice Reverts unless the L2 sequencer is up and has been for more than `gracePeriod`.
    /// @dev `feed == 0` means no sequencer check (an L1 deployment).
    function checkSequencer(AggregatorV3Interface feed, uint256 gracePeriod, uint256 marketId) internal view {
        if (address(feed) == address(0)) return;
        // slither-disable-next-line unused-return
        (, int256 status, uint256 startedAt,,) = feed.latestRoundData();
        if (status != SEQUENCER_UP) revert IOracleAdapter.SequencerDown(marketId);
        // startedAt == 0 happens on a not-yet-initialized uptime feed (Chainlink docs, Arbitrum).
        if (startedAt == 0 || startedAt > block.timestamp) revert IOracleAdapter.SequencerStatusInvalid(marketId);
        if (block.timestamp - startedAt <= gracePeriod) {
            revert IOracleAdapter.SequencerGracePeriod(marketId, startedAt, gracePeriod);
        }
    }

    /// @notice Scales an answer with `decimals` decimals to WAD (rounded down above 18 decimals).
    function toWad(uint256 answer, uint8 decimals) internal pure returns (uint256) {
        if (decimals <= 18) return answer * 10 ** (18 - decimals);
        return answer / 10 ** (decimals - 18);
    }
}
