// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {MockERC20} from "./MockERC20.sol";

/// @notice Receives a callback from `ReentrantToken` in the middle of a transfer.
interface ITransferHook {
    function onTokenTransfer(address from, address to, uint256 amount) external;
}

/// @title ReentrantToken
/// @notice Calls `onTokenTransfer` on a registered sender or recipient in the middle of every
///         transfer (an ERC-777-style hook), giving it a chance to re-enter the caller.
contract ReentrantToken is MockERC20 {
    mapping(address => bool) public hooked;

    constructor(uint8 decimals_) MockERC20("Reentrant Token", "REE", decimals_) {}

    function setHooked(address account, bool on) external {
        hooked[account] = on;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (hooked[to]) ITransferHook(to).onTokenTransfer(from, to, value);
        else if (hooked[from]) ITransferHook(from).onTokenTransfer(from, to, value);
    }
}
