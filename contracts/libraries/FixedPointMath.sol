// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title FixedPointMath
/// @notice WAD (1e18) arithmetic and token-unit conversions, with the rounding direction in every
///         name: `Down` rounds toward −∞ and `Up` toward +∞ (for unsigned values: toward 0 and
///         away from 0; for signed values the same words keep their direction on the number line).
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

    /// @dev `a / b`, rounded up (b > 0).
    function divUp(uint256 a, uint256 b) internal pure returns (uint256) {
        return a == 0 ? 0 : (a - 1) / b + 1;
    }

    /// @dev `x · a / d` for a signed `x`, rounded down (toward −∞).
    function mulDivDown(int256 x, uint256 a, uint256 d) internal pure returns (int256) {
        if (x >= 0) return SafeCast.toInt256(uint256(x) * a / d);
        return -SafeCast.toInt256(divUp(uint256(-x) * a, d));
    }

    /// @dev `x · a / d` for a signed `x`, rounded up (toward +∞).
    function mulDivUp(int256 x, uint256 a, uint256 d) internal pure returns (int256) {
        if (x >= 0) return SafeCast.toInt256(divUp(uint256(x) * a, d));
        return -SafeCast.toInt256(uint256(-x) * a / d);
    }

    /// @dev `x · b / 1e18` for a signed `x`, rounded down, toward −∞ (a value held by an account).
    function mulWadDown(int256 x, uint256 b) internal pure returns (int256) {
        return mulDivDown(x, b, WAD);
    }

    /// @dev `x · b / 1e18` for a signed `x`, rounded up, toward +∞ (a cost charged to an account).
    function mulWadUp(int256 x, uint256 b) internal pure returns (int256) {
        return mulDivUp(x, b, WAD);
    }

    /// @dev `tokens · scale`: whole token units to WAD (exact; `scale` is WAD per token unit).
    function toWad(uint256 tokens, uint256 scale) internal pure returns (uint256) {
        return tokens * scale;
    }

    /// @dev `wad / scale`: WAD to whole token units, rounded down (a credit).
    function toTokensDown(uint256 wad, uint256 scale) internal pure returns (uint256) {
        return wad / scale;
    }

    /// @dev `wad / scale`: WAD to whole token units, rounded up (a debit).
    function toTokensUp(uint256 wad, uint256 scale) internal pure returns (uint256) {
        return wad == 0 ? 0 : (wad - 1) / scale + 1;
    }

    /// @dev |x| as uint256.
    function abs(int256 x) internal pure returns (uint256) {
        return x >= 0 ? uint256(x) : uint256(-x);
    }

    function min(int256 a, int256 b) internal pure returns (int256) {
        return a < b ? a : b;
    }
}
