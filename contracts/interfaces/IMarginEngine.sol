// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AggregatorV3Interface} from "./AggregatorV3Interface.sol";
import {IMarginAuthority} from "./IMarginAuthority.sol";

/// @title IMarginEngine
/// @notice Markets, positions, EIP-712 signed-order trading and cross-margin requirements
///         (docs/design.md §2, §3). The exact integer rules are in `docs/margin-math.md`.
/// @dev Units: money and prices in WAD (1e18 = one token / one quote per base unit), sizes in
///      signed WAD base units (long > 0), ratios in WAD. Every rounding goes against the account.
///
///      Trust assumptions: the oracle adapter returns fair, fresh prices or reverts; the admin sets
///      market parameters only within the hard bounds checked here; the guardian can pause trading
///      but never withdrawals of free collateral. No function lets anyone move an account's margin
///      except the account's own signed orders, its withdrawals, and the rules below.
interface IMarginEngine is IMarginAuthority {
    /// @notice Parameters of a market, as given to `addMarket` / `scheduleMarketUpdate`.
    /// @param feed Chainlink price feed (registered with the oracle adapter under the market id).
    /// @param heartbeat Maximum feed answer age in seconds (> 0).
    /// @param imRatio Initial margin ratio, `mmRatio < imRatio ≤ 1e18`.
    /// @param mmRatio Maintenance margin ratio, `0 < mmRatio`.
    /// @param keeperRewardRatio Liquidation reward per liquidated notional; with the insurance fee,
    ///        `keeperRewardRatio + insuranceFeeRatio ≤ mmRatio`.
    /// @param insuranceFeeRatio Liquidation fee to the fund per notional (same bound).
    /// @param priceBandRatio Maximum relative distance of a fill price from the oracle, `0 < band < 1e18`.
    /// @param makerFeeRatio Trading fee of the maker per notional, `< mmRatio`.
    /// @param takerFeeRatio Trading fee of the taker per notional, `< mmRatio`.
    /// @param openInterestCap Maximum Σ long size in WAD base units (> 0).
    /// @param keeperRewardCap Absolute cap on the keeper reward this market adds to one
    ///        liquidation, WAD quote (`0 < cap < 2^128`); docs/design.md §4 step 1.
    struct MarketParams {
        AggregatorV3Interface feed;
        uint256 heartbeat;
        uint256 imRatio;
        uint256 mmRatio;
        uint256 keeperRewardRatio;
        uint256 insuranceFeeRatio;
        uint256 priceBandRatio;
        uint256 makerFeeRatio;
        uint256 takerFeeRatio;
        uint256 openInterestCap;
        uint256 keeperRewardCap;
    }

    /// @notice A signed order (EIP-712 type `Order`, domain `Backstop`/`1`).
    /// @param account The trader whose position and margin the order moves; must be the signer.
    /// @param marketId The market.
    /// @param isBuy True to buy (go longer), false to sell.
    /// @param size Maximum total fill in WAD base units, over all partial fills.
    /// @param limitPrice Worst acceptable price in WAD; a maker's fills happen at exactly this price.
    /// @param nonce Any value ≥ the account's minimum nonce; raising the minimum cancels older orders.
    /// @param expiry Last valid timestamp (inclusive).
    // Field order is the EIP-712 type's, fixed by the spec; orders live in calldata, not storage.
    // solhint-disable-next-line gas-struct-packing
    struct Order {
        address account;
        uint256 marketId;
        bool isBuy;
        uint256 size;
        uint256 limitPrice;
        uint256 nonce;
        uint256 expiry;
    }

    /// @notice An account's health at current oracle prices (see `healthOf`).
    struct Health {
        int256 margin;
        uint256 pendingLoss;
        int256 equity;
        uint256 initialMargin;
        uint256 maintenanceMargin;
        bool hasPositions;
    }

    // --- errors --------------------------------------------------------------------------------

