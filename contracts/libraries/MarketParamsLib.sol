// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IMarginEngine} from "../interfaces/IMarginEngine.sol";
import {IOracleAdapter} from "../interfaces/IOracleAdapter.sol";
import {FixedPointMath} from "./FixedPointMath.sol";
import {PositionMath} from "./PositionMath.sol";

/// @dev One market's stored parameters and state. Ratios fit 64 bits (≤ 1e18 < 2^64); four
///      words per market plus the loss indices (the keeper-reward cap has its own word, read only
///      by a liquidation).
struct Market {
    uint64 imRatio;
    uint64 mmRatio;
    uint64 keeperRewardRatio;
    uint64 insuranceFeeRatio;
    uint64 priceBandRatio;
    uint64 makerFeeRatio;
    uint64 takerFeeRatio;
    bool paused;
    uint128 openInterestCap;
    uint128 openInterest;
    /// @dev WAD quote; the most one liquidation's keeper reward takes for this market.
    uint256 keeperRewardCap;
    /// @dev Cumulative socialized loss per unit of size, per side (`[LONG]`, `[SHORT]`; see
    ///      `SocializedLoss`).
    uint256[2] lossIndex;
}

/// @title MarketParamsLib
/// @notice The hard bounds on a market's parameters (docs/design.md §10), and their storage.
library MarketParamsLib {
    uint256 internal constant WAD = FixedPointMath.WAD;

    /// @dev Reverts `InvalidMarketParam` naming the first parameter out of bounds: the keeper
    ///      reward and the insurance fee together at most the maintenance ratio, each trading fee
    ///      below it, the maintenance ratio below the initial ratio (≤ 1), a price band in (0, 1),
    ///      a heartbeat in (0, 2^32), an open-interest cap in (0, 2^127), a keeper-reward cap in (0, 2^128) and a
    ///      feed. After these checks every ratio is ≤ 1e18 < 2^64.
    function validate(IMarginEngine.MarketParams memory params) internal pure {
        uint256 mm = params.mmRatio;
        if (mm == 0) revert IMarginEngine.InvalidMarketParam("mmRatio", mm);
        if (params.imRatio <= mm || params.imRatio > WAD) {
            revert IMarginEngine.InvalidMarketParam("imRatio", params.imRatio);
        }
        // What a liquidation takes off the top (reward, then fee) never exceeds the maintenance
        // margin, so an account liquidated right at E = MMR is not pushed into a deficit by it.
        if (params.keeperRewardRatio > mm) {
            revert IMarginEngine.InvalidMarketParam("keeperRewardRatio", params.keeperRewardRatio);
        }
        if (params.insuranceFeeRatio > mm - params.keeperRewardRatio) {
            revert IMarginEngine.InvalidMarketParam("insuranceFeeRatio", params.insuranceFeeRatio);
        }
        if (params.makerFeeRatio >= mm) revert IMarginEngine.InvalidMarketParam("makerFeeRatio", params.makerFeeRatio);
        if (params.takerFeeRatio >= mm) revert IMarginEngine.InvalidMarketParam("takerFeeRatio", params.takerFeeRatio);
        if (params.priceBandRatio == 0 || params.priceBandRatio >= WAD) {
            revert IMarginEngine.InvalidMarketParam("priceBandRatio", params.priceBandRatio);
        }
        // The adapter stores heartbeats in 32 bits; refusing here catches it when a change is scheduled.
        if (params.heartbeat == 0 || params.heartbeat > type(uint32).max) {
            revert IMarginEngine.InvalidMarketParam("heartbeat", params.heartbeat);
        }
        if (params.openInterestCap == 0 || params.openInterestCap > PositionMath.MAX_VALUE) {
            revert IMarginEngine.InvalidMarketParam("openInterestCap", params.openInterestCap);
        }
        if (params.keeperRewardCap == 0 || params.keeperRewardCap > type(uint128).max) {
            revert IMarginEngine.InvalidMarketParam("keeperRewardCap", params.keeperRewardCap);
        }
        if (address(params.feed) == address(0)) revert IMarginEngine.InvalidMarketParam("feed", 0);
    }

    /// @dev Stores validated `params` into `m` (the feed and heartbeat live in the oracle adapter).
    function store(Market storage m, IMarginEngine.MarketParams memory params) internal {
        // Every ratio is ≤ 1e18 < 2^64 after `validate`, so the casts are exact.
        m.imRatio = uint64(params.imRatio);
        m.mmRatio = uint64(params.mmRatio);
        m.keeperRewardRatio = uint64(params.keeperRewardRatio);
        m.insuranceFeeRatio = uint64(params.insuranceFeeRatio);
        m.priceBandRatio = uint64(params.priceBandRatio);
        m.makerFeeRatio = uint64(params.makerFeeRatio);
        m.takerFeeRatio = uint64(params.takerFeeRatio);
        m.openInterestCap = uint128(params.openInterestCap);
        m.keeperRewardCap = params.keeperRewardCap;
    }

    /// @dev The parameters of `m` with its oracle feed `feed`, as `IMarginEngine.marketParams` returns them.
    function load(Market storage m, IOracleAdapter.FeedConfig memory feed)
        internal
        view
        returns (IMarginEngine.MarketParams memory)
    {
        return IMarginEngine.MarketParams({
            feed: feed.feed,
            heartbeat: feed.heartbeat,
            imRatio: m.imRatio,
            mmRatio: m.mmRatio,
            keeperRewardRatio: m.keeperRewardRatio,
            insuranceFeeRatio: m.insuranceFeeRatio,
            priceBandRatio: m.priceBandRatio,
            makerFeeRatio: m.makerFeeRatio,
            takerFeeRatio: m.takerFeeRatio,
            openInterestCap: m.openInterestCap,
            keeperRewardCap: m.keeperRewardCap
        });
    }
}
