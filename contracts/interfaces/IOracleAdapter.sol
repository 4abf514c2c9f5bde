// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AggregatorV3Interface} from "./AggregatorV3Interface.sol";

/// @title IOracleAdapter
/// @notice Turns one Chainlink feed per market into a validated WAD price (quote per 1 base unit).
/// @dev Trust assumptions: the feed reports a fair price and is updated at least every `heartbeat`
///      seconds. The adapter cannot detect a wrong-but-fresh answer; it only refuses answers that
///      are provably unusable (non-positive, never written, from the future, older than the
///      heartbeat, or an L2 sequencer that is down or only just back up). A feed's decimals are
///      read once, when it is set, and every answer is scaled by them (docs/design.md §8).
///      Every refusal reverts with a custom error naming the market, so callers fail closed;
///      actions that need no price never call the adapter.
interface IOracleAdapter {
    /// @notice Configuration of one market's feed.
    /// @param feed The Chainlink aggregator.
    /// @param heartbeat Maximum age of an answer in seconds (inclusive).
    /// @param decimals The feed's decimals when it was set; every answer is scaled by these (the
    ///        feed's `decimals()` is not read again).
    struct FeedConfig {
        AggregatorV3Interface feed;
        uint32 heartbeat;
        uint8 decimals;
    }

    /// @notice `marketId` has no feed registered.
    error FeedNotSet(uint256 marketId);
    /// @notice The feed for `marketId` answered `answer ≤ 0`, or an answer that is 0 in WAD.
    error InvalidPrice(uint256 marketId, int256 answer);
    /// @notice The feed for `marketId` has never been written (`updatedAt == 0`).
    error PriceNotInitialized(uint256 marketId);
    /// @notice The feed for `marketId` is dated after the current block.
    error PriceFromFuture(uint256 marketId, uint256 updatedAt, uint256 blockTimestamp);
    /// @notice The feed for `marketId` is older than its heartbeat.
    error StalePrice(uint256 marketId, uint256 updatedAt, uint256 heartbeat, uint256 blockTimestamp);
    /// @notice The L2 sequencer is reported down; prices for `marketId` are not usable.
    error SequencerDown(uint256 marketId);
    /// @notice The L2 sequencer came back up at `upSince`; prices are refused for `gracePeriod` after.
    error SequencerGracePeriod(uint256 marketId, uint256 upSince, uint256 gracePeriod);
    /// @notice The sequencer-uptime feed's round is not initialized (`startedAt == 0`).
    error SequencerStatusInvalid(uint256 marketId);
    /// @notice A feed address of zero, or one with more than 36 decimals, was given for `marketId`.
    error InvalidFeed(uint256 marketId, address feed);
    /// @notice A heartbeat of zero was given for `marketId`.
    error InvalidHeartbeat(uint256 marketId, uint256 heartbeat);
    /// @notice A sequencer grace period beyond 2^96 − 1 seconds was given.
    error InvalidGracePeriod(uint256 gracePeriod);

    /// @notice A market's feed was registered or replaced.
    event FeedSet(uint256 indexed marketId, address indexed feed, uint256 heartbeat, uint8 decimals);
    /// @notice The L2 sequencer-uptime feed was set (zero address: none) with its grace period.
    event SequencerFeedSet(address indexed feed, uint256 gracePeriod);

    /// @notice Registers or replaces the feed of `marketId`. Restricted to the oracle admin role.
    /// @param marketId The market.
    /// @param feed The Chainlink aggregator; its current `decimals()` (≤ 36) are recorded and used
    ///        for every later answer. Setting the same feed again records them anew.
    /// @param heartbeat Maximum answer age in seconds, > 0.
    function setFeed(uint256 marketId, AggregatorV3Interface feed, uint256 heartbeat) external;

    /// @notice Sets the L2 sequencer-uptime feed (zero address disables the check) and grace period
    ///         (seconds, < 2^96). Restricted to the oracle admin role (the engine's timelock).
    function setSequencerFeed(AggregatorV3Interface feed, uint256 gracePeriod) external;

    /// @notice The validated price of `marketId`, normalized to WAD (1e18 = 1 quote per base unit).
    /// @dev Feeds with more than 18 decimals are rounded down; a result of 0 reverts `InvalidPrice`.
    ///      Reverts with one of the errors above.
    function priceOf(uint256 marketId) external view returns (uint256 priceWad);

    /// @notice The feed configuration of `marketId` (zero feed if none).
    function feedOf(uint256 marketId) external view returns (FeedConfig memory);

    /// @notice The sequencer-uptime feed (zero if none) and its grace period in seconds.
    function sequencerFeed() external view returns (AggregatorV3Interface feed, uint256 gracePeriod);
}
