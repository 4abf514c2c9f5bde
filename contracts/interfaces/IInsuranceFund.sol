// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IInsuranceFund
/// @notice ERC-4626 vault over the collateral token that absorbs bad debt before it is socialized
///         (docs/design.md §6). Income: trading fees and liquidation insurance fees, paid in as tokens, so
///         they raise the share price. Exits go through a cooldown so that no staker can see a
///         loss coming and leave ahead of it.
/// @dev Share math is OpenZeppelin's ERC-4626 with a decimals offset of 6 (virtual shares and one
///      virtual asset), which makes the first-depositor inflation/donation attack unprofitable.
///      Parameters are immutable; there is no admin.
interface IInsuranceFund {
    /// @notice A zero address was given for `what`.
    error ZeroAddress(string what);
    /// @notice Only the deployer may wire the fund, and only once.
    error NotDeployer(address caller);
    /// @notice The fund is already wired.
    error AlreadyWired();
    /// @notice Only the protocol (the margin engine) may call `cover`.
    error NotProtocol(address caller);
    /// @notice A withdrawal request for zero shares or more than the owner holds.
    error InvalidWithdrawRequest(uint256 shares, uint256 balance);
    /// @notice `owner` has no pending withdrawal request.
    error NoWithdrawRequest(address owner);
    /// @notice The cooldown ends at `availableAt`.
    error CooldownNotElapsed(uint256 availableAt, uint256 blockTimestamp);
    /// @notice The withdrawal window closed at `deadline`; request again.
    error WithdrawalWindowExpired(uint256 deadline, uint256 blockTimestamp);
    /// @notice More shares than the request covers.
    error ExceedsRequest(uint256 shares, uint256 requestedShares);

    /// @notice The fund was wired to the protocol allowed to draw cover and to the cover recipient.
    event Wired(address indexed protocol, address indexed coverRecipient);
    /// @notice The protocol asked for `requested` token units of cover and received `paid`.
    event CoverPaid(uint256 requested, uint256 paid);
    /// @notice `owner` asked to exit `shares`, then worth `assets`; redeemable from `availableAt`.
    event WithdrawRequested(address indexed owner, uint256 shares, uint256 assets, uint256 availableAt);

    /// @notice A pending exit: shares and their value when requested, and when.
    struct WithdrawRequest {
        uint128 shares;
        uint128 assets;
        uint64 requestedAt;
    }

    /// @notice Seconds between a request and the first moment it can be redeemed.
    function COOLDOWN() external view returns (uint256);

    /// @notice Seconds after the cooldown during which the request can be redeemed.
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

    /// @notice Token units the fund can pay now: `min(max(totalAssets − FLOOR, 0), PER_EVENT_CAP)`.
    function coverable() external view returns (uint256);

    /// @notice Protocol only: pays `min(amountTokens, coverable())` to the cover recipient.
    /// @return paid The token units paid.
    function cover(uint256 amountTokens) external returns (uint256 paid);

    /// @notice Starts the cooldown for `shares` of the caller's shares, recording their current value.
    ///         Replaces any earlier request. The shares keep absorbing losses during the cooldown;
    ///         the payout is `min(value at request, value at exit)`.
    function requestWithdraw(uint256 shares) external;

    /// @notice The pending request of `owner` (zero if none).
    function withdrawRequestOf(address owner) external view returns (WithdrawRequest memory);
}
