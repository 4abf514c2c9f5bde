// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {FixedPointMath} from "./FixedPointMath.sol";

/// @title LiquidationMath
/// @notice The arithmetic of the liquidation waterfall (docs/design.md §4, docs/margin-math.md
///         §"Liquidation"): the keeper reward, the insurance fee, the deficit, and the split of a
///         loss the insurance fund could not cover over the bankrupt account's markets.
/// @dev Pure: `MarginEngine.liquidate` reads the state, calls these, and moves the ledger.
library LiquidationMath {
    using FixedPointMath for uint256;
    using FixedPointMath for int256;
    using SafeCast for uint256;
    using SafeCast for int256;

    /// @dev One position of a liquidated account, valued at the oracle, with its market's ratios.
    struct Closing {
        uint256 marketId;
        int256 size;
        uint256 price;
        /// @dev The PnL of closing at fair value: exactly the unrealized PnL of the equity formula.
        int256 realized;
        uint256 notional;
        uint256 keeperRewardRatio;
        uint256 insuranceFeeRatio;
        uint256 keeperRewardCap;
    }

    /// @dev The waterfall's amounts before the insurance fund is asked (WAD unless named tokens).
    struct Split {
        /// @dev `Σ n_m`, the notional taken over.
        uint256 notional;
        /// @dev `K = min(Σ mulWadDown(n_m, keeperRewardRatio_m), Σ keeperRewardCap_m)`, moved from
        ///      the account to the keeper.
        uint256 keeperReward;
        /// @dev `F_if` in whole token units, paid from the account's margin to the fund.
        uint256 feeTokens;
        /// @dev `F_if` in WAD (`feeTokens` scaled back).
        uint256 insuranceFee;
        /// @dev `D = K − m0 > 0` when the account is bankrupt, else 0.
        uint256 deficit;
        /// @dev The account's margin change besides the fee (to exactly 0 when bankrupt).
        int256 accountDelta;
    }

    /// @dev Splits a liquidation of an account with margin `margin` and `m0` (margin plus the PnL
    ///      of closing every position in `closing`; it owes no pending loss) for a collateral with
    ///      `scale` WAD per token unit. The fee comes only out of what is left after the keeper
    ///      reward, rounded down to a whole token unit; a bankrupt account pays no fee and ends at
    ///      exactly zero, its deficit going down the waterfall.
    function split(Closing[] memory closing, int256 margin, int256 m0, uint256 scale)
        internal
        pure
        returns (Split memory s)
    {
        uint256 feeRaw = 0;
        uint256 rewardCap = 0;
        for (uint256 i; i < closing.length; ++i) {
            uint256 notional = closing[i].notional;
            s.notional += notional;
            s.keeperReward += notional.mulWadDown(closing[i].keeperRewardRatio);
            feeRaw += notional.mulWadDown(closing[i].insuranceFeeRatio);
            rewardCap += closing[i].keeperRewardCap;
        }
        // The absolute cap bounds what one liquidation pays its keeper out of the account, and so
        // out of the fund and the winners when it is bankrupt (docs/design.md §4 step 1).
        if (s.keeperReward > rewardCap) s.keeperReward = rewardCap;
        int256 keeperReward = s.keeperReward.toInt256();
        // m0 − K: what is left for the insurance fee and the account.
        int256 left = m0 - keeperReward;
        if (left >= 0) {
            // Rounded down to a whole token unit on purpose (docs/design.md §4), then scaled back.
            // slither-disable-next-line divide-before-multiply
            s.feeTokens = FixedPointMath.min(feeRaw.toInt256(), left).toUint256().toTokensDown(scale);
            s.insuranceFee = s.feeTokens.toWad(scale);
            s.accountDelta = m0 - margin - keeperReward;
        } else {
            s.deficit = uint256(-left);
            s.accountDelta = -margin;
        }
    }

    /// @dev The shares of `loss` per position of `closing`: weighted by realized loss over the
    ///      markets the account lost in, or by notional over all of them if it lost in none. Each
    ///      share is `loss · weight / Σ weight` rounded down, except that the last weighted market
    ///      takes the rounding remainder, so the shares sum to exactly `loss`.
    function lossShares(Closing[] memory closing, uint256 loss) internal pure returns (uint256[] memory shares) {
        uint256 totalWeight = 0;
        uint256 last = 0;
        bool byLoss = false;
        for (uint256 i; i < closing.length; ++i) {
            if (closing[i].realized < 0) {
                byLoss = true;
                totalWeight += uint256(-closing[i].realized);
                last = i;
            }
        }
        if (!byLoss) {
            for (uint256 i; i < closing.length; ++i) {
                totalWeight += closing[i].notional;
            }
            last = closing.length - 1;
        }
        shares = new uint256[](closing.length);
        uint256 remaining = loss;
        for (uint256 i; i <= last; ++i) {
            uint256 weight = byLoss
                ? (closing[i].realized < 0 ? uint256(-closing[i].realized) : 0)
                : closing[i].notional;
            if (weight == 0) continue;
            uint256 share = i == last ? remaining : loss * weight / totalWeight;
            remaining -= share;
            shares[i] = share;
        }
    }
}
