// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {MockERC20} from "./MockERC20.sol";

/// @title FeeOnTransferToken
/// @notice Burns `feeBps` of every transfer, so the recipient gets less than was sent.
contract FeeOnTransferToken is MockERC20 {
    uint256 public feeBps;

    constructor(uint8 decimals_, uint256 feeBps_) MockERC20("Fee Token", "FEE", decimals_) {
        feeBps = feeBps_;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0)) return super._update(from, to, value);
        uint256 fee = value * feeBps / 10_000;
        super._update(from, to, value - fee);
        if (fee > 0) super._update(from, address(0), fee);
    }
}
