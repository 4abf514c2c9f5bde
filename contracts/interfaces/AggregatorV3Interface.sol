// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title AggregatorV3Interface
/// @notice The read side of a Chainlink price or sequencer-uptime feed, as Backstop uses it.
interface AggregatorV3Interface {
    /// @notice Number of decimals of `answer`.
    function decimals() external view returns (uint8);

    /// @notice Human-readable description of the feed (e.g. "ETH / USD").
    function description() external view returns (string memory);

    /// @notice Feed implementation version.
    function version() external view returns (uint256);

    /// @notice The latest round.
    /// @return roundId The round id.
    /// @return answer The answer (a price, or for a sequencer-uptime feed 0 = up, 1 = down).
    /// @return startedAt When the round started (for a sequencer feed: when the status changed).
    /// @return updatedAt When the answer was last written.
    /// @return answeredInRound Deprecated; equal to `roundId` on current feeds.
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
}
