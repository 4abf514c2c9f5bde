// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC4626} from "@openzeppelin/contracts/interfaces/IERC4626.sol";

import {ICollateralVault} from "../interfaces/ICollateralVault.sol";
import {IInsuranceFund} from "../interfaces/IInsuranceFund.sol";
import {IMarginEngine} from "../interfaces/IMarginEngine.sol";
import {IOracleAdapter} from "../interfaces/IOracleAdapter.sol";
import {IBackstopLens, IMarginEngineWiring} from "./IBackstopLens.sol";

/// @title BackstopLens
/// @notice See `IBackstopLens`: one view call returns every observable of a Backstop suite.
/// @dev Stateless apart from the suite's addresses, read once from the engine at construction.
///      Every figure comes from the suite's own public views; the only derived value is free
///      collateral, computed from the engine's health record with the engine's own definition.
contract BackstopLens is IBackstopLens {
    /// @inheritdoc IBackstopLens
    IMarginEngine public immutable ENGINE;
    /// @notice The engine's collateral vault.
    ICollateralVault public immutable VAULT;
    /// @notice The engine's oracle adapter.
    IOracleAdapter public immutable ORACLE;
    /// @notice The engine's insurance fund, through its ERC-4626 face.
    IERC4626 public immutable FUND;
    /// @notice The collateral token.
    IERC20 public immutable TOKEN;

    /// @inheritdoc IBackstopLens
    uint256 public constant PART_PRICES = 1;
    /// @inheritdoc IBackstopLens
    uint256 public constant PART_ACCOUNT_DETAIL = 2;
    /// @inheritdoc IBackstopLens
    uint256 public constant PART_SYSTEM_DETAIL = 4;
    uint256 internal constant ALL_PARTS = 7;

    uint256 internal constant SYSTEM_WORDS = 15;
    uint256 internal constant MARKET_WORDS = 6;
    uint256 internal constant ACCOUNT_FIXED_WORDS = 14;

    /// @param engine A wired `MarginEngine`; the vault, oracle, fund and token are read from it.
    constructor(IMarginEngine engine) {
        ENGINE = engine;
        IMarginEngineWiring wiring = IMarginEngineWiring(address(engine));
        VAULT = wiring.VAULT();
        ORACLE = wiring.ORACLE();
        FUND = IERC4626(address(wiring.INSURANCE_FUND()));
        TOKEN = VAULT.TOKEN();
    }

    /// @inheritdoc IBackstopLens
    function system() public view returns (SystemView memory) {
        return _system(ALL_PARTS);
    }

    /// @inheritdoc IBackstopLens
    function markets() external view returns (MarketView[] memory out) {
        out = new MarketView[](ENGINE.marketCount());
        for (uint256 i = 0; i < out.length; ++i) {
            out[i] = _market(i, true);
        }
    }

    /// @inheritdoc IBackstopLens
    function accounts(address[] calldata accountList) external view returns (AccountView[] memory) {
        return _accounts(accountList, ENGINE.marketCount(), true);
    }

    /// @inheritdoc IBackstopLens
    /// @dev Written straight into one array sized for the worst case (every account holding every
    ///      market) and trimmed at the end: no per-account view structs, so the cost is the
    ///      suite's own views plus a few operations per word.
    function snapshotWords(address[] calldata accountList, uint256 parts)
        external
        view
        returns (int256[] memory words)
    {
        SystemView memory s = _system(parts);
        uint256 n = s.marketCount;
        words = new int256[](1 + SYSTEM_WORDS + MARKET_WORDS * n + accountList.length * (ACCOUNT_FIXED_WORDS + 3 * n));
        words[0] = _i(parts);
        uint256 w = _writeSystem(words, 1, s);
        bool prices = parts & PART_PRICES != 0;
        for (uint256 i = 0; i < n; ++i) {
            w = _writeMarket(words, w, _market(i, prices));
        }
        bool detail = parts & PART_ACCOUNT_DETAIL != 0;
        (bool batched, IMarginEngine.Health[] memory health) = _healthAll(accountList);
        for (uint256 i = 0; i < accountList.length; ++i) {
            if (batched) {
                _writeHealth(words, w, health[i], true);
            } else {
                (bool priced, IMarginEngine.Health memory h) = _healthOne(accountList[i]);
                _writeHealth(words, w, h, priced);
            }
            w = _writeAccountWords(words, w, accountList[i], n, detail);
        }
        _returnWords(words, w);
    }

    // --- internal: reading ---------------------------------------------------------------------

    function _system(uint256 parts) internal view returns (SystemView memory s) {
        (s.vaultAssets, s.liabilities, s.dust) = ENGINE.solvency();
        s.blockNumber = block.number;
        s.timestamp = block.timestamp;
        s.fundAssets = FUND.totalAssets();
        s.fundSupply = FUND.totalSupply();
        s.marketCount = ENGINE.marketCount();
        if (parts & PART_SYSTEM_DETAIL == 0) return s;
        s.totalMargin = VAULT.totalMargin();
        s.netOpenNotional = ENGINE.netOpenNotional();
        s.unsettledLoss = ENGINE.unsettledLoss();
        s.vaultTokens = TOKEN.balanceOf(address(VAULT));
        s.fundTokens = TOKEN.balanceOf(address(FUND));
        s.fundCredit = VAULT.fundCredit();
        s.coverable = IInsuranceFund(address(FUND)).coverable();
    }

    function _market(uint256 marketId, bool withPrice) internal view returns (MarketView memory v) {
        v.openInterest = ENGINE.openInterestOf(marketId);
        (v.longIndex, v.shortIndex) = ENGINE.lossIndexOf(marketId);
        if (!withPrice) return v;
        v.paused = ENGINE.isPaused(marketId);
        try ORACLE.priceOf(marketId) returns (uint256 price) {
            v.priced = true;
            v.price = price;
        } catch {
            // An unusable feed: `priced` stays false and `price` 0.
        }
    }

    function _accounts(address[] calldata accountList, uint256 marketCount, bool detail)
        internal
        view
        returns (AccountView[] memory out)
    {
        out = new AccountView[](accountList.length);
        (bool batched, IMarginEngine.Health[] memory health) = _healthAll(accountList);
        for (uint256 i = 0; i < accountList.length; ++i) {
            if (batched) _setHealth(out[i], health[i], true);
            _readAccount(out[i], accountList[i], marketCount, batched, detail);
        }
    }

    function _readAccount(AccountView memory v, address account, uint256 marketCount, bool hasHealth, bool detail)
        internal
        view
    {
        v.account = account;
        if (!hasHealth) {
            (bool priced, IMarginEngine.Health memory h) = _healthOne(account);
            _setHealth(v, h, priced);
        }
        v.markets = ENGINE.marketsOf(account);
        v.sizes = new int256[](marketCount);
        v.openNotionals = new int256[](marketCount);
        if (detail) {
            for (uint256 i = 0; i < marketCount; ++i) {
                (v.sizes[i], v.openNotionals[i]) = ENGINE.positionOf(account, i);
            }
            v.request = IInsuranceFund(address(FUND)).redeemRequestOf(account);
            v.walletTokens = TOKEN.balanceOf(account);
            v.minNonce = ENGINE.minNonceOf(account);
        } else {
            for (uint256 i = 0; i < v.markets.length; ++i) {
                uint256 id = v.markets[i];
                (v.sizes[id], v.openNotionals[id]) = ENGINE.positionOf(account, id);
            }
        }
        v.fundShares = FUND.balanceOf(account);
    }

    /// @dev One batched health read for every account. `batched = false` if some account's market
    ///      has no usable price (the batch reverts): each account must then be read on its own.
    function _healthAll(address[] calldata accountList)
        internal
        view
        returns (bool batched, IMarginEngine.Health[] memory health)
    {
        if (accountList.length == 0) return (false, health);
        try ENGINE.healthOf(accountList) returns (IMarginEngine.Health[] memory h) {
            return (true, h);
        } catch {
            // Some market has no usable price.
        }
    }

    /// @dev One account's health read on its own. `priced = false` if a market it holds has no
    ///      usable price; then only `margin` and `pendingLoss` of `h` are set.
    function _healthOne(address account) internal view returns (bool priced, IMarginEngine.Health memory h) {
        address[] memory one = new address[](1);
        one[0] = account;
        try ENGINE.healthOf(one) returns (IMarginEngine.Health[] memory health) {
            return (true, health[0]);
        } catch {
            h.margin = VAULT.marginOf(account);
            h.pendingLoss = ENGINE.pendingLossOf(account);
        }
    }

    /// @dev Copies a health record; unless `priced`, only its margin and pending loss (the
    ///      price-dependent fields stay 0).
    function _setHealth(AccountView memory v, IMarginEngine.Health memory h, bool priced) internal pure {
        v.margin = h.margin;
        v.pendingLoss = h.pendingLoss;
        if (!priced) return;
        v.priced = true;
        v.equity = h.equity;
        v.initialMargin = h.initialMargin;
        v.maintenanceMargin = h.maintenanceMargin;
        v.freeCollateral = _freeCollateral(h);
    }

    /// @dev `F = min(margin − pending, E) − IMR` exactly as `IMarginEngine.freeCollateralOf`
    ///      defines it, from one health record.
    function _freeCollateral(IMarginEngine.Health memory h) internal pure returns (int256) {
        int256 settled = h.margin - _i(h.pendingLoss);
        return (settled < h.equity ? settled : h.equity) - _i(h.initialMargin);
    }

    /// @dev Account words 7 onwards (fund shares, the detail words if asked, market list, sizes
    ///      and open notionals), after the health words `_writeHealth*` put at `w`; returns the
    ///      index past the account.
    function _writeAccountWords(int256[] memory words, uint256 w, address account, uint256 n, bool detail)
        internal
        view
        returns (uint256)
    {
        words[w + 7] = _i(FUND.balanceOf(account));
        if (detail) {
            IInsuranceFund.RedeemRequestData memory r = IInsuranceFund(address(FUND)).redeemRequestOf(account);
            words[w + 8] = _i(r.shares);
            words[w + 9] = _i(r.assets);
            words[w + 10] = _i(r.requestedAt);
            words[w + 11] = _i(TOKEN.balanceOf(account));
            words[w + 12] = _i(ENGINE.minNonceOf(account));
        }
        uint256[] memory held = ENGINE.marketsOf(account);
        words[w + 13] = _i(held.length);
        w += ACCOUNT_FIXED_WORDS;
        for (uint256 j = 0; j < held.length; ++j) {
            words[w + j] = _i(held[j]);
        }
        w += held.length;
        if (detail) {
            for (uint256 id = 0; id < n; ++id) {
                (words[w + id], words[w + n + id]) = ENGINE.positionOf(account, id);
            }
        } else {
            for (uint256 j = 0; j < held.length; ++j) {
                uint256 id = held[j];
                (words[w + id], words[w + n + id]) = ENGINE.positionOf(account, id);
            }
        }
        return w + 2 * n;
    }

    /// @dev Account words 0-6 (`margin, pendingLoss, priced, equity, IMR, MMR, F`) from a health
    ///      record; unless `priced`, only the first two (the price-dependent words stay 0).
    function _writeHealth(int256[] memory words, uint256 w, IMarginEngine.Health memory h, bool priced)
        internal
        pure
    {
        words[w] = h.margin;
        words[w + 1] = _i(h.pendingLoss);
        if (!priced) return;
        words[w + 2] = 1;
        words[w + 3] = h.equity;
        words[w + 4] = _i(h.initialMargin);
        words[w + 5] = _i(h.maintenanceMargin);
        words[w + 6] = _freeCollateral(h);
    }

    // --- internal: flattening ------------------------------------------------------------------

    function _writeSystem(int256[] memory words, uint256 w, SystemView memory s) internal pure returns (uint256) {
        words[w] = _i(s.blockNumber);
        words[w + 1] = _i(s.timestamp);
        words[w + 2] = _i(s.vaultAssets);
        words[w + 3] = s.liabilities;
        words[w + 4] = s.dust;
        words[w + 5] = s.totalMargin;
        words[w + 6] = s.netOpenNotional;
        words[w + 7] = s.unsettledLoss;
        words[w + 8] = _i(s.vaultTokens);
        words[w + 9] = _i(s.fundTokens);
        words[w + 10] = _i(s.fundCredit);
        words[w + 11] = _i(s.fundAssets);
        words[w + 12] = _i(s.fundSupply);
        words[w + 13] = _i(s.coverable);
        words[w + 14] = _i(s.marketCount);
        return w + SYSTEM_WORDS;
    }

    function _writeMarket(int256[] memory words, uint256 w, MarketView memory v) internal pure returns (uint256) {
        words[w] = _i(v.openInterest);
        words[w + 1] = _i(v.longIndex);
        words[w + 2] = _i(v.shortIndex);
        words[w + 3] = _b(v.paused);
        words[w + 4] = _b(v.priced);
        words[w + 5] = _i(v.price);
        return w + MARKET_WORDS;
    }

    /// @dev Ends the call returning the first `length` elements of `words`, ABI-encoded. The
    ///      encoding of an `int256[]` is its memory image (length, elements) behind one offset
    ///      word, so the offset is written over the word just before the array and that memory is
    ///      returned in place, instead of being copied word by word by the ABI encoder. The
    ///      overwritten word belongs to an earlier allocation, which nothing reads again: this
    ///      function never returns to its caller.
    function _returnWords(int256[] memory words, uint256 length) internal pure {
        assembly {
            let start := sub(words, 0x20)
            mstore(start, 0x20)
            mstore(words, length)
            return(start, add(0x40, shl(5, length)))
        }
    }

    /// @dev Reinterprets an unsigned view value as a word. Every value the suite reports is below
    ///      2^255 (sizes and prices below 2^127, money in int256 range), so the cast is exact.
    function _i(uint256 x) internal pure returns (int256) {
        return int256(x);
    }

    function _b(bool x) internal pure returns (int256) {
        return x ? int256(1) : int256(0);
    }
}
