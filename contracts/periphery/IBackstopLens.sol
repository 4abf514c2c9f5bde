// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ICollateralVault} from "../interfaces/ICollateralVault.sol";
import {IInsuranceFund} from "../interfaces/IInsuranceFund.sol";
import {IMarginEngine} from "../interfaces/IMarginEngine.sol";
import {IOracleAdapter} from "../interfaces/IOracleAdapter.sol";

/// @title IMarginEngineWiring
/// @notice The public immutables through which a `MarginEngine` names the rest of its suite.
interface IMarginEngineWiring {
    /// @notice The collateral vault holding the margin ledger.
    function VAULT() external view returns (ICollateralVault);
    /// @notice The oracle adapter pricing every market.
    function ORACLE() external view returns (IOracleAdapter);
    /// @notice The insurance fund (an ERC-4626 vault over the collateral token).
    function INSURANCE_FUND() external view returns (IInsuranceFund);
}

/// @title IBackstopLens
/// @notice Read-only snapshot of a whole Backstop suite in one call: every account's ledger,
///         positions and health, every market's open interest and loss indices, the insurance
///         fund and the solvency identity (docs/design.md §9). For indexers, risk dashboards, keepers that
///         want one round trip per block, and the differential fuzz suite (`tests/fuzz/`).
/// @dev View-only, holds no funds and has no privileges: it only calls the suite's own views.
///      Units are the suite's: money and prices in WAD, sizes in signed WAD base units, token and
///      fund-share amounts in their own units. Views that need an oracle price (equity,
///      requirements, free collateral, a market's price) are read inside `try`: a stale or
///      otherwise unusable feed yields `priced = false` and zeros instead of a revert, so a
///      snapshot can always be taken. Account health comes from one batched `healthOf` call;
///      free collateral is derived from that record with the engine's own definition
///      (`min(margin − pending, E) − IMR`) rather than read again, which would price every
///      market a second time. Cost grows with accounts × markets held: pass only the accounts
///      you need.
interface IBackstopLens {
    /// @notice Suite-wide figures.
    /// @param blockNumber The block the snapshot was read at.
    /// @param timestamp That block's timestamp.
    /// @param vaultAssets `engine.solvency()`: the vault's token balance in WAD.
    /// @param liabilities `engine.solvency()`: `Σ margin + fundCredit − Σ openNotional −
    ///        unsettledLoss` (WAD).
    /// @param dust `engine.solvency()`: `vaultAssets − liabilities`, never negative.
    /// @param totalMargin Σ margin over all accounts (WAD).
    /// @param netOpenNotional Σ openNotional over all positions (WAD).
    /// @param unsettledLoss Socialized loss not yet settled into margins (WAD, signed).
    /// @param vaultTokens The vault's collateral-token balance (token units).
    /// @param fundTokens The insurance fund's collateral-token balance (token units).
    /// @param fundCredit The fund's credit in the vault: fees booked, not yet swept (token units).
    /// @param fundAssets The fund's ERC-4626 `totalAssets()` (token units).
    /// @param fundSupply The fund's share supply.
    /// @param coverable What the fund can pay as cover now (token units).
    /// @param marketCount Number of listed markets.
    struct SystemView {
        uint256 blockNumber;
        uint256 timestamp;
        uint256 vaultAssets;
        int256 liabilities;
        int256 dust;
        int256 totalMargin;
        int256 netOpenNotional;
        int256 unsettledLoss;
        uint256 vaultTokens;
        uint256 fundTokens;
        uint256 fundCredit;
        uint256 fundAssets;
        uint256 fundSupply;
        uint256 coverable;
        uint256 marketCount;
    }

    /// @notice One market.
    /// @param openInterest Σ long size (= Σ |short size|), WAD base units.
    /// @param longIndex Cumulative socialized loss per unit of long size (WAD).
    /// @param shortIndex Cumulative socialized loss per unit of short size (WAD).
    /// @param paused Trading paused in this market or globally.
    /// @param priced Whether the oracle price is usable now.
    /// @param price The oracle price in WAD (0 when not `priced`).
    struct MarketView {
        uint256 openInterest;
        uint256 longIndex;
        uint256 shortIndex;
        bool paused;
        bool priced;
        uint256 price;
    }

