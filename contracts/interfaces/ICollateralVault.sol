// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IMarginAuthority} from "./IMarginAuthority.sol";

/// @title ICollateralVault
/// @notice Holds the collateral token and the margin ledger of every account.
/// @dev Units: token amounts are in the token's own units (`amountTokens`); the ledger is in WAD
///      quote units, `1e18` = one whole token. A deposit of `a` units credits exactly
///      `a · 10^(18 − decimals)`, so conversions are exact in both directions.
///
///      Trust assumptions about the token: a plain ERC-20 with 0 < decimals ≤ 18 whose transfers
///      move exactly the amount asked. Tokens that deliver less (fee-on-transfer) are refused at
///      deposit; a token that returns `false` is treated as a failed transfer; hooks that re-enter
///      the vault are blocked by a reentrancy guard.
///
///      Only the margin engine, set once at wiring, can move value between ledger entries, and only
///      through the narrow functions below. Nobody, deployer included, can move a user's margin
///      otherwise: there is no admin withdrawal and no upgrade path.
interface ICollateralVault {
    /// @notice The token reports `decimals` outside 1..18.
    error UnsupportedDecimals(uint8 decimals);
    /// @notice A zero address was given for `what`.
    error ZeroAddress(string what);
    /// @notice An amount of zero tokens was given.
    error ZeroAmount();
    /// @notice The amount overflows the ledger's range.
    error AmountTooLarge(uint256 amountTokens);
    /// @notice The vault received `received` token units where `expected` were sent (fee-on-transfer).
    error TransferAmountMismatch(uint256 expected, uint256 received);
    /// @notice `account` asked for `requestedWad` but only `freeWad` (signed) is free.
    error InsufficientFreeCollateral(address account, uint256 requestedWad, int256 freeWad);
    /// @notice Only the margin engine may call this.
    error NotEngine(address caller);
    /// @notice Only the deployer may wire the vault, and only once.
    error NotDeployer(address caller);
    /// @notice The vault is already wired to an engine.
    error AlreadyWired();
    /// @notice `needed` token units must leave the vault's own part, which holds only `available`:
    ///         the vault's token balance less the `fundCredit` it keeps for the insurance fund.
    error InsufficientVaultTokens(uint256 available, uint256 needed);
    /// @notice `sweepToFund` found no credit to pay.
    error NothingToSweep();
    /// @notice Only the insurance fund may call this.
    error NotInsuranceFund(address caller);
    /// @notice The fund asked to pay `amountTokens` of cover out of a credit of only `credit`.
    error CreditExceeded(uint256 amountTokens, uint256 credit);

    /// @notice `account` deposited `amountTokens`, credited as `amountWad` margin.
    event Deposited(address indexed account, uint256 amountTokens, uint256 amountWad);
    /// @notice `account` withdrew `amountTokens`, debited as `amountWad` margin.
    event Withdrawn(address indexed account, uint256 amountTokens, uint256 amountWad);
    /// @notice The vault was wired to its margin engine and insurance fund (once, for good).
    event Wired(address indexed engine, address indexed insuranceFund);
    /// @notice The engine changed `account`'s margin by `deltaWad` (PnL, rewards, losses, cover).
    event MarginAdjusted(address indexed account, int256 deltaWad);
    /// @notice `amountTokens` left `account`'s margin for the insurance fund (fees), booked to
    ///         `fundCredit`: the tokens stay in the vault until `sweepToFund`.
    event PaidToFund(address indexed account, uint256 amountTokens);
    /// @notice `caller` swept the fund's whole credit, `amountTokens`, to the insurance fund.
    event SweptToFund(address indexed caller, uint256 amountTokens);
    /// @notice The insurance fund paid `amountTokens` of cover out of its credit (no token moved).
    event CreditCover(uint256 amountTokens);

    /// @notice The collateral token.
    function TOKEN() external view returns (IERC20);

    /// @notice `10^(18 − decimals)`: WAD per token unit.
    function SCALE() external view returns (uint256);

    /// @notice The margin engine (zero until wired).
    function engine() external view returns (IMarginAuthority);

    /// @notice The insurance fund that receives fees (zero until wired).
    function insuranceFund() external view returns (address);

