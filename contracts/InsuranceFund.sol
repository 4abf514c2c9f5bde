// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IInsuranceFund} from "./interfaces/IInsuranceFund.sol";

/// @title InsuranceFund
/// @notice See `IInsuranceFund`. Deposits (staking) are plain ERC-4626; `withdraw` and `redeem`
///         need a matured request and pay at most what the shares were worth when requested.
contract InsuranceFund is IInsuranceFund, ERC4626 {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    /// @dev 10^6 virtual shares: an attacker must donate about a million times what it hopes to steal.
    uint8 internal constant DECIMALS_OFFSET = 6;

    /// @inheritdoc IInsuranceFund
    uint256 public immutable COOLDOWN;
    /// @inheritdoc IInsuranceFund
    uint256 public immutable WINDOW;
    /// @inheritdoc IInsuranceFund
    uint256 public immutable FLOOR;
    /// @inheritdoc IInsuranceFund
    uint256 public immutable PER_EVENT_CAP;
    /// @notice The address allowed to call `wire` once.
    address public immutable DEPLOYER;

    /// @inheritdoc IInsuranceFund
    address public protocol;
    /// @inheritdoc IInsuranceFund
    address public coverRecipient;

    mapping(address owner => WithdrawRequest) internal _requests;

    /// @param asset_ The collateral token.
    /// @param cooldown Seconds from request to the first possible exit (7 days is the default).
    /// @param window Seconds an exit stays possible after the cooldown (2 days is the default).
    /// @param floor Token units never paid out as cover.
    /// @param perEventCap Maximum cover per call in token units (0: none).
    constructor(IERC20 asset_, uint256 cooldown, uint256 window, uint256 floor, uint256 perEventCap)
        ERC20("Backstop Insurance Share", "bINS")
        ERC4626(asset_)
    {
        COOLDOWN = cooldown;
        WINDOW = window;
        FLOOR = floor;
        PER_EVENT_CAP = perEventCap;
        DEPLOYER = msg.sender;
    }

    /// @inheritdoc IInsuranceFund
    function wire(address protocol_, address coverRecipient_) external {
        if (msg.sender != DEPLOYER) revert NotDeployer(msg.sender);
        if (protocol != address(0)) revert AlreadyWired();
        if (protocol_ == address(0)) revert ZeroAddress("protocol");
        if (coverRecipient_ == address(0)) revert ZeroAddress("coverRecipient");
        protocol = protocol_;
        coverRecipient = coverRecipient_;
        emit Wired(protocol_, coverRecipient_);
    }

    /// @inheritdoc IInsuranceFund
    function coverable() public view returns (uint256 amount) {
        uint256 assets = totalAssets();
        amount = assets > FLOOR ? assets - FLOOR : 0;
        if (PER_EVENT_CAP != 0 && amount > PER_EVENT_CAP) amount = PER_EVENT_CAP;
    }

    /// @inheritdoc IInsuranceFund
    function cover(uint256 amountTokens) external returns (uint256 paid) {
        if (msg.sender != protocol) revert NotProtocol(msg.sender);
        paid = Math.min(amountTokens, coverable());
        emit CoverPaid(amountTokens, paid);
        if (paid != 0) IERC20(asset()).safeTransfer(coverRecipient, paid);
    }

    /// @inheritdoc IInsuranceFund
    function requestWithdraw(uint256 shares) external {
        uint256 balance = balanceOf(msg.sender);
        if (shares == 0 || shares > balance) revert InvalidWithdrawRequest(shares, balance);
        uint256 assets = convertToAssets(shares);
        _requests[msg.sender] =
            WithdrawRequest({shares: shares.toUint128(), assets: assets.toUint128(), requestedAt: uint64(block.timestamp)});
        emit WithdrawRequested(msg.sender, shares, assets, block.timestamp + COOLDOWN);
    }

    /// @inheritdoc IInsuranceFund
    function withdrawRequestOf(address owner) external view returns (WithdrawRequest memory) {
        return _requests[owner];
    }

    /// @notice Redeems `shares` of a matured request; pays `min(value now, value at request)`.
    function redeem(uint256 shares, address receiver, address owner) public override returns (uint256 assets) {
        WithdrawRequest memory r = _maturedRequest(owner);
        if (shares > r.shares) revert ExceedsRequest(shares, r.shares);
        uint256 owed = Math.mulDiv(r.assets, shares, r.shares);
        assets = Math.min(previewRedeem(shares), owed);
        _consume(owner, r, shares, owed);
        _withdraw(msg.sender, receiver, owner, assets, shares);
    }

    /// @notice Withdraws exactly `assets` from a matured request, burning enough shares that both
    ///         their value now and their value at request cover `assets`.
    function withdraw(uint256 assets, address receiver, address owner) public override returns (uint256 shares) {
        WithdrawRequest memory r = _maturedRequest(owner);
        // slither-disable-next-line incorrect-equality
        if (r.assets == 0) revert ExceedsRequest(type(uint256).max, r.shares);
        shares = Math.max(previewWithdraw(assets), Math.mulDiv(assets, r.shares, r.assets, Math.Rounding.Ceil));
        if (shares > r.shares) revert ExceedsRequest(shares, r.shares);
        _consume(owner, r, shares, Math.mulDiv(r.assets, shares, r.shares));
        _withdraw(msg.sender, receiver, owner, assets, shares);
    }

    /// @notice Shares `owner` can redeem now: its matured request's shares (0 outside the window).
    function maxRedeem(address owner) public view override returns (uint256) {
        WithdrawRequest memory r = _requests[owner];
        if (!_inWindow(r)) return 0;
        return Math.min(r.shares, balanceOf(owner));
    }

    /// @notice Assets `owner` can withdraw now under the request rules.
    function maxWithdraw(address owner) public view override returns (uint256) {
        uint256 shares = maxRedeem(owner);
        // slither-disable-next-line incorrect-equality
        if (shares == 0) return 0;
        WithdrawRequest memory r = _requests[owner];
        return Math.min(previewRedeem(shares), Math.mulDiv(r.assets, shares, r.shares));
    }

    function _decimalsOffset() internal pure override returns (uint8) {
        return DECIMALS_OFFSET;
    }

    /// @dev The request of `owner`, reverting unless it exists and is inside its window.
    function _maturedRequest(address owner) internal view returns (WithdrawRequest memory r) {
        r = _requests[owner];
        // A request record, not a balance: nobody can move it by sending tokens or shares.
        // slither-disable-next-line incorrect-equality
        if (r.shares == 0) revert NoWithdrawRequest(owner);
        uint256 availableAt = uint256(r.requestedAt) + COOLDOWN;
        if (block.timestamp < availableAt) revert CooldownNotElapsed(availableAt, block.timestamp);
        if (block.timestamp > availableAt + WINDOW) revert WithdrawalWindowExpired(availableAt + WINDOW, block.timestamp);
    }

    function _inWindow(WithdrawRequest memory r) internal view returns (bool) {
        uint256 availableAt = uint256(r.requestedAt) + COOLDOWN;
        return r.shares != 0 && block.timestamp >= availableAt && block.timestamp <= availableAt + WINDOW;
    }

    /// @dev Shrinks the request by `shares` and the request value `owed` they carried.
    function _consume(address owner, WithdrawRequest memory r, uint256 shares, uint256 owed) internal {
        // slither-disable-next-line incorrect-equality
        if (shares == r.shares) {
            delete _requests[owner];
        } else {
            _requests[owner].shares = uint128(r.shares - shares);
            _requests[owner].assets = uint128(r.assets - owed);
        }
    }
}