    /// @notice One account.
    /// @param account The account.
    /// @param priced Whether every market it holds has a usable price (always true when flat).
    /// @param margin Its margin (WAD, signed).
    /// @param pendingLoss Socialized loss charged to it but not yet settled (WAD; needs no price).
    /// @param equity `E` at oracle prices (0 when not `priced`).
    /// @param initialMargin `IMR` (0 when not `priced`).
    /// @param maintenanceMargin `MMR` (0 when not `priced`).
    /// @param freeCollateral `F = min(margin − pending, E) − IMR` from the same health record
    ///        (0 when not `priced`).
    /// @param markets The markets it holds positions in, in the order they were opened.
    /// @param sizes Its position size in every market, indexed by market id.
    /// @param openNotionals Its position's cost basis in every market, indexed by market id.
    /// @param fundShares Its insurance-fund shares.
    /// @param request Its insurance-fund redeem request as controller (zero if none).
    /// @param walletTokens Its collateral-token balance outside the protocol.
    /// @param minNonce Its minimum valid order nonce.
    struct AccountView {
        address account;
        bool priced;
        int256 margin;
        uint256 pendingLoss;
        int256 equity;
        uint256 initialMargin;
        uint256 maintenanceMargin;
        int256 freeCollateral;
        uint256[] markets;
        int256[] sizes;
        int256[] openNotionals;
        uint256 fundShares;
        IInsuranceFund.RedeemRequestData request;
        uint256 walletTokens;
        uint256 minNonce;
    }

    /// @notice The engine this lens reads.
    function ENGINE() external view returns (IMarginEngine);

    /// @notice `snapshotWords` part: each market's oracle price, usability and pause flag.
    function PART_PRICES() external view returns (uint256);

    /// @notice `snapshotWords` part: each account's redeem request, wallet balance, minimum
    ///         nonce, and its position in every market (without it, only the markets it holds).
    function PART_ACCOUNT_DETAIL() external view returns (uint256);

    /// @notice `snapshotWords` part: the components of the solvency identity (total margin, net
    ///         open notional, unsettled loss), the vault's and the fund's token balances, the
    ///         fund's credit in the vault and its coverable amount.
    function PART_SYSTEM_DETAIL() external view returns (uint256);

    /// @notice Suite-wide figures and the solvency identity.
    function system() external view returns (SystemView memory);

    /// @notice Every listed market, indexed by market id.
    function markets() external view returns (MarketView[] memory);

    /// @notice The given accounts, in the given order.
    function accounts(address[] calldata accountList) external view returns (AccountView[] memory);

    /// @notice Everything above in one flat array of 32-byte words, for consumers that decode by
    ///         hand (no nested ABI decoding) and poll often. `parts` is a bitmask of `PART_*`:
    ///         without a part, its fields cost nothing and read as zero (`parts = 7`: everything).
    ///         Always present: block number and timestamp, the solvency triple, the fund's assets
    ///         and share supply, each market's open interest and loss indices, and each account's
    ///         margin, pending loss, health, market list, positions in the markets it holds and
    ///         fund shares. Layout:
    ///         - `parts`;
    ///         - `SystemView`'s 15 fields;
    ///         - per market (id order), 6 words: `openInterest, longIndex, shortIndex, paused,
    ///           priced, price`;
    ///         - per account (given order): `margin, pendingLoss, priced, equity, initialMargin,
    ///           maintenanceMargin, freeCollateral, fundShares, requestShares, requestAssets,
    ///           requestedAt, walletTokens, minNonce, k`, then the `k` market ids it holds, then
    ///           `marketCount` sizes and `marketCount` open notionals.
    ///         Booleans are 0 or 1; unsigned values are below 2^255. The fuzz suite decodes and
    ///         predicts this layout with the named tuples of `tests/fuzz/lens.py`, and
    ///         `tests/fuzz/test_harness_tables.py` checks those tuples against this list.
    function snapshotWords(address[] calldata accountList, uint256 parts)
        external
        view
        returns (int256[] memory words);
}
