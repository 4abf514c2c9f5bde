// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {ICollateralVault} from "./interfaces/ICollateralVault.sol";
import {IERC7540Operator, IERC7540Redeem} from "./interfaces/IERC7540.sol";
import {IInsuranceFund} from "./interfaces/IInsuranceFund.sol";

/// @title InsuranceFund
/// @notice See `IInsuranceFund`. Deposits (staking) are plain ERC-4626; exits are EIP-7540
///         asynchronous redemptions: escrow at request, a cooldown, then a claim window paying at
///         most what the shares were worth when requested.
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

    /// @inheritdoc IERC7540Operator
    mapping(address controller => mapping(address operator => bool)) public isOperator;

    mapping(address controller => RedeemRequestData) internal _requests;

    /// @param asset_ The collateral token.
    /// @param cooldown Seconds from request to the first possible claim (7 days is the default).
    /// @param window Seconds a claim stays possible after the cooldown (2 days is the default).
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

    /// @notice The fund's assets: the tokens it holds plus its credit in the vault (fees booked
    ///         there and not yet swept, `ICollateralVault.fundCredit`). A sweep moves value from
    ///         the second term to the first, so it never moves the share price.
    function totalAssets() public view override returns (uint256) {
        return IERC20(asset()).balanceOf(address(this)) + _credit();
    }

    /// @inheritdoc IInsuranceFund
    function coverable() public view returns (uint256) {
        return _coverable(totalAssets());
    }

    /// @inheritdoc IInsuranceFund
    /// @dev Tokens first (one transfer, as before fees were booked as a credit); only what they
    ///      cannot pay comes out of the credit, which is in the vault already: no token moves.
    ///      When the tokens above the floor cover the whole request, `min(amountTokens,
    ///      coverable())` does not depend on the credit, so it is not read.
    function cover(uint256 amountTokens) external returns (uint256 paid) {
        if (msg.sender != protocol) revert NotProtocol(msg.sender);
        uint256 held = IERC20(asset()).balanceOf(address(this));
        uint256 assets = held > FLOOR && held - FLOOR >= amountTokens ? held : held + _credit();
        paid = Math.min(amountTokens, _coverable(assets));
        emit CoverPaid(amountTokens, paid);
        uint256 fromTokens = Math.min(paid, held);
        if (fromTokens != 0) IERC20(asset()).safeTransfer(coverRecipient, fromTokens);
        if (paid > fromTokens) ICollateralVault(coverRecipient).coverFromCredit(paid - fromTokens);
    }

    // --- EIP-7540 -----------------------------------------------------------------------------------

    /// @inheritdoc IERC7540Operator
    function setOperator(address operator, bool approved) external returns (bool) {
        isOperator[msg.sender][operator] = approved;
        emit OperatorSet(msg.sender, operator, approved);
        return true;
    }

    /// @inheritdoc IERC7540Redeem
    /// @dev The caller is `owner`, an operator of `owner`, or spends `owner`'s share allowance. A
    ///      controller's expired request is first returned (cancel rule); a live one reverts
    ///      `RedeemRequestOpen`. Records `(shares, convertToAssets(shares), now)` and escrows the shares.
    function requestRedeem(uint256 shares, address controller, address owner) external returns (uint256 requestId) {
        if (controller == address(0)) revert ZeroAddress("controller");
        if (msg.sender != owner && !isOperator[owner][msg.sender]) _spendAllowance(owner, msg.sender, shares);
        RedeemRequestData memory open = _requests[controller];
        if (open.shares != 0) {
            uint256 deadline = _deadline(open);
            if (block.timestamp <= deadline) revert RedeemRequestOpen(controller, deadline);
            _giveBack(controller, open);
        }
        uint256 balance = balanceOf(owner);
        if (shares == 0 || shares > balance) revert InvalidRedeemRequest(shares, balance);
        _requests[controller] = RedeemRequestData({
            shares: shares.toUint128(),
            assets: _convertToAssets(shares, Math.Rounding.Floor).toUint128(),
            requestedAt: uint64(block.timestamp)
        });
        _transfer(owner, address(this), shares);
        emit RedeemRequest(controller, owner, 0, msg.sender, shares);
        return 0;
    }

    /// @inheritdoc IInsuranceFund
    function cancelRedeemRequest(address controller) external returns (uint256 returned, uint256 burned) {
        _checkController(controller);
        RedeemRequestData memory r = _requests[controller];
        // A request record, not a balance: nobody can create or move it by sending tokens or shares.
        // slither-disable-next-line incorrect-equality
        if (r.shares == 0) revert NoRedeemRequest(controller);
        return _giveBack(controller, r);
    }

    /// @inheritdoc IERC7540Redeem
    function pendingRedeemRequest(uint256 requestId, address controller) external view returns (uint256 shares) {
        RedeemRequestData memory r = _requests[controller];
        if (requestId == 0 && block.timestamp < uint256(r.requestedAt) + COOLDOWN) shares = r.shares;
    }

    /// @inheritdoc IERC7540Redeem
    function claimableRedeemRequest(uint256 requestId, address controller) external view returns (uint256 shares) {
        if (requestId == 0) shares = maxRedeem(controller);
    }

    /// @inheritdoc IInsuranceFund
    function redeemRequestOf(address controller) external view returns (RedeemRequestData memory) {
        return _requests[controller];
    }

    /// @inheritdoc IInsuranceFund
    function share() external view returns (address) {
        return address(this);
    }

    /// @inheritdoc IERC165
    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == type(IERC7540Redeem).interfaceId || interfaceId == type(IERC7540Operator).interfaceId
            || interfaceId == type(IERC165).interfaceId;
    }

    // --- claims (ERC-4626 with the controller as third argument) ------------------------------------

    /// @notice Claims `shares` of `controller`'s request inside its window; pays
    ///         `min(value now, value at request)` of them to `receiver` and burns them.
    function redeem(uint256 shares, address receiver, address controller) public override returns (uint256 assets) {
        RedeemRequestData memory r = _claimable(controller);
        if (shares > r.shares) revert ERC4626ExceededMaxRedeem(controller, shares, r.shares);
        uint256 owed = Math.mulDiv(r.assets, shares, r.shares);
        assets = Math.min(_convertToAssets(shares, Math.Rounding.Floor), owed);
        _claim(receiver, controller, r, assets, shares, owed);
    }

    /// @notice Claims exactly `assets` from `controller`'s request inside its window, burning enough
    ///         escrowed shares that both their value now and their value at request cover `assets`.
    function withdraw(uint256 assets, address receiver, address controller) public override returns (uint256 shares) {
        RedeemRequestData memory r = _claimable(controller);
        uint256 most = _payable(r);
        if (assets > most) revert ERC4626ExceededMaxWithdraw(controller, assets, most);
        shares = _convertToShares(assets, Math.Rounding.Ceil);
        // assets ≤ most ≤ r.assets, so r.assets > 0 whenever assets > 0.
        if (assets != 0) shares = Math.max(shares, Math.mulDiv(assets, r.shares, r.assets, Math.Rounding.Ceil));
        _claim(receiver, controller, r, assets, shares, Math.mulDiv(r.assets, shares, r.shares));
    }

    /// @notice Shares a claim can burn now: the request's shares inside its window, else 0.
    function maxRedeem(address controller) public view override returns (uint256) {
        RedeemRequestData memory r = _requests[controller];
        return _inWindow(r) ? r.shares : 0;
    }

    /// @notice Assets a claim can pay now: `min(convertToAssets(request.shares), request.assets)`
    ///         inside the window, else 0. Exactly what `redeem(maxRedeem(controller))` pays.
    function maxWithdraw(address controller) public view override returns (uint256) {
        RedeemRequestData memory r = _requests[controller];
        return _inWindow(r) ? _payable(r) : 0;
    }

    /// @notice Reverts `AsyncRedeemNoPreview`: redemptions are asynchronous (EIP-7540).
    function previewRedeem(uint256 shares) public pure override returns (uint256) {
        revert AsyncRedeemNoPreview(shares);
    }

    /// @notice Reverts `AsyncRedeemNoPreview`: redemptions are asynchronous (EIP-7540).
    function previewWithdraw(uint256 assets) public pure override returns (uint256) {
        revert AsyncRedeemNoPreview(assets);
    }

    // --- internals ------------------------------------------------------------------------------

    function _decimalsOffset() internal pure override returns (uint8) {
        return DECIMALS_OFFSET;
    }

    /// @dev The fund's credit in the vault (its cover recipient); 0 before wiring.
    function _credit() internal view returns (uint256) {
        address vault = coverRecipient;
        return vault == address(0) ? 0 : ICollateralVault(vault).fundCredit();
    }

    /// @dev `min(max(assets − FLOOR, 0), PER_EVENT_CAP or ∞)`.
    function _coverable(uint256 assets) internal view returns (uint256 amount) {
        amount = assets > FLOOR ? assets - FLOOR : 0;
        if (PER_EVENT_CAP != 0 && amount > PER_EVENT_CAP) amount = PER_EVENT_CAP;
    }

    function _checkController(address controller) internal view {
        if (msg.sender != controller && !isOperator[controller][msg.sender]) {
            revert NotControllerOrOperator(msg.sender, controller);
        }
    }

    function _deadline(RedeemRequestData memory r) internal view returns (uint256) {
        return uint256(r.requestedAt) + COOLDOWN + WINDOW;
    }

    function _inWindow(RedeemRequestData memory r) internal view returns (bool) {
        uint256 availableAt = uint256(r.requestedAt) + COOLDOWN;
        return r.shares != 0 && block.timestamp >= availableAt && block.timestamp <= availableAt + WINDOW;
    }

    /// @dev `min(convertToAssets(r.shares), r.assets)`: what the whole request pays now.
    function _payable(RedeemRequestData memory r) internal view returns (uint256) {
        return Math.min(_convertToAssets(r.shares, Math.Rounding.Floor), r.assets);
    }

    /// @dev The request of `controller`, reverting unless the caller may claim it and it is inside its window.
    function _claimable(address controller) internal view returns (RedeemRequestData memory r) {
        _checkController(controller);
        r = _requests[controller];
        // slither-disable-next-line incorrect-equality
        if (r.shares == 0) revert NoRedeemRequest(controller);
        uint256 availableAt = uint256(r.requestedAt) + COOLDOWN;
        if (block.timestamp < availableAt) revert CooldownNotElapsed(availableAt, block.timestamp);
        if (block.timestamp > availableAt + WINDOW) revert ClaimWindowExpired(availableAt + WINDOW, block.timestamp);
    }

    /// @dev Shrinks the request by `shares` and the request value `owed` they carried, burns the
    ///      shares from custody and pays `assets` to `receiver`.
    function _claim(
        address receiver,
        address controller,
        RedeemRequestData memory r,
        uint256 assets,
        uint256 shares,
        uint256 owed
    ) internal {
        // slither-disable-next-line incorrect-equality
        if (shares == r.shares) {
            delete _requests[controller];
        } else {
            _requests[controller].shares = uint128(r.shares - shares);
            _requests[controller].assets = uint128(r.assets - owed);
        }
        _burn(address(this), shares);
        IERC20 token = IERC20(asset());
        // `assets` ≤ totalAssets = held + credit: when the tokens held fall short, the credit
        // makes up the rest, so whatever a claim could pay before the fees stayed in the vault it
        // still pays.
        if (token.balanceOf(address(this)) < assets) ICollateralVault(coverRecipient).sweepToFund();
        token.safeTransfer(receiver, assets);
        emit Withdraw(msg.sender, receiver, controller, assets, shares);
    }

    /// @dev The cancel rule: with `S' = totalSupply + 10^6` and `A' = totalAssets + 1` (OpenZeppelin's
    ///      virtual share and asset), the `n` escrowed shares are worth `n·A'/S'`. If that is at most
    ///      `V`, all `n` go back; otherwise `r = ⌊V·(S' − n) / (A' − V)⌋` go back and `n − r` are
    ///      burnt, so the returned shares are worth `r·A'/(S' − n + r) ≤ V` (docs/margin-math.md).
    function _giveBack(address controller, RedeemRequestData memory req)
        internal
        returns (uint256 returned, uint256 burned)
    {
        delete _requests[controller];
        uint256 n = req.shares;
        uint256 v = req.assets;
        uint256 s = totalSupply() + 10 ** DECIMALS_OFFSET;
        uint256 a = totalAssets() + 1;
        // n·A' > V·S' ≥ V·n implies A' > V, and S' > n because the escrow is part of the supply.
        returned = n * a <= v * s ? n : Math.mulDiv(v, s - n, a - v);
        burned = n - returned;
        if (burned != 0) _burn(address(this), burned);
        if (returned != 0) _transfer(address(this), controller, returned);
        emit RedeemRequestCancelled(controller, returned, burned);
    }
}