    /// @notice Deposits `amountTokens` of the caller's tokens (approval needed) and credits exactly
    ///         what arrived, in WAD. Reverts `ZeroAmount` for 0 and `TransferAmountMismatch` if the
    ///         vault received anything other than `amountTokens`. Does not touch the account.
    function deposit(uint256 amountTokens) external;

    /// @notice Withdraws `amountTokens` to the caller. The engine first settles the account and
    ///         reports its free collateral; the WAD amount must not exceed it. Before the vault is
    ///         wired, the free collateral is the account's whole positive margin. An account with no
    ///         open position can always withdraw its whole positive margin, even while paused or
    ///         with stale oracles, as far as the vault holds tokens beyond `fundCredit`
    ///         (`InsufficientVaultTokens` otherwise).
    function withdraw(uint256 amountTokens) external;

    /// @notice The margin of `account` in WAD (signed: it may be negative while unrealized
    ///         profit in another market keeps the account's equity above its requirement).
    function marginOf(address account) external view returns (int256);

    /// @notice Σ margin over all accounts, in WAD (an O(1) term of the solvency identity).
    function totalMargin() external view returns (int256);

    /// @notice The vault's token balance in WAD (`V` in the solvency identity).
    function assetsWad() external view returns (uint256);

    /// @notice Token units the vault holds for the insurance fund: fees booked since the last
    ///         sweep, less cover the fund paid out of them. They are the fund's assets already
    ///         (`IInsuranceFund.totalAssets` counts them), and never the traders': `withdraw`
    ///         cannot take them and a fee is booked only if the vault holds the tokens for it.
    function fundCredit() external view returns (uint256);

    /// @notice Permissionless: transfers the whole `fundCredit` to the insurance fund and zeroes
    ///         it. Moves nothing else: the fund's `totalAssets`, and so its share price, are the
    ///         same before and after. Reverts `NothingToSweep` when the credit is 0. The fund
    ///         also calls it itself when a redemption needs more tokens than it holds.
    function sweepToFund() external;

    /// @notice Insurance fund only: pays `amountTokens` of cover to this vault out of the fund's
    ///         credit, which shrinks by that much; no token moves (they are here already).
    ///         Reverts `NotInsuranceFund` for any other caller and `CreditExceeded` beyond the credit.
    function coverFromCredit(uint256 amountTokens) external;

    /// @notice Wires the engine and the insurance fund. Deployer only, once; irreversible.
    function wire(IMarginAuthority engine_, address insuranceFund_) external;

    /// @notice Engine only: adds `deltaWad` (signed) to `account`'s margin.
    /// @dev The engine keeps Σ of these deltas consistent with token flows (zero-sum PnL, cover
    ///      payments that arrived); the solvency identity checks it.
    function adjustMargin(address account, int256 deltaWad) external;

    /// @notice Engine only: applies the margin changes of one trade or liquidation to two
    ///         accounts in one call: `a` gets `aDeltaWad` and pays `aFeeTokens` to the insurance
    ///         fund, `b` gets `bDeltaWad` and pays `bFeeTokens`. A fee debits exactly
    ///         `feeTokens · SCALE` of margin and is booked to `fundCredit` (no token moves; see
    ///         `sweepToFund`). Non-zero fees need the vault's own part (balance − credit) to hold
    ///         their sum, else `InsufficientVaultTokens`. Emits `MarginAdjusted` for each non-zero
    ///         delta and `PaidToFund` for each non-zero fee. The engine checks margin requirements
    ///         afterwards.
    /// @param claimsWad The engine's `netOpenNotional + unsettledLoss` after this change: the rest
    ///        of the solvency identity's liabilities. When `totalMargin` is at least this much,
    ///        the identity (dust ≥ 0) already proves the vault holds the fees beyond the credit and
    ///        the vault skips reading its token balance; otherwise it reads it. The outcome is the
    ///        same either way.
    /// @return aMargin `a`'s margin afterwards (WAD).
    /// @return bMargin `b`'s margin afterwards (WAD).
    function adjustMargins(
        address a,
        int256 aDeltaWad,
        uint256 aFeeTokens,
        address b,
        int256 bDeltaWad,
        uint256 bFeeTokens,
        int256 claimsWad
    ) external returns (int256 aMargin, int256 bMargin);
}
