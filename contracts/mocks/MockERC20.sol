// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title MockERC20
/// @notice Plain mintable ERC-20 with configurable decimals (collateral in tests and local demos).
contract MockERC20 is ERC20 {
    uint8 internal immutable DECIMALS;

    constructor(string memory name_, string memory symbol_, uint8 decimals_) ERC20(name_, symbol_) {
        DECIMALS = decimals_;
    }

    function decimals() public view virtual override returns (uint8) {
        return DECIMALS;
    }

    /// @notice Anyone may mint: test-only token.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
