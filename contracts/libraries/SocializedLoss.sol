// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {FixedPointMath} from "./FixedPointMath.sol";

/// @title SocializedLoss
/// @notice The O(1) loss accumulator of DESIGN §5: bad debt the insurance fund cannot cover is
///         charged to the winning side of a market pro-rata to position size, without a loop over
///         accounts.
///
/// @dev Derivation (in the style of Liquity's StabilityPool product-sum).
///
///      State. Per market `m` and side `o ∈ {long, short}` a cumulative index `L[m][o]` (WAD loss
///      per WAD of size, starts at 0, only grows). Per position a snapshot `S`, the value of its
///      side's index when the position last settled, was opened, or flipped.
///
///      Charging. A loss `R_m` (WAD) for side `o` of market `m`, whose open interest (Σ|size| over
///      positions on `o`, before the bankrupt positions move to the liquidator) is `OI > 0`:
///
///          ΔL = ceil(R_m · 1e18 / OI),        L[m][o] += ΔL.
///
///      Settlement. A position of size `z` on side `o` owes `pending = ceil(|z| · (L − S) / 1e18)`;
///      touching the account moves `pending` from its margin and sets `S = L`.
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

    /// @dev `ΔL = ceil(loss · 1e18 / openInterest)`; `openInterest > 0` (the bankrupt position's
    ///      counterparties exist because markets are zero-sum).
    function indexDelta(uint256 loss, uint256 openInterest) internal pure returns (uint256) {
        return (loss * FixedPointMath.WAD).ceilDiv(openInterest);
    }

    /// @dev `ceil(|size| · (index − snapshot) / 1e18)`: what a position owes since its snapshot.
    function pending(uint256 absSize, uint256 index, uint256 snapshot) internal pure returns (uint256) {
        return absSize.mulWadUp(index - snapshot);
    }
}
