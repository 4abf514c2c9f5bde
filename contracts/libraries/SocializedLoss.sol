// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {FixedPointMath} from "./FixedPointMath.sol";
import {Position} from "./PositionMath.sol";

/// @title SocializedLoss
/// @notice The O(1) loss accumulator of docs/design.md §5: bad debt the insurance fund cannot
///         cover is charged to the winning side of a market pro-rata to position size, without a
///         loop over accounts.
///
/// @dev Derivation (in the style of Liquity's StabilityPool product-sum).
///
///      State. Per market `m` and side `o ∈ {long, short}` a cumulative index `L[m][o]` (WAD loss
///      per WAD of size, starts at 0, only grows). Per position a snapshot `S`, the value of its
///      side's index when the position last settled, was opened, or flipped (`join`).
///
///      Charging. A loss `R_m` (WAD) for side `o` of market `m`, whose open interest (Σ|size| over
///      positions on `o`, before the bankrupt positions move to the liquidator) is `OI > 0`:
///
///          ΔL = ceil(R_m · 1e18 / OI),        L[m][o] += ΔL            (`indexDelta`, `charge`).
///
///      Settlement. A position of size `z` on side `o` owes `pending = ceil(|z| · (L − S) / 1e18)`;
///      touching the account moves `pending` from its margin and sets `S = L` (`pending`,
///      `pendingOf`, `settle`; the engine books the amounts into the margin and `unsettledLoss`).
///
///      Why it is pro-rata. Between two settlements a position's size is constant (every size
///      change touches the account first, so `S` is current whenever `|z|` changes). Its charge
///      for a single event is therefore `|z| · ΔL / 1e18 ≈ R_m · |z| / OI`: exactly its share of
///      the side's open interest. Charges of several events add up because `L` is a sum.
///
///      Why it is O(1). Charging writes one storage word (`L[m][o]`) whatever the number of
///      positions; each position settles lazily, in the bounded loop over its own ≤ 8 markets,
///      when its account is next touched (trade, withdrawal, liquidation or `settle`).
///
///      Rounding and dust. Both roundings are up, against the winners and for the system:
///      `ΔL ≥ R_m · 1e18 / OI`, so `Σ_positions |z| · ΔL / 1e18 ≥ R_m`, and each settlement rounds
///      up again. Hence the total eventually charged is at least `R_m` (the losses are fully
///      funded) and at most `R_m + OI/1e18 + k` wei for `k` positions on the side: the excess,
///      the dust, is never negative and is bounded by one wei per unit of open interest plus one
///      wei per position. The market stays zero-sum in size; only margins move.
///
///      Who pays. Only the side opposite to the bankrupt position, i.e. the traders who gained from
///      the move that bankrupted it. Flat accounts (capital never at risk) and the losing side are
///      never charged. A position opened after the event starts at the new `L` and owes nothing.
library SocializedLoss {
    using FixedPointMath for uint256;
    using FixedPointMath for int256;

    /// @dev Index of the long side in a market's `L[m]` pair.
    uint256 internal constant LONG = 0;
    /// @dev Index of the short side in a market's `L[m]` pair.
    uint256 internal constant SHORT = 1;

    /// @dev `ΔL = ceil(loss · 1e18 / openInterest)`; `openInterest > 0` (the bankrupt position's
    ///      counterparties exist because markets are zero-sum).
    function indexDelta(uint256 loss, uint256 openInterest) internal pure returns (uint256) {
        return (loss * FixedPointMath.WAD).divUp(openInterest);
    }

    /// @dev `ceil(|size| · (index − snapshot) / 1e18)`: what a position owes since its snapshot.
    function pending(uint256 absSize, uint256 index, uint256 snapshot) internal pure returns (uint256) {
        return absSize.mulWadUp(index - snapshot);
    }

    /// @dev Charging: a loss `loss` of a bankrupt position of `size` in the market whose pair is
    ///      `lossIndex` goes to the opposite side `o` (the winners), whose open interest is
    ///      `openInterest`: `L[o] += ΔL`. Returns `o` and `ΔL`.
    function charge(uint256[2] storage lossIndex, int256 size, uint256 loss, uint256 openInterest)
        internal
        returns (uint256 side, uint256 delta)
    {
        side = size > 0 ? SHORT : LONG;
        delta = indexDelta(loss, openInterest);
        lossIndex[side] += delta;
    }

    /// @dev What position `p` owes now in the market whose pair is `lossIndex` (not settled).
    function pendingOf(Position storage p, uint256[2] storage lossIndex) internal view returns (uint256) {
        int256 size = p.size;
        return pending(size.abs(), lossIndex[size > 0 ? LONG : SHORT], p.lossSnapshot);
    }

    /// @dev Settlement: moves `p`'s snapshot to its side's index and returns what it owed, for
    ///      the caller to take from the margin.
    function settle(Position storage p, uint256[2] storage lossIndex) internal returns (uint256 owed) {
        int256 size = p.size;
        uint256 index = lossIndex[size > 0 ? LONG : SHORT];
        uint256 snapshot = p.lossSnapshot;
        if (index != snapshot) {
            owed = pending(size.abs(), index, snapshot);
            p.lossSnapshot = index;
        }
    }

    /// @dev Snapshot on open or flip: a position going from `oldSize` to `newSize` that opens or
    ///      changes side joins its new side at the side's current index (and owes nothing before).
    function join(Position storage p, uint256[2] storage lossIndex, int256 oldSize, int256 newSize) internal {
        if (newSize != 0 && (oldSize == 0 || (oldSize > 0) != (newSize > 0))) {
            p.lossSnapshot = lossIndex[newSize > 0 ? LONG : SHORT];
        }
    }
}
