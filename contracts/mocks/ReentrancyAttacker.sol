// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ICollateralVault} from "../interfaces/ICollateralVault.sol";
import {ITransferHook} from "./ReentrantToken.sol";

/// @title ReentrancyAttacker
/// @notice Deposits into the vault, then withdraws and, from the token's transfer hook, tries to
///         withdraw (or deposit) again before the first call has finished. Records what happened.
contract ReentrancyAttacker is ITransferHook {
    enum Reenter {
        None,
        Withdraw,
        Deposit
    }

    ICollateralVault public immutable VAULT;
    Reenter public mode;
    uint256 public amount;
    uint256 public attempts;
    bool public lastReentrySucceeded;
    bytes public lastRevertData;

    constructor(ICollateralVault vault) {
        VAULT = vault;
    }

    function deposit(uint256 amount_) external {
        IERC20(address(VAULT.TOKEN())).approve(address(VAULT), type(uint256).max);
        VAULT.deposit(amount_);
    }

    function attackWithdraw(uint256 amount_) external {
        mode = Reenter.Withdraw;
        amount = amount_;
        VAULT.withdraw(amount_);
        mode = Reenter.None;
    }

    function attackDeposit(uint256 amount_) external {
        IERC20(address(VAULT.TOKEN())).approve(address(VAULT), type(uint256).max);
        mode = Reenter.Deposit;
        amount = amount_;
        VAULT.deposit(amount_);
        mode = Reenter.None;
    }

    function onTokenTransfer(address, address, uint256) external {
        Reenter m = mode;
        if (m == Reenter.None) return;
        mode = Reenter.None; // one re-entry attempt per attack
        ++attempts;
        // A low-level call, so the attack can record the raw revert data.
        // solhint-disable-next-line avoid-low-level-calls
        (bool ok, bytes memory data) = address(VAULT).call(
            m == Reenter.Withdraw
                ? abi.encodeCall(ICollateralVault.withdraw, (amount))
                : abi.encodeCall(ICollateralVault.deposit, (amount))
        );
        lastReentrySucceeded = ok;
        lastRevertData = data;
    }
}
