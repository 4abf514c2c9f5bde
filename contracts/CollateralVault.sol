// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {ICollateralVault} from "./interfaces/ICollateralVault.sol";
import {IMarginAuthority} from "./interfaces/IMarginAuthority.sol";
import {FixedPointMath} from "./libraries/FixedPointMath.sol";

/// @title CollateralVault
/// @notice Holds the collateral token and every account's WAD margin. See `ICollateralVault`.
contract CollateralVault is ICollateralVault, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using FixedPointMath for uint256;
    using SafeCast for uint256;

    /// @inheritdoc ICollateralVault
    IERC20 public immutable TOKEN;
    /// @inheritdoc ICollateralVault
    uint256 public immutable SCALE;
    /// @notice The address allowed to call `wire` once.
    address public immutable DEPLOYER;
    /// @dev The largest token amount whose WAD value fits int256.
    uint256 internal immutable MAX_TOKENS;

    /// @inheritdoc ICollateralVault
    IMarginAuthority public engine;
    /// @inheritdoc ICollateralVault
    address public insuranceFund;
    /// @inheritdoc ICollateralVault
    int256 public totalMargin;
    /// @inheritdoc ICollateralVault
    uint256 public fundCredit;

    mapping(address account => int256 marginWad) internal _margin;

    /// @param token The collateral token; its decimals must be in 1..18.
    constructor(IERC20 token) {
        if (address(token) == address(0)) revert ZeroAddress("token");
        uint8 d = IERC20Metadata(address(token)).decimals();
        if (d == 0 || d > 18) revert UnsupportedDecimals(d);
        TOKEN = token;
        SCALE = 10 ** (18 - d);
        MAX_TOKENS = uint256(type(int256).max).toTokensDown(10 ** (18 - d));
        DEPLOYER = msg.sender;
    }

    modifier onlyEngine() {
        if (msg.sender != address(engine)) revert NotEngine(msg.sender);
        _;
    }

    /// @inheritdoc ICollateralVault
    function wire(IMarginAuthority engine_, address insuranceFund_) external {
        if (msg.sender != DEPLOYER) revert NotDeployer(msg.sender);
        if (address(engine) != address(0)) revert AlreadyWired();
        if (address(engine_) == address(0)) revert ZeroAddress("engine");
        if (insuranceFund_ == address(0)) revert ZeroAddress("insuranceFund");
        engine = engine_;
        insuranceFund = insuranceFund_;
        emit Wired(address(engine_), insuranceFund_);
    }

    /// @inheritdoc ICollateralVault
    function deposit(uint256 amountTokens) external nonReentrant {
        if (amountTokens == 0) revert ZeroAmount();
        int256 amountWad = _toWad(amountTokens);
        uint256 before = TOKEN.balanceOf(address(this));
        TOKEN.safeTransferFrom(msg.sender, address(this), amountTokens);
        uint256 received = TOKEN.balanceOf(address(this)) - before;
        // Credit exactly what arrived, and only if it is what was asked: a token that skims a fee
        // (or rebases during the transfer) would otherwise be silently mis-credited.
        if (received != amountTokens) revert TransferAmountMismatch(amountTokens, received);
        _margin[msg.sender] += amountWad;
        totalMargin += amountWad;
        emit Deposited(msg.sender, amountTokens, uint256(amountWad));
    }

    /// @inheritdoc ICollateralVault
    function withdraw(uint256 amountTokens) external nonReentrant {
        if (amountTokens == 0) revert ZeroAmount();
        int256 amountWad = _toWad(amountTokens);
        IMarginAuthority engine_ = engine;
        // The engine settles the account's pending loss (writing back through `adjustMargin`)
        // before it reports what is free; unwired, the whole positive margin is free.
        int256 freeWad = address(engine_) == address(0) ? _margin[msg.sender] : engine_.settleAndFreeCollateral(msg.sender);
        if (amountWad > freeWad) revert InsufficientFreeCollateral(msg.sender, uint256(amountWad), freeWad);
        _reserve(amountTokens, 0); // the fund's credit is not the traders' to take
        _margin[msg.sender] -= amountWad;
        totalMargin -= amountWad;
        emit Withdrawn(msg.sender, amountTokens, uint256(amountWad));
        TOKEN.safeTransfer(msg.sender, amountTokens);
    }

    /// @inheritdoc ICollateralVault
    function adjustMargin(address account, int256 deltaWad) external onlyEngine {
        _margin[account] += deltaWad;
        totalMargin += deltaWad;
        emit MarginAdjusted(account, deltaWad);
    }

    /// @inheritdoc ICollateralVault
    function adjustMargins(
        address a,
        int256 aDeltaWad,
        uint256 aFeeTokens,
        address b,
        int256 bDeltaWad,
        uint256 bFeeTokens,
        int256 claimsWad
    ) external onlyEngine returns (int256 aMargin, int256 bMargin) {
        int256 aChange = aDeltaWad - _toWad(aFeeTokens);
        int256 bChange = bDeltaWad - _toWad(bFeeTokens);
        aMargin = _margin[a] + aChange;
        _margin[a] = aMargin;
        bMargin = _margin[b] + bChange;
        _margin[b] = bMargin;
        int256 total = totalMargin + aChange + bChange;
        totalMargin = total;
        if (aDeltaWad != 0) emit MarginAdjusted(a, aDeltaWad);
        if (aFeeTokens != 0) emit PaidToFund(a, aFeeTokens);
        if (bDeltaWad != 0) emit MarginAdjusted(b, bDeltaWad);
        if (bFeeTokens != 0) emit PaidToFund(b, bFeeTokens);
        uint256 feeTokens = aFeeTokens + bFeeTokens;
        // Booked, not transferred: the fund counts its credit in `totalAssets` (docs/design.md §6).
        // The vault's own part must hold the fees. With dust ≥ 0 in the solvency identity,
        // V − credit ≥ (totalMargin − claims) / SCALE after this call, so when the ledger alone
        // proves it (total ≥ claims) the token balance need not be read (docs/margin-math.md).
        if (feeTokens != 0) fundCredit = total >= claimsWad ? fundCredit + feeTokens : _reserve(feeTokens, feeTokens);
    }

    /// @inheritdoc ICollateralVault
    function sweepToFund() external nonReentrant {
        uint256 amountTokens = fundCredit;
        if (amountTokens == 0) revert NothingToSweep();
        fundCredit = 0;
        emit SweptToFund(msg.sender, amountTokens);
        TOKEN.safeTransfer(insuranceFund, amountTokens);
    }

    /// @inheritdoc ICollateralVault
    function coverFromCredit(uint256 amountTokens) external {
        if (msg.sender != insuranceFund) revert NotInsuranceFund(msg.sender);
        uint256 credit = fundCredit;
        if (amountTokens > credit) revert CreditExceeded(amountTokens, credit);
        fundCredit = credit - amountTokens;
        emit CreditCover(amountTokens);
    }

    /// @inheritdoc ICollateralVault
    function marginOf(address account) external view returns (int256) {
        return _margin[account];
    }

    /// @inheritdoc ICollateralVault
    function assetsWad() external view returns (uint256) {
        return TOKEN.balanceOf(address(this)).toWad(SCALE);
    }

    /// @dev Requires the vault's own part of its balance (balance − `fundCredit`) to hold `needed`
    ///      token units, and returns the credit plus `added`. The vault's balance never drops below
    ///      the credit: only `withdraw` and `sweepToFund` move tokens out, and a fee is booked to
    ///      the credit only out of tokens the vault holds.
    function _reserve(uint256 needed, uint256 added) internal view returns (uint256) {
        uint256 credit = fundCredit;
        uint256 available = TOKEN.balanceOf(address(this)) - credit;
        if (needed > available) revert InsufficientVaultTokens(available, needed);
        return credit + added;
    }

    /// @dev Exact token-units → WAD conversion; reverts if the result leaves int256's range.
    function _toWad(uint256 amountTokens) internal view returns (int256) {
        if (amountTokens > MAX_TOKENS) revert AmountTooLarge(amountTokens);
        return amountTokens.toWad(SCALE).toInt256();
    }
}
