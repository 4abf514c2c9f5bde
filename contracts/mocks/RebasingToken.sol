// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

// Names are fixed by the ERC-20 ABI this mock imitates.
// solhint-disable const-name-snakecase, immutable-vars-naming

/// @title RebasingToken
/// @notice Balances are shares times a global index; every transfer first raises the index by
///         `rebaseBps` (a positive rebase), so what a recipient sees arrive differs from what was
///         sent, as with rebasing tokens whose supply moves during a transfer.
contract RebasingToken {
    string public constant name = "Rebasing Token";
    string public constant symbol = "REB";
    uint8 public immutable decimals;
    uint256 public rebaseBps;
    uint256 public index = 1e18;
    uint256 internal _totalShares;
    mapping(address => uint256) internal _shares;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    constructor(uint8 decimals_, uint256 rebaseBps_) {
        decimals = decimals_;
        rebaseBps = rebaseBps_;
    }

    function totalSupply() external view returns (uint256) {
        return _totalShares * index / 1e18;
    }

    function balanceOf(address account) public view returns (uint256) {
        return _shares[account] * index / 1e18;
    }

    function mint(address to, uint256 amount) external {
        uint256 s = amount * 1e18 / index;
        _shares[to] += s;
        _totalShares += s;
        emit Transfer(address(0), to, amount);
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _transfer(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        allowance[from][msg.sender] -= amount;
        _transfer(from, to, amount);
        return true;
    }

    function _transfer(address from, address to, uint256 amount) internal {
        uint256 s = amount * 1e18 / index;
        _shares[from] -= s;
        _shares[to] += s;
        index += index * rebaseBps / 10_000; // the rebase lands mid-transfer
        emit Transfer(from, to, amount);
    }
}
