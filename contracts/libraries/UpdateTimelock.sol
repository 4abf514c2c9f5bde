// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IMarginEngine} from "../interfaces/IMarginEngine.sol";

/// @title UpdateTimelock
/// @notice The schedule of the engine's delayed changes (docs/design.md §10): one `eta` per target
///         (a market id, or the sequencer), executable from `eta` for `EXECUTION_WINDOW` seconds.
/// @dev Only the timestamps live here; the engine stores what each change sets. A change that was
///      never executed in its window has expired: it can no longer be executed, and a new change
///      of the same target may replace it.
library UpdateTimelock {
    /// @dev How long a scheduled change stays executable after its `eta`. A change the admin let
    ///      lapse must be scheduled again, so users are never surprised by an old announcement.
    uint256 internal constant EXECUTION_WINDOW = 14 days;

    /// @dev Schedules `target` for `block.timestamp + delay`; reverts `UpdateAlreadyScheduled` if it
    ///      has a change that has not expired.
    function schedule(mapping(uint256 => uint256) storage etas, uint256 target, uint256 delay)
        internal
        returns (uint256 eta)
    {
        uint256 current = etas[target];
        if (current != 0 && block.timestamp <= current + EXECUTION_WINDOW) {
            revert IMarginEngine.UpdateAlreadyScheduled(target, current);
        }
        eta = block.timestamp + delay;
        etas[target] = eta;
    }

    /// @dev Consumes `target`'s change if it is executable now, else reverts `NoUpdateScheduled`,
    ///      `UpdateNotReady` or `UpdateExpired`.
    function consume(mapping(uint256 => uint256) storage etas, uint256 target) internal {
        uint256 eta = etas[target];
        // slither-disable-next-line incorrect-equality
        if (eta == 0) revert IMarginEngine.NoUpdateScheduled(target);
        // The delay is the whole point: the change applies no sooner than its announced time.
        // slither-disable-next-line timestamp
        if (block.timestamp < eta) revert IMarginEngine.UpdateNotReady(target, eta, block.timestamp);
        // slither-disable-next-line timestamp
        if (block.timestamp > eta + EXECUTION_WINDOW) {
            revert IMarginEngine.UpdateExpired(target, eta + EXECUTION_WINDOW, block.timestamp);
        }
        delete etas[target];
    }

    /// @dev Drops `target`'s change (expired or not); reverts `NoUpdateScheduled` if there is none.
    function cancel(mapping(uint256 => uint256) storage etas, uint256 target) internal {
        // slither-disable-next-line incorrect-equality
        if (etas[target] == 0) revert IMarginEngine.NoUpdateScheduled(target);
        delete etas[target];
    }
}
