// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IMarginAuthority
/// @notice What the collateral vault asks of the margin engine before it lets margin leave.
interface IMarginAuthority {
    /// @notice Touches `account` (settles its pending socialized loss into its margin) and returns
    ///         its free collateral `F = min(margin − pending, E) − IMR` in WAD, signed.
    /// @dev Called only by the vault, inside `withdraw`. For an account with no open position it
    ///      must return its whole margin without reading any oracle and whatever is paused.
    function settleAndFreeCollateral(address account) external returns (int256 freeWad);
}
