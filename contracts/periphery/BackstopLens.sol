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

    uint256 internal constant SYSTEM_WORDS = 14;
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
    function snapshotWords(address[] calldata accountList, uint256 parts)
        external
        view
        returns (int256[] memory words)
    {
        SystemView memory s = _system(parts);
        uint256 n = s.marketCount;
        bool detail = parts & PART_ACCOUNT_DETAIL != 0;
        AccountView[] memory accs = _accounts(accountList, n, detail);
        uint256 total = 1 + SYSTEM_WORDS + MARKET_WORDS * n;
        for (uint256 i = 0; i < accs.length; ++i) {
            total += ACCOUNT_FIXED_WORDS + accs[i].markets.length + 2 * n;
        }
        words = new int256[](total);
        words[0] = _i(parts);
        uint256 w = _writeSystem(words, 1, s);
        bool prices = parts & PART_PRICES != 0;
        for (uint256 i = 0; i < n; ++i) {
            w = _writeMarket(words, w, _market(i, prices));
        }
        for (uint256 i = 0; i < accs.length; ++i) {
            w = _writeAccount(words, w, accs[i]);
        }
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
        if (accountList.length == 0) return out;
        // One batched health read for everyone; if some account's market has no usable price the
        // batch reverts, and each account is then read on its own.
        bool batched = false;
        try ENGINE.healthOf(accountList) returns (IMarginEngine.Health[] memory health) {
            batched = true;
            for (uint256 i = 0; i < accountList.length; ++i) {
                _setHealth(out[i], health[i]);
            }
        } catch {
            // Some market has no usable price: fall back to one read per account below.
        }
        for (uint256 i = 0; i < accountList.length; ++i) {
            _readAccount(out[i], accountList[i], marketCount, batched, detail);
        }
    }

    function _readAccount(AccountView memory v, address account, uint256 marketCount, bool hasHealth, bool detail)
        internal
        view
    {
        v.account = account;
        if (!hasHealth) {
            address[] memory one = new address[](1);
            one[0] = account;
            try ENGINE.healthOf(one) returns (IMarginEngine.Health[] memory health) {
                _setHealth(v, health[0]);
            } catch {
                // A market of the account has no usable price: the price-dependent fields stay 0.
                v.margin = VAULT.marginOf(account);
                v.pendingLoss = ENGINE.pendingLossOf(account);
            }
        }
        v.markets = ENGINE.marketsOf(account);
        v.sizes = new int256[](marketCount);
        v.openNotionals = new int256[](marketCount);
        if (detail) {
            for (uint256 i = 0; i < marketCount; ++i) {
                (v.sizes[i], v.openNotionals[i]) = ENGINE.positionOf(account, i);
            }
            v.request = IInsuranceFund(address(FUND)).withdrawRequestOf(account);
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

    /// @dev Copies a priced health record; `F = min(margin − pending, E) − IMR` exactly as
    ///      `IMarginEngine.freeCollateralOf` defines it, from the same record.
    function _setHealth(AccountView memory v, IMarginEngine.Health memory h) internal pure {
        v.priced = true;
        v.margin = h.margin;
        v.pendingLoss = h.pendingLoss;
        v.equity = h.equity;
        v.initialMargin = h.initialMargin;
        v.maintenanceMargin = h.maintenanceMargin;
        int256 settled = h.margin - _i(h.pendingLoss);
        v.freeCollateral = (settled < h.equity ? settled : h.equity) - _i(h.initialMargin);
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
        words[w + 10] = _i(s.fundAssets);
        words[w + 11] = _i(s.fundSupply);
        words[w + 12] = _i(s.coverable);
        words[w + 13] = _i(s.marketCount);
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

    function _writeAccount(int256[] memory words, uint256 w, AccountView memory v) internal pure returns (uint256) {
        words[w] = v.margin;
        words[w + 1] = _i(v.pendingLoss);
        words[w + 2] = _b(v.priced);
        words[w + 3] = v.equity;
        words[w + 4] = _i(v.initialMargin);
        words[w + 5] = _i(v.maintenanceMargin);
        words[w + 6] = v.freeCollateral;
        words[w + 7] = _i(v.fundShares);
        words[w + 8] = _i(v.request.shares);
        words[w + 9] = _i(v.request.assets);
        words[w + 10] = _i(v.request.requestedAt);
        words[w + 11] = _i(v.walletTokens);
        words[w + 12] = _i(v.minNonce);
        words[w + 13] = _i(v.markets.length);
        w += ACCOUNT_FIXED_WORDS;
        for (uint256 i = 0; i < v.markets.length; ++i) {
            words[w] = _i(v.markets[i]);
            ++w;
        }
        for (uint256 i = 0; i < v.sizes.length; ++i) {
            words[w] = v.sizes[i];
            ++w;
        }
        for (uint256 i = 0; i < v.openNotionals.length; ++i) {
            words[w] = v.openNotionals[i];
            ++w;
        }
        return w;
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
