// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IMarginEngine} from "../interfaces/IMarginEngine.sol";
import {FixedPointMath} from "./FixedPointMath.sol";

/// @dev One account's position in one market: one word for the position, one for the loss-index
///      snapshot of its side (see `SocializedLoss`).
struct Position {
    int128 size;
    int128 openNotional;
    uint256 lossSnapshot;
}

/// @dev An account's valuation at oracle prices (see `MarginEngine._valueWith`): its margin, its
///      pending socialized loss, its equity `E = margin − pending + Σ unrealized` and its initial
///      and maintenance requirements `IMR`, `MMR`.
struct Valuation {
    int256 margin;
    uint256 pending;
    int256 equity;
    uint256 imr;
    uint256 mmr;
}

/// @title PositionMath
/// @notice The integer rules of one position (docs/margin-math.md): a fill, and the valuation at
///         an oracle price that the margin checks, the views and the liquidation all share.
library PositionMath {
    using FixedPointMath for uint256;
    using FixedPointMath for int256;

    /// @dev Sizes and prices stay below 2^127 so `size · price` never overflows int256.
    uint256 internal constant MAX_VALUE = uint256(uint128(type(int128).max));

    /// @dev A fill of signed `delta` at `price` on a position of size `s` and open notional `n`
    ///      (docs/margin-math.md §"A fill"): the new size and open notional and the PnL realized.
    ///      Reverts `ValueOutOfRange` if the new size or open notional leaves ±(2^127 − 1).
    function fill(int256 s, int256 n, int256 delta, uint256 price)
        internal
        pure
        returns (int256 newSize, int256 newNotional, int256 realized)
    {
        newSize = s + delta;
        if (s == 0 || (s > 0) == (delta > 0)) {
            newNotional = n + delta.mulWadUp(price);
        } else if (delta.abs() < s.abs()) {
            int256 closedBasis = n.mulDivUp(delta.abs(), s.abs());
            realized = -delta.mulWadUp(price) - closedBasis;
            newNotional = n - closedBasis;
        } else {
            // Close the whole position; a flip then opens the remainder from zero.
            realized = -(-s).mulWadUp(price) - n;
            newNotional = newSize == 0 ? int256(0) : newSize.mulWadUp(price);
        }
        if (newSize.abs() > MAX_VALUE) revert IMarginEngine.ValueOutOfRange(newSize.abs());
        if (newNotional.abs() > MAX_VALUE) revert IMarginEngine.ValueOutOfRange(newNotional.abs());
    }

    /// @dev A position of `size` and open notional `n` at `price` in a market with ratios
    ///      `imRatio` and `mmRatio`: its unrealized PnL (rounded down: the value of closing it at
    ///      fair value), its notional `|size| · price` (rounded up) and its contributions
    ///      `notional · ratio` (rounded up) to the initial and maintenance requirements.
    function value(int256 size, int256 n, uint256 price, uint256 imRatio, uint256 mmRatio)
        internal
        pure
        returns (int256 unrealized, uint256 notional, uint256 imr, uint256 mmr)
    {
        unrealized = size.mulWadDown(price) - n;
        notional = size.abs().mulWadUp(price);
        imr = notional.mulWadUp(imRatio);
        mmr = notional.mulWadUp(mmRatio);
    }

    /// @dev Free collateral `F = min(margin − pending, E) − IMR` of a valuation.
    function freeCollateral(Valuation memory v) internal pure returns (int256) {
        return FixedPointMath.min(v.margin - SafeCast.toInt256(v.pending), v.equity) - SafeCast.toInt256(v.imr);
    }
}
