// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

// Names are fixed by the ERC-20 / Chainlink ABI this mock imitates.
// solhint-disable const-name-snakecase, immutable-vars-naming

/// @title ReturnsFalseToken
/// @notice An old-style ERC-20 that returns `false` instead of reverting when a transfer cannot be
///         made (insufficient balance or allowance), or always while `failing` is set.
contract ReturnsFalseToken {
    string public constant name = "Returns False";
    string public constant symbol = "RFT";
    uint8 public immutable decimals;
    uint256 public totalSupply;
    bool public failing;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    constructor(uint8 decimals_) {
        decimals = decimals_;
    }

    function setFailing(bool failing_) external {
        failing = failing_;
    }

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
        totalSupply += amount;
        emit Transfer(address(0), to, amount);
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        return _transfer(msg.sender, to, amount);
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        if (failing || allowance[from][msg.sender] < amount) return false;
        if (!_transfer(from, to, amount)) return false;
        allowance[from][msg.sender] -= amount;
        return true;
    }

    function _transfer(address from, address to, uint256 amount) internal returns (bool) {
        if (failing || balanceOf[from] < amount) return false;
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
        return true;
    }
}