    /// @notice A market parameter is outside its hard bound.
    error InvalidMarketParam(string param, uint256 value);
    /// @notice No market with this id.
    error UnknownMarket(uint256 marketId);
    /// @notice The market-id space (65,535 markets) is exhausted.
    error TooManyMarketsListed();
    /// @notice Trading is paused globally or in `marketId`.
    error TradingPaused(uint256 marketId);
    /// @notice A fill of zero size.
    error ZeroFill();
    /// @notice The two orders are for different markets.
    error MarketMismatch(uint256 makerMarketId, uint256 takerMarketId);
    /// @notice Both orders buy, or both sell.
    error SameSide();
    /// @notice Both orders belong to the same account.
    error SelfTrade(address account);
    /// @notice The order's expiry has passed.
    error OrderExpired(bytes32 orderHash, uint256 expiry);
    /// @notice The signature does not recover the order's account (or is malformed / high-s).
    error InvalidSignature(bytes32 orderHash, address account);
    /// @notice The order's nonce is below the account's minimum nonce.
    error NonceTooLow(bytes32 orderHash, uint256 nonce, uint256 minNonce);
    /// @notice The order was cancelled by its account.
    error OrderIsCancelled(bytes32 orderHash);
    /// @notice The fill would take the order past its size.
    error OrderOverfilled(bytes32 orderHash, uint256 filled, uint256 fill, uint256 size);
    /// @notice The taker's limit does not accept the maker's price.
    error PriceIncompatible(uint256 makerPrice, uint256 takerLimit);
    /// @notice The fill price is further than the band from the oracle price.
    error PriceOutsideBand(uint256 marketId, uint256 price, uint256 oraclePrice);
    /// @notice The fill would raise open interest above the cap.
    error OpenInterestCapExceeded(uint256 marketId, uint256 openInterest, uint256 cap);
    /// @notice After the action `account` would be under its requirement.
    error InsufficientMargin(address account, int256 equity, uint256 required);
    /// @notice The fill would give `account` a position in more than `MAX_MARKETS_PER_ACCOUNT` markets.
    error TooManyMarkets(address account);
    /// @notice The new minimum nonce is not above the current one.
    error NonceNotIncreasing(uint256 current, uint256 requested);
    /// @notice Only the collateral vault may call this.
    error NotVault(address caller);
    /// @notice A size or price does not fit the position's 128-bit storage.
    error ValueOutOfRange(uint256 value);
    /// @notice `account` holds no position or has `equity ≥ maintenance` (the bound is strict).
    error NotLiquidatable(address account, int256 equity, uint256 maintenance);
    /// @notice An account cannot liquidate itself.
    error SelfLiquidation(address account);
    /// @notice `liquidatePosition` with `size` 0 or above the position's `|size|` (`positionSize`).
    error InvalidLiquidationSize(address account, uint256 marketId, uint256 size, uint256 positionSize);
    /// @notice `liquidatePosition` on a market `account` holds no position in.
    error NoPositionInMarket(address account, uint256 marketId);
    /// @notice A partial step would leave `account` with `equity` < 0 after its keeper reward:
    ///         a bankrupt account goes through `liquidate` and its waterfall.
    error PartialLiquidationBankrupt(address account, int256 equity);
    /// @notice `liquidateMany` with an empty list.
    error EmptyBatch();
    /// @notice The constructor's parameter delay is outside `[minimum, maximum]` seconds.
    error InvalidParamsDelay(uint256 delay, uint256 minimum, uint256 maximum);
    /// @notice `target` (a market id, or `SEQUENCER_TARGET`) already has an update scheduled for `eta`.
    error UpdateAlreadyScheduled(uint256 target, uint256 eta);
    /// @notice `target` (a market id, or `SEQUENCER_TARGET`) has no update scheduled.
    error NoUpdateScheduled(uint256 target);
    /// @notice The update of `target` can be executed from `eta` on; it is now `timestamp`.
    error UpdateNotReady(uint256 target, uint256 eta, uint256 timestamp);
    /// @notice The update of `target` could be executed until `deadline`; it is now `timestamp`.
    error UpdateExpired(uint256 target, uint256 deadline, uint256 timestamp);
    /// @notice `caller` holds neither the admin nor the guardian role.
    error NotAdminOrGuardian(address caller);

    // --- events --------------------------------------------------------------------------------

