// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

// Names are fixed by the ERC-20 / Chainlink ABI this mock imitates.
// solhint-disable const-name-snakecase, immutable-vars-naming

import {AggregatorV3Interface} from "../interfaces/AggregatorV3Interface.sol";

/// @title MockAggregator
/// @notice Test double of a Chainlink feed (price or sequencer uptime) whose every field is settable.
contract MockAggregator is AggregatorV3Interface {
    uint8 public decimals;
    string public description;
    uint256 public constant version = 4;

    uint80 public roundId;
    int256 public answer;
    uint256 public startedAt;
    uint256 public updatedAt;

    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);

    constructor(uint8 decimals_, int256 answer_, string memory description_) {
        decimals = decimals_;
        description = description_;
        _set(answer_, block.timestamp, block.timestamp);
    }

    /// @notice New answer stamped with the current block time (a fresh round).
    function setAnswer(int256 answer_) external {
        _set(answer_, block.timestamp, block.timestamp);
    }

    /// @notice New answer with explicit timestamps (stale, future, zero...).
    function setAnswerAt(int256 answer_, uint256 startedAt_, uint256 updatedAt_) external {
        _set(answer_, startedAt_, updatedAt_);
    }

    /// @notice Overwrites the round id (answeredInRound follows it).
    function setRoundId(uint80 roundId_) external {
        roundId = roundId_;
    }

    /// @notice Changes the decimals the feed reports (a misbehaving or migrated feed).
    function setDecimals(uint8 decimals_) external {
        decimals = decimals_;
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        return (roundId, answer, startedAt, updatedAt, roundId);
    }

    function _set(int256 answer_, uint256 startedAt_, uint256 updatedAt_) internal {
        ++roundId;
        answer = answer_;
        startedAt = startedAt_;
        updatedAt = updatedAt_;
        emit AnswerUpdated(answer_, roundId, updatedAt_);
    }
}
