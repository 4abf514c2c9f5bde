// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";

import {IERC7540Operator, IERC7540Redeem} from "./IERC7540.sol";

/// @title IInsuranceFund
/// @notice ERC-4626 vault over the collateral token that absorbs bad debt before it is socialized
///         (docs/design.md §6). Income: trading fees and liquidation insurance fees, booked as a
///         credit in the collateral vault (`ICollateralVault.fundCredit`) and swept in as tokens
///         later; `totalAssets` counts the credit, so a fee raises the share price at once and a
///         sweep does not move it. Deposits are synchronous ERC-4626; exits are EIP-7540
///         asynchronous redemptions: `requestRedeem` moves the shares into the fund's custody, and
///         only after a cooldown, within a window, can the controller claim them through `redeem` or
///         `withdraw`, at `min(value at request, value now)` per share. So no staker can see a loss
///         coming and leave ahead of it.
/// @dev Share math is OpenZeppelin's ERC-4626 with a decimals offset of 6 (virtual shares and one
///      virtual asset), which makes the first-depositor inflation/donation attack unprofitable.
///      Every request has id 0: requests are keyed by controller, one open request per controller.
///      Parameters are immutable; there is no admin.
interface IInsuranceFund is IERC7540Redeem, IERC7540Operator, IERC165 {
    /// @notice A zero address was given for `what`.
    error ZeroAddress(string what);
    /// @notice Only the deployer may wire the fund, and only once.
    error NotDeployer(address caller);
    /// @notice The fund is already wired.
    error AlreadyWired();
    /// @notice Only the protocol (the margin engine) may call `cover`.
    error NotProtocol(address caller);
    /// @notice A redeem request for zero shares or more than the owner holds.
    error InvalidRedeemRequest(uint256 shares, uint256 balance);
    /// @notice `controller` already has a request that has not expired (its window closes at `deadline`).
    error RedeemRequestOpen(address controller, uint256 deadline);
    /// @notice `controller` has no redeem request.
    error NoRedeemRequest(address controller);
    /// @notice The cooldown ends at `availableAt`.
    error CooldownNotElapsed(uint256 availableAt, uint256 blockTimestamp);
    /// @notice The claim window closed at `deadline`; cancel or request again to get the shares back.
    error ClaimWindowExpired(uint256 deadline, uint256 blockTimestamp);
    /// @notice `caller` is neither `controller` nor one of its operators.
    error NotControllerOrOperator(address caller, address controller);
    /// @notice Redemptions are asynchronous: `previewRedeem` and `previewWithdraw` (of `amount`)
    ///         revert, as EIP-7540 requires. Read `maxRedeem` / `maxWithdraw` instead.
    error AsyncRedeemNoPreview(uint256 amount);

    /// @notice The fund was wired to the protocol allowed to draw cover and to the cover recipient.
    event Wired(address indexed protocol, address indexed coverRecipient);
    /// @notice The protocol asked for `requested` token units of cover and received `paid`.
    event CoverPaid(uint256 requested, uint256 paid);
    /// @notice `controller`'s request was cancelled, or returned after its window had passed:
    ///         `returnedShares` went back to the controller and `burnedShares` were burnt (the
    ///         part of the cooldown's gain that goes to the other stakers).
    event RedeemRequestCancelled(address indexed controller, uint256 returnedShares, uint256 burnedShares);

    /// @notice A controller's redeem request: escrowed shares, their value when requested, and when.
    /// @param shares Escrowed shares not yet claimed (0: no request).
    /// @param assets Token units those shares were worth at the request (shrinks pro-rata on claims).
    /// @param requestedAt Timestamp of the request.
    struct RedeemRequestData {
        uint128 shares;
        uint128 assets;
        uint64 requestedAt;
    }

    /// @notice Seconds between a request and the first moment it can be claimed.
    function COOLDOWN() external view returns (uint256);

    /// @notice Seconds after the cooldown during which the request can be claimed.
    function WINDOW() external view returns (uint256);

    /// @notice Token units that always stay in the fund (`coverable` excludes them).
    function FLOOR() external view returns (uint256);

    /// @notice Maximum cover per call in token units (0: no cap).
    function PER_EVENT_CAP() external view returns (uint256);

    /// @notice The margin engine (zero until wired).
    function protocol() external view returns (address);

    /// @notice Where cover payments go: the collateral vault (zero until wired).
    function coverRecipient() external view returns (address);

    /// @notice Wires the protocol and the cover recipient. Deployer only, once.
    function wire(address protocol_, address coverRecipient_) external;

    /// @notice Token units the fund can pay now: `min(max(totalAssets − FLOOR, 0), PER_EVENT_CAP)`,
    ///         where `totalAssets` is the fund's token balance plus its credit in the vault.
    function coverable() external view returns (uint256);

    /// @notice Protocol only: pays `min(amountTokens, coverable())` to the cover recipient, out of
    ///         the tokens the fund holds first and the rest out of its credit in the vault
    ///         (`ICollateralVault.coverFromCredit`: the credit shrinks, no token moves).
    /// @return paid The token units paid.
    function cover(uint256 amountTokens) external returns (uint256 paid);

    /// @notice The share token of this vault (ERC-7575): the fund itself.
    function share() external view returns (address);

    /// @notice Cancels `controller`'s request (controller or its operator only), pending,
    ///         claimable or expired alike. Its `n` escrowed shares go back to the controller if
    ///         they are worth at most the request's value `V`; otherwise only the shares worth `V`
    ///         go back and the rest are burnt (docs/margin-math.md, "Insurance fund").
    /// @return returned Shares given back to the controller.
    /// @return burned Shares burnt.
    function cancelRedeemRequest(address controller) external returns (uint256 returned, uint256 burned);

    /// @notice The request of `controller` (zeros if none), expired or not.
    function redeemRequestOf(address controller) external view returns (RedeemRequestData memory);
}