    /// @notice A market was listed with `params`.
    event MarketAdded(uint256 indexed marketId, MarketParams params);
    /// @notice A change of `marketId`'s parameters to `params` was scheduled; it can be executed
    ///         from `eta` (a timestamp) for `EXECUTION_WINDOW` seconds.
    event MarketUpdateScheduled(uint256 indexed marketId, MarketParams params, uint256 eta);
    /// @notice The scheduled change of `marketId` was applied: its parameters are now `params`.
    event MarketUpdateExecuted(uint256 indexed marketId, MarketParams params);
    /// @notice The scheduled change of `marketId` was cancelled by `by`.
    event MarketUpdateCancelled(uint256 indexed marketId, address indexed by);
    /// @notice A change of the L2 sequencer-uptime feed (zero: none) and its grace period was
    ///         scheduled for `eta`.
    event SequencerUpdateScheduled(address indexed feed, uint256 gracePeriod, uint256 eta);
    /// @notice The scheduled sequencer change was applied.
    event SequencerUpdateExecuted(address indexed feed, uint256 gracePeriod);
    /// @notice The scheduled sequencer change was cancelled by `by`.
    event SequencerUpdateCancelled(address indexed by);
    /// @notice The guardian lowered `marketId`'s open-interest cap from `previousCap` to `cap`.
    event OpenInterestCapLowered(uint256 indexed marketId, uint256 previousCap, uint256 cap);
    /// @notice Trading in `marketId` was paused or resumed.
    event MarketPaused(uint256 indexed marketId, bool paused);
    /// @notice Trading in every market was paused or resumed.
    event GlobalPaused(bool paused);
    /// @notice Two orders were matched for `size` at `price` (`takerOrderHash` is zero for a
    ///         `fillOrder`, whose taker is the sender).
    event Trade(
        uint256 indexed marketId,
        address indexed maker,
        address indexed taker,
        bytes32 makerOrderHash,
        bytes32 takerOrderHash,
        bool makerIsBuy,
        uint256 size,
        uint256 price,
        uint256 makerFeeTokens,
        uint256 takerFeeTokens
    );
    /// @notice `account`'s position in `marketId` is now `(size, openNotional)`; `realizedPnl` went
    ///         to its margin.
    event PositionChanged(
        address indexed account, uint256 indexed marketId, int256 size, int256 openNotional, int256 realizedPnl
    );
    /// @notice `account` cancelled the order with `orderHash`.
    event OrderCancelled(address indexed account, bytes32 indexed orderHash);
    /// @notice `account` invalidated every order with a nonce below `minNonce`.
    event MinNonceRaised(address indexed account, uint256 minNonce);
    /// @notice `amount` of pending socialized loss was settled into `account`'s margin.
    event LossSettled(address indexed account, uint256 amount);
    /// @notice `liquidator` took over every position of `account` (docs/design.md §4). WAD amounts:
    ///         `notional` liquidated, `keeperReward` paid to the liquidator, `insuranceFee` paid to
    ///         the fund, `deficit` left after both, `covered` by the fund, `socialized` to winners.
    event Liquidated(
        address indexed account,
        address indexed liquidator,
        uint256 notional,
        uint256 keeperReward,
        uint256 insuranceFee,
        uint256 deficit,
        uint256 covered,
        uint256 socialized
    );
    /// @notice `liquidator` took over `size` (WAD base units) of `account`'s position in
    ///         `marketId` at the oracle `price` (docs/design.md §4a). `keeperReward` (WAD) went to
    ///         the liquidator and `insuranceFee` (WAD, whole token units) to the fund.
    event PositionLiquidated(
        address indexed account,
        address indexed liquidator,
        uint256 indexed marketId,
        uint256 size,
        uint256 price,
        uint256 keeperReward,
        uint256 insuranceFee
    );
    /// @notice `liquidateMany` skipped `account`: it was no longer liquidatable when its turn came
    ///         (`equity ≥ maintenanceMargin`, or it held no position).
    event LiquidationSkipped(address indexed account, int256 equity, uint256 maintenanceMargin);
    /// @notice The insurance fund paid `amount` (WAD) of `account`'s deficit.
    event BadDebtCovered(address indexed account, uint256 amount);
    /// @notice `amount` (WAD) was charged to `side` (0 long, 1 short) of `marketId`: its loss index
    ///         rose by `indexDelta`.
    event LossSocialized(uint256 indexed marketId, uint256 indexed side, uint256 amount, uint256 indexDelta);

    // --- admin and guardian --------------------------------------------------------------------

    /// @notice Lists a market (admin). Registers its feed with the oracle adapter.
    /// @return marketId The new market's id (0, 1, 2, ...).
    function addMarket(MarketParams calldata params) external returns (uint256 marketId);

