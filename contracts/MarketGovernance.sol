// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

import {AggregatorV3Interface} from "./interfaces/AggregatorV3Interface.sol";
import {IMarginEngine} from "./interfaces/IMarginEngine.sol";
import {IOracleAdapter} from "./interfaces/IOracleAdapter.sol";
import {Market, MarketParamsLib} from "./libraries/MarketParamsLib.sol";
import {UpdateTimelock} from "./libraries/UpdateTimelock.sol";

/// @title MarketGovernance
/// @notice The engine's markets and who may change them (docs/design.md §10): the admin lists
///         markets at once and changes them only through a timelock of `PARAMS_DELAY` seconds; the
///         guardian pauses trading, lowers open-interest caps and cancels scheduled changes at
///         once, because those only protect.
/// @dev Abstract: `MarginEngine` inherits it and reads `_markets` in its valuation loop. Nothing
///      here moves margin or positions.
abstract contract MarketGovernance is IMarginEngine, AccessControl {
    using UpdateTimelock for mapping(uint256 => uint256);

    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");
    /// @notice The timelock target of the sequencer-feed change (market ids are below 2^16).
    uint256 public constant SEQUENCER_TARGET = type(uint256).max;
    /// @notice Bounds on `PARAMS_DELAY`: long enough to leave, short enough to stay governable.
    uint256 public constant MIN_PARAMS_DELAY = 1 hours;
    /// @notice See `MIN_PARAMS_DELAY`.
    uint256 public constant MAX_PARAMS_DELAY = 30 days;
    /// @notice How long a scheduled change stays executable after its eta.
    uint256 public constant EXECUTION_WINDOW = UpdateTimelock.EXECUTION_WINDOW;
    /// @dev Market ids are stored in 16 bits in an account's market list.
    uint256 internal constant MAX_MARKETS = type(uint16).max;

    IOracleAdapter public immutable ORACLE;
    /// @inheritdoc IMarginEngine
    uint256 public immutable PARAMS_DELAY;

    Market[] internal _markets;
    /// @notice Whether trading is paused in every market.
    bool public globalPaused;
    /// @dev The eta of each scheduled change, by target (market id, or `SEQUENCER_TARGET`).
    mapping(uint256 target => uint256 eta) internal _etas;
    mapping(uint256 marketId => MarketParams) internal _scheduledParams;
    /// @dev The scheduled sequencer feed and grace period.
    AggregatorV3Interface internal _scheduledSequencerFeed;
    uint256 internal _scheduledGracePeriod;

    constructor(IOracleAdapter oracle, address admin, address guardian, uint256 paramsDelay) {
        if (paramsDelay < MIN_PARAMS_DELAY || paramsDelay > MAX_PARAMS_DELAY) {
            revert InvalidParamsDelay(paramsDelay, MIN_PARAMS_DELAY, MAX_PARAMS_DELAY);
        }
        ORACLE = oracle;
        PARAMS_DELAY = paramsDelay;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GUARDIAN_ROLE, guardian);
    }

    // --- admin and guardian --------------------------------------------------------------------

    /// @inheritdoc IMarginEngine
    function addMarket(MarketParams calldata params) external onlyRole(DEFAULT_ADMIN_ROLE) returns (uint256 marketId) {
        marketId = _markets.length;
        if (marketId >= MAX_MARKETS) revert TooManyMarketsListed();
        _markets.push();
        _setParams(marketId, params);
        emit MarketAdded(marketId, params);
    }

    /// @inheritdoc IMarginEngine
    function scheduleMarketUpdate(uint256 marketId, MarketParams calldata params)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _market(marketId);
        MarketParamsLib.validate(params);
        uint256 eta = _etas.schedule(marketId, PARAMS_DELAY);
        _scheduledParams[marketId] = params;
        emit MarketUpdateScheduled(marketId, params, eta);
    }

    /// @inheritdoc IMarginEngine
    function executeMarketUpdate(uint256 marketId) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _etas.consume(marketId);
        MarketParams memory params = _scheduledParams[marketId];
        delete _scheduledParams[marketId];
        _setParams(marketId, params);
        emit MarketUpdateExecuted(marketId, params);
    }

    /// @inheritdoc IMarginEngine
    function cancelMarketUpdate(uint256 marketId) external {
        _onlyAdminOrGuardian();
        _etas.cancel(marketId);
        delete _scheduledParams[marketId];
        emit MarketUpdateCancelled(marketId, msg.sender);
    }

    /// @inheritdoc IMarginEngine
    function scheduleSequencerUpdate(AggregatorV3Interface feed, uint256 gracePeriod)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        if (gracePeriod > type(uint96).max) revert IOracleAdapter.InvalidGracePeriod(gracePeriod);
        uint256 eta = _etas.schedule(SEQUENCER_TARGET, PARAMS_DELAY);
        (_scheduledSequencerFeed, _scheduledGracePeriod) = (feed, gracePeriod);
        emit SequencerUpdateScheduled(address(feed), gracePeriod, eta);
    }

    /// @inheritdoc IMarginEngine
    function executeSequencerUpdate() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _etas.consume(SEQUENCER_TARGET);
        (AggregatorV3Interface feed, uint256 gracePeriod) = (_scheduledSequencerFeed, _scheduledGracePeriod);
        (_scheduledSequencerFeed, _scheduledGracePeriod) = (AggregatorV3Interface(address(0)), 0);
        emit SequencerUpdateExecuted(address(feed), gracePeriod);
        ORACLE.setSequencerFeed(feed, gracePeriod);
    }

    /// @inheritdoc IMarginEngine
    function cancelSequencerUpdate() external {
        _onlyAdminOrGuardian();
        _etas.cancel(SEQUENCER_TARGET);
        (_scheduledSequencerFeed, _scheduledGracePeriod) = (AggregatorV3Interface(address(0)), 0);
        emit SequencerUpdateCancelled(msg.sender);
    }

    /// @inheritdoc IMarginEngine
    function lowerOpenInterestCap(uint256 marketId, uint256 cap) external onlyRole(GUARDIAN_ROLE) {
        Market storage m = _market(marketId);
        uint256 previous = m.openInterestCap;
        if (cap == 0 || cap >= previous) revert InvalidMarketParam("openInterestCap", cap);
        m.openInterestCap = uint128(cap); // cap < previous < 2^128
        emit OpenInterestCapLowered(marketId, previous, cap);
    }

    /// @inheritdoc IMarginEngine
    function setMarketPaused(uint256 marketId, bool paused) external onlyRole(GUARDIAN_ROLE) {
        _market(marketId).paused = paused;
        emit MarketPaused(marketId, paused);
    }

    /// @inheritdoc IMarginEngine
    function setGlobalPaused(bool paused) external onlyRole(GUARDIAN_ROLE) {
        globalPaused = paused;
        emit GlobalPaused(paused);
    }

    /// @inheritdoc IMarginEngine
    function marketParams(uint256 marketId) external view returns (MarketParams memory p) {
        p = MarketParamsLib.load(_market(marketId), ORACLE.feedOf(marketId));
    }


    /// @inheritdoc IMarginEngine
    function scheduledMarketUpdate(uint256 marketId) external view returns (MarketParams memory, uint256) {
        return (_scheduledParams[marketId], _etas[marketId]);
    }


    /// @inheritdoc IMarginEngine
    function scheduledSequencerUpdate() external view returns (AggregatorV3Interface, uint256, uint256) {
        return (_scheduledSequencerFeed, _scheduledGracePeriod, _etas[SEQUENCER_TARGET]);
    }


    /// @inheritdoc IMarginEngine
    function marketCount() external view returns (uint256) {
        return _markets.length;
    }


    /// @inheritdoc IMarginEngine
    function isPaused(uint256 marketId) external view returns (bool) {
        return globalPaused || _market(marketId).paused;
    }


    // --- internal: markets ---------------------------------------------------------------------

    function _market(uint256 marketId) internal view returns (Market storage) {
        if (marketId >= _markets.length) revert UnknownMarket(marketId);
        return _markets[marketId];
    }

    /// @dev Checks the hard bounds (`MarketParamsLib.validate`) and stores `params`; registers the feed.
    function _setParams(uint256 marketId, MarketParams memory params) internal {
        MarketParamsLib.validate(params);
        MarketParamsLib.store(_markets[marketId], params);
        ORACLE.setFeed(marketId, params.feed, params.heartbeat);
    }

    function _onlyAdminOrGuardian() internal view {
        if (!hasRole(DEFAULT_ADMIN_ROLE, msg.sender) && !hasRole(GUARDIAN_ROLE, msg.sender)) {
            revert NotAdminOrGuardian(msg.sender);
        }
    }
}
