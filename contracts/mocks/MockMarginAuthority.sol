// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ICollateralVault} from "../interfaces/ICollateralVault.sol";
import {IMarginAuthority} from "../interfaces/IMarginAuthority.sol";

/// @title MockMarginAuthority
/// @notice Stands in for the margin engine in vault unit tests: reports a settable free collateral,
///         optionally charges a pending loss on settlement, and forwards engine-only vault calls.
contract MockMarginAuthority is IMarginAuthority {
    ICollateralVault public vault;
    mapping(address => int256) public freeOf;
    mapping(address => int256) public pendingLossOf;

    function setVault(ICollateralVault vault_) external {
        vault = vault_;
    }

    function setFree(address account, int256 freeWad) external {
        freeOf[account] = freeWad;
    }

    function setPendingLoss(address account, int256 lossWad) external {
        pendingLossOf[account] = lossWad;
    }

    function settleAndFreeCollateral(address account) external returns (int256) {
        int256 loss = pendingLossOf[account];
        if (loss != 0) {
            pendingLossOf[account] = 0;
            vault.adjustMargin(account, -loss);
        }
        return freeOf[account];
    }

    function adjustMargin(address account, int256 deltaWad) external {
        vault.adjustMargin(account, deltaWad);
    }

    function adjustMargins(
        address a,
        int256 aDeltaWad,
        uint256 aFeeTokens,
        address b,
        int256 bDeltaWad,
        uint256 bFeeTokens
    ) external returns (int256, int256) {
        // A stand-in engine holds no positions and socializes nothing: the rest of the ledger is 0.
        return vault.adjustMargins(a, aDeltaWad, aFeeTokens, b, bDeltaWad, bFeeTokens, 0);
    }

    /// @notice `adjustMargins` with an explicit `claimsWad` (the vault's fast-path bound).
    function adjustMarginsWithClaims(
        address a,
        int256 aDeltaWad,
        uint256 aFeeTokens,
        address b,
        int256 bDeltaWad,
        uint256 bFeeTokens,
        int256 claimsWad
    ) external returns (int256, int256) {
        return vault.adjustMargins(a, aDeltaWad, aFeeTokens, b, bDeltaWad, bFeeTokens, claimsWad);
    }
}
