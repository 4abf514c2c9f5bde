// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {ICollateralVault} from "./interfaces/ICollateralVault.sol";
import {IInsuranceFund} from "./interfaces/IInsuranceFund.sol";
import {IMarginAuthority} from "./interfaces/IMarginAuthority.sol";
import {IMarginEngine} from "./interfaces/IMarginEngine.sol";
import {IOracleAdapter} from "./interfaces/IOracleAdapter.sol";
import {FixedPointMath} from "./libraries/FixedPointMath.sol";
import {LiquidationMath} from "./libraries/LiquidationMath.sol";
import {MarketList} from "./libraries/MarketList.sol";
import {Market} from "./libraries/MarketParamsLib.sol";
import {Position, PositionMath, Valuation} from "./libraries/PositionMath.sol";
import {SocializedLoss} from "./libraries/SocializedLoss.sol";
import {MarketGovernance} from "./MarketGovernance.sol";

/// @title MarginEngine
/// @notice Positions, signed-order trading, cross-margin requirements and the liquidation
///         waterfall. See `IMarginEngine`; the integer rules are in `docs/margin-math.md`. Markets
///         and their timelocked parameters are `MarketGovernance`'s.
/// @dev The margin ledger lives in the `CollateralVault`; this contract moves it only through the
///      vault's engine-only `adjustMargin` (settled losses) and `adjustMargins` (realized PnL,
///      fees, keeper rewards: both parties of a trade or liquidation in one call).
///      Oracle prices are read at most once per market per call: every internal valuation takes a
///      `prices` cache (a memory array indexed by market id, 0 = not read yet; see `_priceOf`).
contract MarginEngine is MarketGovernance, EIP712, ReentrancyGuardTransient {
    using FixedPointMath for uint256;
    using FixedPointMath for int256;
    using MarketList for uint256;
    using SafeCast for uint256;
    using SafeCast for int256;

    // The type string is hashed at compile time; its length costs nothing at run time.
    // solhint-disable-next-line gas-small-strings
    bytes32 public constant ORDER_TYPEHASH = keccak256(
        "Order(address account,uint256 marketId,bool isBuy,uint256 size,uint256 limitPrice,uint256 nonce,uint256 expiry)"
    );
    uint256 public constant MAX_MARKETS_PER_ACCOUNT = MarketList.MAX_ENTRIES;
    /// @dev `_bufferIfReducing`'s answer for a fill that does not only reduce a position.
    int256 internal constant NOT_REDUCING = type(int256).min;

    ICollateralVault public immutable VAULT;
    IInsuranceFund public immutable INSURANCE_FUND;
    /// @dev WAD per token unit of the collateral (copied from the vault).
    uint256 internal immutable SCALE;

    /// @dev A validated match, passed from `matchOrders` to `_executeFill`.
    struct Fill {
        uint256 marketId;
        address maker;
        address taker;
        bool makerIsBuy;
        uint256 size;
        uint256 price;
        bytes32 makerHash;
        bytes32 takerHash;
    }

    /// @dev The account's side of a partial liquidation, from `_takePart` to `liquidatePosition`:
    ///      the oracle price, the account's signed fill, the open interest after it, the keeper
    ///      reward (WAD), the insurance fee (token units) and the account's margin change besides
    ///      the fee (realized PnL − reward).
    struct PartStep {
        uint256 price;
        int256 delta;
        uint256 oi;
        uint256 reward;
        uint256 feeTokens;
        int256 accountDelta;
    }

    mapping(address account => mapping(uint256 marketId => Position)) internal _positions;
    mapping(address account => uint256 packed) internal _marketLists;
    /// @inheritdoc IMarginEngine
    mapping(bytes32 orderHash => uint256) public filledOf;
    mapping(address account => mapping(bytes32 orderHash => bool)) internal _cancelled;
    /// @inheritdoc IMarginEngine
    mapping(address account => uint256) public minNonceOf;
    /// @inheritdoc IMarginEngine
    int256 public netOpenNotional;
    /// @inheritdoc IMarginEngine
    int256 public unsettledLoss;

    /// @param vault The collateral vault (wired to this engine by its deployer).
    /// @param oracle The oracle adapter; this engine must be the only holder of its
    ///        `ORACLE_ADMIN_ROLE`, so feeds change only through this engine's timelock.
    /// @param fund The insurance fund (wired to this engine and the vault by its deployer).
    /// @param admin Receives the admin role (lists markets, schedules and executes changes).
    /// @param guardian Receives the guardian role (pauses, lowers caps, cancels changes).
    /// @param paramsDelay `PARAMS_DELAY`, seconds in `[MIN_PARAMS_DELAY, MAX_PARAMS_DELAY]`.
    constructor(
        ICollateralVault vault,
        IOracleAdapter oracle,
        IInsuranceFund fund,
        address admin,
        address guardian,
        uint256 paramsDelay
    ) MarketGovernance(oracle, admin, guardian, paramsDelay) EIP712("Backstop", "1") {
        VAULT = vault;
        INSURANCE_FUND = fund;
        SCALE = vault.SCALE();
    }

    // --- trading -------------------------------------------------------------------------------

    /// @inheritdoc IMarginEngine
    function matchOrders(
        Order calldata maker,
        bytes calldata makerSignature,
        Order calldata taker,
        bytes calldata takerSignature,
        uint256 fillSize
    ) external nonReentrant {
        (Market storage m, Fill memory f) = _checkFill(maker, taker.marketId, taker.isBuy, taker.account, fillSize);
        f.makerHash = _useOrder(maker, makerSignature, fillSize);
        f.takerHash = _useOrder(taker, takerSignature, fillSize);
        uint256[] memory prices = _priceCache();
        _checkPrice(m, f, taker.isBuy, taker.limitPrice, prices);
        _executeFill(m, f, prices);
    }

    /// @inheritdoc IMarginEngine
    function fillOrder(Order calldata order, bytes calldata signature, uint256 fillSize) external nonReentrant {
        // The sender is the taker, on the other side of the maker's order, at its limit price.
        bool takerIsBuy = !order.isBuy;
        (Market storage m, Fill memory f) = _checkFill(order, order.marketId, takerIsBuy, msg.sender, fillSize);
        f.makerHash = _useOrder(order, signature, fillSize);
        uint256[] memory prices = _priceCache();
        _checkPrice(m, f, takerIsBuy, order.limitPrice, prices);
        _executeFill(m, f, prices);
    }

    /// @inheritdoc IMarginEngine
    function cancelOrders(bytes32[] calldata orderHashes) external {
        for (uint256 i; i < orderHashes.length; ++i) {
            _cancelled[msg.sender][orderHashes[i]] = true;
            emit OrderCancelled(msg.sender, orderHashes[i]);
        }
    }

    /// @inheritdoc IMarginEngine
    function raiseMinNonce(uint256 minNonce) external {
        uint256 current = minNonceOf[msg.sender];
        if (minNonce <= current) revert NonceNotIncreasing(current, minNonce);
        minNonceOf[msg.sender] = minNonce;
        emit MinNonceRaised(msg.sender, minNonce);
    }

    /// @inheritdoc IMarginEngine
    function settle(address account) external nonReentrant {
        _settle(account);
    }

    /// @inheritdoc IMarginEngine
    function liquidate(address account) external nonReentrant {
        uint256[] memory prices = _priceCache();
        (bool done, int256 liquidatorMargin, Valuation memory v) = _liquidate(account, prices);
        if (!done) revert NotLiquidatable(account, v.equity, v.mmr);
        _checkMargin(msg.sender, liquidatorMargin, NOT_REDUCING, prices);
    }

    /// @inheritdoc IMarginEngine
    function liquidateMany(address[] calldata accounts) external nonReentrant returns (uint256 liquidated) {
        if (accounts.length == 0) revert EmptyBatch();
        uint256[] memory prices = _priceCache(); // one oracle read per market for the whole batch
        int256 liquidatorMargin = 0;
        for (uint256 i; i < accounts.length; ++i) {
            (bool done, int256 margin, Valuation memory v) = _liquidate(accounts[i], prices);
            if (done) {
                liquidatorMargin = margin;
                ++liquidated;
            } else {
                emit LiquidationSkipped(accounts[i], v.equity, v.mmr);
            }
        }
        // One IMR check of the liquidator, after every takeover (docs/design.md §4b).
        if (liquidated != 0) _checkMargin(msg.sender, liquidatorMargin, NOT_REDUCING, prices);
    }

    /// @inheritdoc IMarginEngine
    /// @dev A reducing fill of the account (`_takePart`) and an opening or netting fill of the
    ///      liquidator at the oracle price, booked in one ledger call with the reward and the fee
    ///      (docs/margin-math.md §"Partial liquidation").
    // slither-disable-next-line reentrancy-no-eth
    function liquidatePosition(address account, uint256 marketId, uint256 size) external nonReentrant {
        if (account == msg.sender) revert SelfLiquidation(account);
        Market storage m = _market(marketId);
        uint256[] memory prices = _priceCache();
        PartStep memory p = _takePart(account, marketId, m, size, prices);
        _settle(msg.sender);
        (uint256 oi, int256 liquidatorRealized) = _applyFill(msg.sender, marketId, m, -p.delta, p.price, p.oi);
        m.openInterest = uint128(oi);
        // slither-disable-next-line unused-return
        (, int256 liquidatorMargin) = VAULT.adjustMargins(
            account, p.accountDelta, p.feeTokens, msg.sender, liquidatorRealized + p.reward.toInt256(), 0, _claims(p.feeTokens)
        );
        _checkMargin(msg.sender, liquidatorMargin, NOT_REDUCING, prices);
        emit PositionLiquidated(account, msg.sender, marketId, size, p.price, p.reward, p.feeTokens.toWad(SCALE));
    }

    /// @inheritdoc IMarginAuthority
    function settleAndFreeCollateral(address account) external returns (int256) {
        if (msg.sender != address(VAULT)) revert NotVault(msg.sender);
        _settle(account);
        // No position: the whole margin is free, with no oracle read, whatever is paused.
        if (_marketLists[account].length() == 0) return VAULT.marginOf(account);
        return PositionMath.freeCollateral(_value(account, _priceCache()));
    }

    // --- views ---------------------------------------------------------------------------------

    /// @inheritdoc IMarginEngine
    function hashOrder(Order calldata order) public view returns (bytes32) {
        // `Order` has only static fields: its ABI encoding is the EIP-712 encoding of its fields.
        return _hashTypedDataV4(keccak256(abi.encode(ORDER_TYPEHASH, order)));
    }

    /// @inheritdoc IMarginEngine
    function isCancelled(address account, bytes32 orderHash) external view returns (bool) {
        return _cancelled[account][orderHash];
    }

    /// @inheritdoc IMarginEngine
    function openInterestOf(uint256 marketId) external view returns (uint256) {
        return _market(marketId).openInterest;
    }

    /// @inheritdoc IMarginEngine
    function positionOf(address account, uint256 marketId) external view returns (int256, int256) {
        Position storage p = _positions[account][marketId];
        return (p.size, p.openNotional);
    }

    /// @inheritdoc IMarginEngine
    function marketsOf(address account) external view returns (uint256[] memory ids) {
        ids = _marketLists[account].toArray();
    }

    /// @inheritdoc IMarginEngine
    function pendingLossOf(address account) external view returns (uint256 pending) {
        uint256 list = _marketLists[account];
        for (uint256 i; i < list.length(); ++i) {
            uint256 marketId = list.at(i);
            pending += SocializedLoss.pendingOf(_positions[account][marketId], _markets[marketId].lossIndex);
        }
    }

    /// @inheritdoc IMarginEngine
    function equityOf(address account) external view returns (int256) {
        return _value(account, _priceCache()).equity;
    }

    /// @inheritdoc IMarginEngine
    function initialMarginOf(address account) external view returns (uint256) {
        return _value(account, _priceCache()).imr;
    }

    /// @inheritdoc IMarginEngine
    function maintenanceMarginOf(address account) external view returns (uint256) {
        return _value(account, _priceCache()).mmr;
    }

    /// @inheritdoc IMarginEngine
    function freeCollateralOf(address account) external view returns (int256) {
        return PositionMath.freeCollateral(_value(account, _priceCache()));
    }

    /// @inheritdoc IMarginEngine
    function healthOf(address[] calldata accounts) external view returns (Health[] memory out) {
        out = new Health[](accounts.length);
        uint256[] memory prices = _priceCache(); // one oracle read per market for the whole batch
        for (uint256 i; i < accounts.length; ++i) {
            Valuation memory v = _value(accounts[i], prices);
            out[i] = Health(v.margin, v.pending, v.equity, v.imr, v.mmr, _marketLists[accounts[i]].length() != 0);
        }
    }

    /// @inheritdoc IMarginEngine
    function lossIndexOf(uint256 marketId) external view returns (uint256, uint256) {
        Market storage m = _market(marketId);
        return (m.lossIndex[SocializedLoss.LONG], m.lossIndex[SocializedLoss.SHORT]);
    }

    /// @inheritdoc IMarginEngine
    function solvency() external view returns (uint256 vaultAssets, int256 liabilities, int256 dust) {
        vaultAssets = VAULT.assetsWad();
        liabilities = VAULT.totalMargin() + VAULT.fundCredit().toWad(SCALE).toInt256() - netOpenNotional - unsettledLoss;
        dust = vaultAssets.toInt256() - liabilities;
    }

    // --- internal: liquidation -----------------------------------------------------------------

    /// @dev The waterfall for one account, top to bottom (arithmetic: `LiquidationMath`; loss
    ///      index: `SocializedLoss`), without the liquidator's final margin check, which is the
    ///      caller's. Returns `done` and the liquidator's margin afterwards, or, if `account` is
    ///      not liquidatable (no position, or `E ≥ MMR`), `done = false` with nothing moved but
    ///      its settlement. `v` is the account's valuation before anything moved.
    ///      External calls go only to the protocol's own immutable vault and fund; every entry point
    ///      that writes engine state is nonReentrant (docs/security.md, SLITHER-1).
    // slither-disable-next-line reentrancy-no-eth
    function _liquidate(address account, uint256[] memory prices)
        internal
        returns (bool done, int256 liquidatorMargin, Valuation memory v)
    {
        if (account == msg.sender) revert SelfLiquidation(account);
        // 1. Settle, then value every position at the oracle: liquidatable iff E < MMR (strict).
        _settle(account);
        LiquidationMath.Closing[] memory closing = new LiquidationMath.Closing[](_marketLists[account].length());
        v = _valueWith(account, VAULT.marginOf(account), prices, closing);
        if (closing.length == 0 || v.equity >= v.mmr.toInt256()) return (false, 0, v);

        // 2. Keeper reward K, insurance fee F_if out of what is left, or the deficit D.
        LiquidationMath.Split memory s = LiquidationMath.split(closing, v.margin, v.equity, SCALE);
        uint256 covered = 0;
        uint256 socialized = 0;
        if (s.deficit != 0) {
            // 3. Bankrupt: the insurance fund covers what it can, in whole token units ...
            covered = INSURANCE_FUND.cover(s.deficit.toTokensUp(SCALE)).toWad(SCALE);
            if (covered != 0) emit BadDebtCovered(account, covered);
            // 4. ... and the winners of the markets the account lost in absorb the rest.
            if (s.deficit > covered) {
                socialized = s.deficit - covered;
                _socialize(closing, socialized);
            }
        }

        // 5. The liquidator takes every position over at the oracle price and is paid K. One
        //    ledger call books both accounts (the account's new margin is checked by nobody).
        int256 liquidatorDelta = _handOver(account, msg.sender, closing) + s.keeperReward.toInt256();
        // slither-disable-next-line unused-return
        (, liquidatorMargin) =
            VAULT.adjustMargins(account, s.accountDelta, s.feeTokens, msg.sender, liquidatorDelta, 0, _claims(s.feeTokens));
        emit Liquidated(
            account, msg.sender, s.notional, s.keeperReward, s.insuranceFee, s.deficit, covered, socialized
        );
        done = true;
    }

    /// @dev The liquidated account's side of a partial step (docs/design.md §4a): settles it,
    ///      checks it is liquidatable and holds `0 < size ≤ |position|` in `marketId` (= `m`),
    ///      applies the reducing fill at the oracle price and sizes the keeper reward and the fee;
    ///      reverts `PartialLiquidationBankrupt` if the account's equity after realizing and paying
    ///      the reward is negative. Books nothing: the caller does, with the liquidator's side.
    // slither-disable-next-line reentrancy-no-eth
    function _takePart(address account, uint256 marketId, Market storage m, uint256 size, uint256[] memory prices)
        internal
        returns (PartStep memory p)
    {
        _settle(account);
        Valuation memory v = _value(account, prices);
        if (_marketLists[account].length() == 0 || v.equity >= v.mmr.toInt256()) {
            revert NotLiquidatable(account, v.equity, v.mmr);
        }
        int256 s = _positions[account][marketId].size;
        if (s == 0) revert NoPositionInMarket(account, marketId);
        if (size == 0 || size > s.abs()) revert InvalidLiquidationSize(account, marketId, size, s.abs());

        p.price = _priceOf(prices, marketId);
        p.delta = s > 0 ? -int256(size) : int256(size); // |delta| ≤ |s| < 2^127
        int256 realized;
        (p.oi, realized) = _applyFill(account, marketId, m, p.delta, p.price, m.openInterest);
        uint256 notional = size.mulWadUp(p.price);
        p.reward = notional.mulWadDown(m.keeperRewardRatio);
        if (p.reward > m.keeperRewardCap) p.reward = m.keeperRewardCap;
        p.accountDelta = realized - p.reward.toInt256();
        // E₁: the account's equity after realizing and paying K, its remaining positions at P.
        // slither-disable-next-line uninitialized-local
        LiquidationMath.Closing[] memory none; // empty and never allocated: nothing to record
        int256 equityAfter = _valueWith(account, v.margin + p.accountDelta, prices, none).equity;
        if (equityAfter < 0) revert PartialLiquidationBankrupt(account, equityAfter);
        // Rounded down to a whole token unit on purpose, as in `liquidate` (docs/design.md §4).
        uint256 feeRaw = notional.mulWadDown(m.insuranceFeeRatio);
        p.feeTokens = (feeRaw < uint256(equityAfter) ? feeRaw : uint256(equityAfter)).toTokensDown(SCALE);
    }

    /// @dev Charges `loss` to the winners: each market's share (`LiquidationMath.lossShares`) is
    ///      charged to its opposite side through the loss index (`SocializedLoss.charge`). Open
    ///      interest is read before the takeover, so it includes every counterparty and is not 0.
    function _socialize(LiquidationMath.Closing[] memory closing, uint256 loss) internal {
        uint256[] memory shares = LiquidationMath.lossShares(closing, loss);
        for (uint256 i; i < closing.length; ++i) {
            uint256 share = shares[i];
            if (share == 0) continue;
            Market storage m = _markets[closing[i].marketId];
            (uint256 side, uint256 delta) = SocializedLoss.charge(m.lossIndex, closing[i].size, share, m.openInterest);
            emit LossSocialized(closing[i].marketId, side, share, delta);
        }
        unsettledLoss += loss.toInt256(); // the shares sum to exactly `loss`
    }

    /// @dev Moves every closed position of `account` to `liquidator` at its oracle price; returns
    ///      the PnL the liquidator realizes (if it held opposite positions), for the caller to book.
    // slither-disable-next-line reentrancy-no-eth
    function _handOver(address account, address liquidator, LiquidationMath.Closing[] memory closing)
        internal
        returns (int256 liquidatorRealized)
    {
        _settle(liquidator);
        int256 realized;
        for (uint256 i; i < closing.length; ++i) {
            LiquidationMath.Closing memory c = closing[i];
            Market storage m = _markets[c.marketId];
            Position storage p = _positions[account][c.marketId];
            uint256 oi = m.openInterest - (c.size > 0 ? uint256(c.size) : 0);
            netOpenNotional -= p.openNotional;
            p.size = 0;
            p.openNotional = 0;
            emit PositionChanged(account, c.marketId, 0, 0, c.realized);
            (oi, realized) = _applyFill(liquidator, c.marketId, m, c.size, c.price, oi);
            m.openInterest = uint128(oi);
            liquidatorRealized += realized;
        }
        delete _marketLists[account];
    }

    // --- internal: orders ----------------------------------------------------------------------

    /// @dev Moves both positions, charges fees and checks margins for a validated match.
    // slither-disable-next-line reentrancy-no-eth
    function _executeFill(Market storage m, Fill memory f, uint256[] memory prices) internal {
        int256 makerDelta = f.makerIsBuy ? int256(f.size) : -int256(f.size);
        _settle(f.maker);
        _settle(f.taker);
        // Reduce-only exception: a party whose fill only reduces its position needs E ≥ MMR and
        // a buffer E − MMR no lower than before; the buffer is read before anything moves.
        int256 makerBuffer = _bufferIfReducing(f.maker, f.marketId, makerDelta, prices);
        int256 takerBuffer = _bufferIfReducing(f.taker, f.marketId, -makerDelta, prices);

        uint256 oiBefore = m.openInterest;
        (uint256 oi, int256 makerRealized) = _applyFill(f.maker, f.marketId, m, makerDelta, f.price, oiBefore);
        int256 takerRealized;
        (oi, takerRealized) = _applyFill(f.taker, f.marketId, m, -makerDelta, f.price, oi);
        if (oi > oiBefore && oi > m.openInterestCap) revert OpenInterestCapExceeded(f.marketId, oi, m.openInterestCap);
        m.openInterest = uint128(oi); // oi ≤ Σ |size| < 2^128 by the size bound on positions

        (int256 makerMargin, int256 takerMargin) = _bookFill(m, f, makerRealized, takerRealized);
        _checkMargin(f.maker, makerMargin, makerBuffer, prices);
        _checkMargin(f.taker, takerMargin, takerBuffer, prices);
    }

    /// @dev Books a fill into the ledger: both parties' realized PnL and fees (`notional · ratio`,
    ///      rounded up, then up to a whole token unit) in one vault call, which books both fees to
    ///      the fund's credit; emits `Trade`. Returns both margins afterwards.
    function _bookFill(Market storage m, Fill memory f, int256 makerRealized, int256 takerRealized)
        internal
        returns (int256 makerMargin, int256 takerMargin)
    {
        uint256 notional = f.size.mulWadUp(f.price);
        uint256 makerFee = notional.mulWadUp(m.makerFeeRatio).toTokensUp(SCALE);
        uint256 takerFee = notional.mulWadUp(m.takerFeeRatio).toTokensUp(SCALE);
        (makerMargin, takerMargin) =
            VAULT.adjustMargins(f.maker, makerRealized, makerFee, f.taker, takerRealized, takerFee, _claims(makerFee + takerFee));
        emit Trade(
            f.marketId, f.maker, f.taker, f.makerHash, f.takerHash, f.makerIsBuy, f.size, f.price, makerFee, takerFee
        );
    }

    /// @dev Checks that do not depend on signatures or prices (docs/margin-math.md, checks 1–6), for
    ///      `maker` against a taker in `takerMarketId` on side `takerIsBuy` (`fillOrder` passes the
    ///      maker's market and the other side, so checks 2 and 5 hold by construction).
    function _checkFill(
        Order calldata maker,
        uint256 takerMarketId,
        bool takerIsBuy,
        address taker,
        uint256 fillSize
    ) internal view returns (Market storage m, Fill memory f) {
        if (fillSize == 0) revert ZeroFill();
        uint256 marketId = maker.marketId;
        if (takerMarketId != marketId) revert MarketMismatch(marketId, takerMarketId);
        m = _market(marketId);
        if (globalPaused || m.paused) revert TradingPaused(marketId);
        if (maker.isBuy == takerIsBuy) revert SameSide();
        if (maker.account == taker) revert SelfTrade(taker);
        if (fillSize > PositionMath.MAX_VALUE) revert ValueOutOfRange(fillSize);
        (f.marketId, f.maker, f.taker) = (marketId, maker.account, taker);
        (f.makerIsBuy, f.size, f.price) = (maker.isBuy, fillSize, maker.limitPrice);
    }

    /// @dev The taker accepts the maker's price, and the price is within the band around a fresh
    ///      oracle price (checks 8–9).
    function _checkPrice(Market storage m, Fill memory f, bool takerIsBuy, uint256 takerLimit, uint256[] memory prices)
        internal
        view
    {
        uint256 price = f.price;
        if (takerIsBuy ? takerLimit < price : takerLimit > price) revert PriceIncompatible(price, takerLimit);
        if (price > PositionMath.MAX_VALUE) revert ValueOutOfRange(price);
        uint256 oraclePrice = _priceOf(prices, f.marketId);
        uint256 band = oraclePrice.mulWadDown(m.priceBandRatio);
        if (price > oraclePrice + band || price + band < oraclePrice) {
            revert PriceOutsideBand(f.marketId, price, oraclePrice);
        }
    }

    /// @dev Validates `order` for a fill of `fill` and records the fill. Check order: expiry,
    ///      signature, nonce, cancellation, remaining size.
    function _useOrder(Order calldata order, bytes calldata signature, uint256 fill) internal returns (bytes32 h) {
        h = hashOrder(order);
        if (block.timestamp > order.expiry) revert OrderExpired(h, order.expiry);
        // tryRecover rejects malformed and high-s signatures and never yields a zero signer; its
        // third value only details the error, which is reported as InvalidSignature either way.
        // slither-disable-next-line unused-return
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(h, signature);
        if (err != ECDSA.RecoverError.NoError || signer != order.account) revert InvalidSignature(h, order.account);
        uint256 minNonce = minNonceOf[order.account];
        if (order.nonce < minNonce) revert NonceTooLow(h, order.nonce, minNonce);
        if (_cancelled[order.account][h]) revert OrderIsCancelled(h);
        uint256 filled = filledOf[h];
        if (filled + fill > order.size) revert OrderOverfilled(h, filled, fill, order.size);
        filledOf[h] = filled + fill;
    }

    // --- internal: positions -------------------------------------------------------------------

    /// @dev Applies a fill of signed `delta` at `price` to `account`'s position in market `marketId`
    ///      = `m` (`PositionMath.fill`), keeps its market list and loss snapshot, and returns the
    ///      open interest updated from `oi` and the PnL realized (for the caller to book).
    function _applyFill(address account, uint256 marketId, Market storage m, int256 delta, uint256 price, uint256 oi)
        internal
        returns (uint256, int256 realized)
    {
        Position storage p = _positions[account][marketId];
        int256 s = p.size;
        int256 n = p.openNotional;
        int256 newSize;
        int256 newNotional;
        (newSize, newNotional, realized) = PositionMath.fill(s, n, delta, price);
        if (s == 0 || newSize == 0) _trackMarket(account, marketId, s == 0);
        SocializedLoss.join(p, m.lossIndex, s, newSize);
        // Both are within ±(2^127 − 1) (checked by `fill`): the casts are exact.
        p.size = int128(newSize);
        p.openNotional = int128(newNotional);
        netOpenNotional += newNotional - n;
        emit PositionChanged(account, marketId, newSize, newNotional, realized);

        // Open interest is Σ long size: only the long parts of the old and new sizes count.
        uint256 longBefore = s > 0 ? uint256(s) : 0;
        uint256 longAfter = newSize > 0 ? uint256(newSize) : 0;
        return (oi + longAfter - longBefore, realized);
    }

    /// @dev Adds `marketId` to `account`'s market list when a position `opened`, else removes it.
    function _trackMarket(address account, uint256 marketId, bool opened) internal {
        uint256 list = _marketLists[account];
        if (opened && list.length() >= MAX_MARKETS_PER_ACCOUNT) revert TooManyMarkets(account);
        _marketLists[account] = opened ? list.push(marketId) : list.remove(marketId);
    }

    /// @dev Settles `account`'s pending socialized loss into its margin and moves its snapshots.
    function _settle(address account) internal {
        uint256 list = _marketLists[account];
        uint256 total = 0;
        for (uint256 i; i < list.length(); ++i) {
            uint256 marketId = list.at(i);
            total += SocializedLoss.settle(_positions[account][marketId], _markets[marketId].lossIndex);
        }
        if (total != 0) {
            int256 amount = total.toInt256();
            unsettledLoss -= amount;
            VAULT.adjustMargin(account, -amount);
            emit LossSettled(account, total);
        }
    }

    // --- internal: margin ----------------------------------------------------------------------

    /// @dev Values `account` at oracle prices. Reads no oracle when it holds no position.
    function _value(address account, uint256[] memory prices) internal view returns (Valuation memory) {
        // slither-disable-next-line uninitialized-local
        LiquidationMath.Closing[] memory none; // empty and never allocated: nothing to record
        return _valueWith(account, VAULT.marginOf(account), prices, none);
    }

    /// @dev The one valuation loop: `account` with margin `margin` at oracle prices, each position
    ///      valued by `PositionMath.value`. A non-empty `closing` (one slot per position: a
    ///      liquidation, right after `_settle`, so nothing is pending and no loss index is read)
    ///      is filled with every position for the waterfall.
    function _valueWith(
        address account,
        int256 margin,
        uint256[] memory prices,
        LiquidationMath.Closing[] memory closing
    ) internal view returns (Valuation memory v) {
        v.margin = margin;
        v.equity = margin; // plus each unrealized PnL, minus the pending loss at the end
        uint256 list = _marketLists[account];
        for (uint256 i; i < list.length(); ++i) {
            uint256 marketId = list.at(i);
            Market storage m = _markets[marketId];
            Position storage p = _positions[account][marketId];
            uint256 price = _priceOf(prices, marketId);
            int256 size = p.size;
            (int256 u, uint256 notional, uint256 imr, uint256 mmr) =
                PositionMath.value(size, p.openNotional, price, m.imRatio, m.mmRatio);
            v.equity += u;
            v.imr += imr;
            v.mmr += mmr;
            if (closing.length == 0) {
                v.pending += SocializedLoss.pendingOf(p, m.lossIndex);
            } else {
                LiquidationMath.Closing memory c = closing[i];
                (c.marketId, c.size, c.price, c.realized, c.notional) = (marketId, size, price, u, notional);
                (c.keeperRewardRatio, c.insuranceFeeRatio) = (m.keeperRewardRatio, m.insuranceFeeRatio);
                c.keeperRewardCap = m.keeperRewardCap;
            }
        }
        v.equity -= v.pending.toInt256();
    }

    /// @dev The solvency identity's liabilities besides the margins and the fund's credit, for the
    ///      vault's booking of `feeTokens` of fees (`ICollateralVault.adjustMargins`): read only
    ///      when there are fees (without fees the vault ignores it).
    function _claims(uint256 feeTokens) internal view returns (int256) {
        return feeTokens == 0 ? int256(0) : netOpenNotional + unsettledLoss;
    }

    /// @dev A fresh per-call price cache: one slot per listed market, 0 until read.
    function _priceCache() internal view returns (uint256[] memory) {
        return new uint256[](_markets.length);
    }

    /// @dev The oracle price of `marketId`, read at most once per call (the adapter never returns
    ///      0, so 0 means "not read yet"). Reverts exactly as `IOracleAdapter.priceOf` does.
    function _priceOf(uint256[] memory prices, uint256 marketId) internal view returns (uint256 price) {
        price = prices[marketId];
        if (price == 0) {
            price = ORACLE.priceOf(marketId);
            prices[marketId] = price;
        }
    }

    /// @dev If a fill of `delta` only reduces `account`'s position in `marketId` (smaller, not
    ///      crossing zero), its buffer `E − MMR` before the fill; otherwise `NOT_REDUCING`.
    function _bufferIfReducing(address account, uint256 marketId, int256 delta, uint256[] memory prices)
        internal
        view
        returns (int256)
    {
        int256 s = _positions[account][marketId].size;
        if (s == 0 || (s > 0) == (delta > 0) || delta.abs() > s.abs()) return NOT_REDUCING;
        Valuation memory v = _value(account, prices);
        // E − MMR > −2^255 for every reachable account, so it never collides with the marker.
        return v.equity - v.mmr.toInt256();
    }

    /// @dev After a fill: `E ≥ IMR`, or for a reducing party (`bufferBefore != NOT_REDUCING`)
    ///      `E ≥ MMR` and its buffer not lower. `margin` is the account's margin after the fill.
    function _checkMargin(address account, int256 margin, int256 bufferBefore, uint256[] memory prices) internal view {
        // slither-disable-next-line uninitialized-local
        LiquidationMath.Closing[] memory none; // empty and never allocated: nothing to record
        Valuation memory v = _valueWith(account, margin, prices, none);
        if (v.equity >= v.imr.toInt256()) return;
        if (bufferBefore != NOT_REDUCING) {
            int256 buffer = v.equity - v.mmr.toInt256();
            if (buffer >= 0 && buffer >= bufferBefore) return;
        }
        revert InsufficientMargin(account, v.equity, v.imr);
    }

}