    /// @notice Schedules a change of `marketId`'s parameters, feed and heartbeat to `params`
    ///         (admin). Checked against the hard bounds now; applied by `executeMarketUpdate` no
    ///         sooner than `PARAMS_DELAY` seconds later, so every holder sees it coming and can
    ///         leave first (docs/design.md §10). One scheduled change per market at a time.
    function scheduleMarketUpdate(uint256 marketId, MarketParams calldata params) external;

    /// @notice Applies `marketId`'s scheduled change (admin), from its `eta` until
    ///         `eta + EXECUTION_WINDOW`; afterwards it has expired and can only be replaced.
    function executeMarketUpdate(uint256 marketId) external;

    /// @notice Drops `marketId`'s scheduled change (admin or guardian).
    function cancelMarketUpdate(uint256 marketId) external;

    /// @notice Schedules a change of the L2 sequencer-uptime feed (zero: no check) and its grace
    ///         period (seconds, < 2^96), under the same delay as market changes (admin).
    function scheduleSequencerUpdate(AggregatorV3Interface feed, uint256 gracePeriod) external;

    /// @notice Applies the scheduled sequencer change (admin), within its execution window.
    function executeSequencerUpdate() external;

    /// @notice Drops the scheduled sequencer change (admin or guardian).
    function cancelSequencerUpdate() external;

    /// @notice Lowers `marketId`'s open-interest cap at once (guardian): protective only, it
    ///         blocks fills that raise open interest above `cap` and never touches a position.
    ///         `0 < cap <` the current cap.
    function lowerOpenInterestCap(uint256 marketId, uint256 cap) external;

    /// @notice Pauses or resumes trading in one market (guardian). Liquidation, settlement and
    ///         withdrawals continue.
    function setMarketPaused(uint256 marketId, bool paused) external;

    /// @notice Pauses or resumes trading in every market (guardian).
    function setGlobalPaused(bool paused) external;

    // --- trading -------------------------------------------------------------------------------

    /// @notice Matches `maker` with `taker` for `fillSize` at the maker's limit price. Anyone may
    ///         submit a match. Checks, in order: see `docs/margin-math.md`.
    function matchOrders(
        Order calldata maker,
        bytes calldata makerSignature,
        Order calldata taker,
        bytes calldata takerSignature,
        uint256 fillSize
    ) external;

    /// @notice Fills `fillSize` of the maker's signed `order` at its limit price, with the caller as
    ///         the taker on the other side: the caller needs no signature or order of its own. The
    ///         same checks (except those that concern a taker's order), taker fee and margin rules
    ///         as `matchOrders`; `Trade` carries a zero taker order hash.
    function fillOrder(Order calldata order, bytes calldata signature, uint256 fillSize) external;

    /// @notice Cancels the caller's orders with these hashes.
    function cancelOrders(bytes32[] calldata orderHashes) external;

    /// @notice Invalidates every order of the caller with a nonce below `minNonce`.
    function raiseMinNonce(uint256 minNonce) external;

    /// @notice Settles `account`'s pending socialized loss into its margin. Anyone may call.
    function settle(address account) external;

    /// @notice Liquidates `account` (needs `E < MMR`): the caller takes over all its positions at
    ///         oracle prices, receives the keeper reward, and must itself end with `E ≥ IMR`. The
    ///         deficit, if any, is paid by the insurance fund up to `coverable()` and the rest is
    ///         socialized to the opposite side of the markets the account lost in. Works while
    ///         trading is paused; needs fresh prices; never reverts because the fund is short.
    function liquidate(address account) external;

    /// @notice Partial liquidation (docs/design.md §4a): the caller takes over `size` (WAD base
    ///         units, `0 < size ≤ |position|`) of liquidatable `account`'s position in `marketId`
    ///         at the oracle price `P`. With `N = size·P` (rounded up), the keeper reward
    ///         `K = min(N·keeperRewardRatio, keeperRewardCap)` goes to the caller and the insurance
    ///         fee `min(N·insuranceFeeRatio, max(E₁, 0))` (whole token units, down) to the fund,
    ///         where `E₁` is the account's equity after realizing and paying `K`. Reverts
    ///         `PartialLiquidationBankrupt` if `E₁ < 0`; the caller must end with `E ≥ IMR`. The
    ///         account's buffer `E − MMR` never falls by more than 2 wei. Emits `PositionLiquidated`.
    function liquidatePosition(address account, uint256 marketId, uint256 size) external;

