// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title FixedPointMath
/// @notice WAD (1e18) arithmetic with the rounding direction in every name.
/// @dev Backstop rounds against the account and for the protocol: debits up, credits down.
///      Overflow reverts (checked arithmetic); all helpers are internal and inlined.
library FixedPointMath {
    uint256 internal constant WAD = 1e18;

    /// @dev `a · b / 1e18`, rounded down.
    function mulWadDown(uint256 a, uint256 b) internal pure returns (uint256) {
        return a * b / WAD;
    }

    /// @dev `a · b / 1e18`, rounded up.
    function mulWadUp(uint256 a, uint256 b) internal pure returns (uint256) {
        uint256 p = a * b;
        return p == 0 ? 0 : (p - 1) / WAD + 1;
    }

    /// @dev `a · 1e18 / b`, rounded down.
    function divWadDown(uint256 a, uint256 b) internal pure returns (uint256) {
        return a * WAD / b;
    }

    /// @dev `a · 1e18 / b`, rounded up.
    function divWadUp(uint256 a, uint256 b) internal pure returns (uint256) {
        return ceilDiv(a * WAD, b);
    }

    /// @dev `a / b`, rounded up (b > 0).
    function ceilDiv(uint256 a, uint256 b) internal pure returns (uint256) {
        return a == 0 ? 0 : (a - 1) / b + 1;
    }

    /// @dev `x · a / d` for a signed `x`, rounded toward −∞.
    function mulDivFloor(int256 x, uint256 a, uint256 d) internal pure returns (int256) {
        if (x >= 0) return SafeCast.toInt256(uint256(x) * a / d);
        return -SafeCast.toInt256(ceilDiv(uint256(-x) * a, d));
    }

    /// @dev `x · a / d` for a signed `x`, rounded toward +∞.
    function mulDivCeil(int256 x, uint256 a, uint256 d) internal pure returns (int256) {
        if (x >= 0) return SafeCast.toInt256(ceilDiv(uint256(x) * a, d));
        return -SafeCast.toInt256(uint256(-x) * a / d);
    }

    /// @dev `x · b / 1e18` for a signed `x`, rounded toward −∞ (a value held by an account).
    function mulWadFloor(int256 x, uint256 b) internal pure returns (int256) {
        return mulDivFloor(x, b, WAD);
    }

    /// @dev `x · b / 1e18` for a signed `x`, rounded toward +∞ (a cost charged to an account).
    function mulWadCeil(int256 x, uint256 b) internal pure returns (int256) {
        return mulDivCeil(x, b, WAD);
    }

    /// @dev |x| as uint256.
    function abs(int256 x) internal pure returns (uint256) {
        return x >= 0 ? uint256(x) : uint256(-x);
    }

    function min(int256 a, int256 b) internal pure returns (int256) {
        return a < b ? a : b;
    }

    function max(int256 a, int256 b) internal pure returns (int256) {
        return a > b ? a : b;
    }
}
