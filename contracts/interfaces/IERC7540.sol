// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IERC7540Operator
/// @notice EIP-7540 operators: an operator may request, claim and cancel on behalf of a controller.
///         ERC-165 interface id 0xe3bc4e65.
interface IERC7540Operator {
    /// @notice `controller` approved (or revoked) `operator`.
    event OperatorSet(address indexed controller, address indexed operator, bool approved);

    /// @notice Grants or revokes `operator` the right to manage the caller's requests.
    /// @return Always true.
    function setOperator(address operator, bool approved) external returns (bool);

    /// @notice Whether `operator` may manage `controller`'s requests.
    function isOperator(address controller, address operator) external view returns (bool status);
}

/// @title IERC7540Redeem
/// @notice EIP-7540 asynchronous redemption: shares are requested, then claimed through the
///         ERC-4626 `redeem`/`withdraw` whose third argument is the controller.
///         ERC-165 interface id 0x620ee8e4.
interface IERC7540Redeem {
    /// @notice `sender` moved `shares` of `owner` into a request managed by `controller`.
    event RedeemRequest(
        address indexed controller, address indexed owner, uint256 indexed requestId, address sender, uint256 shares
    );

    /// @notice Takes `shares` from `owner` into the vault's custody and opens a request for `controller`.
    /// @return requestId The request's id (0 when requests are keyed by controller alone).
    function requestRedeem(uint256 shares, address controller, address owner) external returns (uint256 requestId);

    /// @notice Shares of the request not yet claimable.
    function pendingRedeemRequest(uint256 requestId, address controller) external view returns (uint256 shares);

    /// @notice Shares of the request claimable now.
    function claimableRedeemRequest(uint256 requestId, address controller) external view returns (uint256 shares);
}
