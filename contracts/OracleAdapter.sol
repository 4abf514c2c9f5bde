// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

import {AggregatorV3Interface} from "./interfaces/AggregatorV3Interface.sol";
import {IOracleAdapter} from "./interfaces/IOracleAdapter.sol";
import {OracleLib} from "./libraries/OracleLib.sol";

/// @title OracleAdapter
/// @notice One Chainlink feed per market, validated and normalized to WAD. See `IOracleAdapter`.
/// @dev `ORACLE_ADMIN_ROLE` registers feeds and sets the sequencer feed. After deployment its only
///      holder is the margin engine, which registers a market's feed when the market is listed and
///      changes feeds only through its timelock (docs/design.md §10); `DEFAULT_ADMIN_ROLE` (role
///      management) is renounced by the deployer, so nobody can grant the role again.
contract OracleAdapter is IOracleAdapter, AccessControl {
    bytes32 public constant ORACLE_ADMIN_ROLE = keccak256("ORACLE_ADMIN_ROLE");

    /// @dev The L2 sequencer-uptime feed and its grace period, packed in one slot (read by every
    ///      `priceOf`).
    struct Sequencer {
        AggregatorV3Interface feed;
        uint96 gracePeriod;
    }

    mapping(uint256 marketId => FeedConfig) internal _feeds;
    Sequencer internal _sequencer;

    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ORACLE_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IOracleAdapter
    function setFeed(uint256 marketId, AggregatorV3Interface feed, uint256 heartbeat)
        external
        onlyRole(ORACLE_ADMIN_ROLE)
    {
        if (address(feed) == address(0)) revert InvalidFeed(marketId, address(feed));
        if (heartbeat == 0 || heartbeat > type(uint32).max) revert InvalidHeartbeat(marketId, heartbeat);
        uint8 d = feed.decimals();
        if (d > OracleLib.MAX_FEED_DECIMALS) revert InvalidFeed(marketId, address(feed));
        _feeds[marketId] = FeedConfig({feed: feed, heartbeat: uint32(heartbeat), decimals: d});
        emit FeedSet(marketId, address(feed), heartbeat, d);
    }

    /// @inheritdoc IOracleAdapter
    function setSequencerFeed(AggregatorV3Interface feed, uint256 gracePeriod) external onlyRole(ORACLE_ADMIN_ROLE) {
        if (gracePeriod > type(uint96).max) revert InvalidGracePeriod(gracePeriod);
        _sequencer = Sequencer(feed, uint96(gracePeriod));
        emit SequencerFeedSet(address(feed), gracePeriod);
    }

    /// @inheritdoc IOracleAdapter
    function priceOf(uint256 marketId) external view returns (uint256) {
        Sequencer memory seq = _sequencer;
        OracleLib.checkSequencer(seq.feed, seq.gracePeriod, marketId);
        return OracleLib.readPriceWad(_feeds[marketId], marketId);
    }

    /// @inheritdoc IOracleAdapter
    function feedOf(uint256 marketId) external view returns (FeedConfig memory) {
        return _feeds[marketId];
    }

    /// @inheritdoc IOracleAdapter
    function sequencerFeed() external view returns (AggregatorV3Interface, uint256) {
        return (_sequencer.feed, _sequencer.gracePeriod);
    }
}