    /// @notice Batch liquidation (docs/design.md §4b): `liquidate` for each of `accounts` in order,
    ///         skipping (`LiquidationSkipped`, no revert) those not liquidatable when their turn
    ///         comes, a repeated entry included. The caller's `E ≥ IMR` is checked once, at the
    ///         end. Reverts `EmptyBatch` for an empty list and `SelfLiquidation` if the caller is
    ///         listed.
    /// @return liquidated How many accounts were liquidated.
    function liquidateMany(address[] calldata accounts) external returns (uint256 liquidated);

    // --- views ---------------------------------------------------------------------------------

    /// @notice The EIP-712 digest of `order` (what its account signs).
    function hashOrder(Order calldata order) external view returns (bytes32);

    /// @notice How much of the order with this hash has been filled.
    function filledOf(bytes32 orderHash) external view returns (uint256);

    /// @notice Whether `account` cancelled `orderHash`.
    function isCancelled(address account, bytes32 orderHash) external view returns (bool);

    /// @notice The minimum valid nonce of `account`.
    function minNonceOf(address account) external view returns (uint256);

    /// @notice Parameters of `marketId`.
    function marketParams(uint256 marketId) external view returns (MarketParams memory);

    /// @notice The change scheduled for `marketId` and the timestamp it can be executed from
    ///         (`eta == 0`: none).
    function scheduledMarketUpdate(uint256 marketId) external view returns (MarketParams memory params, uint256 eta);

    /// @notice The scheduled sequencer change and its `eta` (`eta == 0`: none).
    function scheduledSequencerUpdate()
        external
        view
        returns (AggregatorV3Interface feed, uint256 gracePeriod, uint256 eta);

    /// @notice Seconds between scheduling a change and the first moment it can be executed.
    function PARAMS_DELAY() external view returns (uint256);

    /// @notice Number of listed markets.
    function marketCount() external view returns (uint256);

    /// @notice Σ long size (= Σ short size) in `marketId`.
    function openInterestOf(uint256 marketId) external view returns (uint256);

    /// @notice Whether trading is paused in `marketId` (or globally).
    function isPaused(uint256 marketId) external view returns (bool);

    /// @notice `account`'s position in `marketId`.
    function positionOf(address account, uint256 marketId) external view returns (int256 size, int256 openNotional);

    /// @notice The markets `account` holds positions in, in the order they were opened.
    function marketsOf(address account) external view returns (uint256[] memory);

    /// @notice Socialized loss charged to `account` but not yet settled into its margin.
    function pendingLossOf(address account) external view returns (uint256);

    /// @notice `E = margin − pending + Σ unrealized PnL` at oracle prices.
    function equityOf(address account) external view returns (int256);

    /// @notice `IMR = Σ notional · imRatio`.
    function initialMarginOf(address account) external view returns (uint256);

    /// @notice `MMR = Σ notional · mmRatio`.
    function maintenanceMarginOf(address account) external view returns (uint256);

    /// @notice `F = min(margin − pending, E) − IMR`, signed; what `withdraw` allows after settling.
    function freeCollateralOf(address account) external view returns (int256);

    /// @notice Health of every account in `accounts`, one call per keeper batch.
    function healthOf(address[] calldata accounts) external view returns (Health[] memory);

    /// @notice Cumulative socialized loss per unit of size of each side of `marketId` (WAD).
    function lossIndexOf(uint256 marketId) external view returns (uint256 longIndex, uint256 shortIndex);

    /// @notice Σ openNotional over all positions (WAD, signed).
    function netOpenNotional() external view returns (int256);

    /// @notice Socialized loss not yet settled into margins (WAD, signed running total: settlements
    ///         round up, so it can dip below zero by rounding).
    function unsettledLoss() external view returns (int256);

    /// @notice The solvency identity (docs/design.md §9) in O(1): `vaultAssets` is the vault's token balance
    ///         in WAD, `liabilities = Σ margin + fundCredit − Σ openNotional − unsettledLoss` (the
    ///         fund's credit in WAD: tokens the vault holds for the insurance fund), and
    ///         `dust = vaultAssets − liabilities`, never negative.
    function solvency() external view returns (uint256 vaultAssets, int256 liabilities, int256 dust);
}
