// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title MarketList
/// @notice The ordered set of markets an account holds positions in, packed in one storage word:
///         bits 0–7 hold the count, and entry `i` (a 16-bit market id) sits at bits `8 + 16·i`.
/// @dev One SLOAD gives the whole list, which bounds every per-account loop to `MAX_ENTRIES`.
///      Removal shifts later entries down, so the list keeps the order markets were opened in.
library MarketList {
    uint256 internal constant MAX_ENTRIES = 8;
    uint256 private constant ID_BITS = 16;
    uint256 private constant ID_MASK = (1 << ID_BITS) - 1;

    /// @dev Number of entries.
    function length(uint256 packed) internal pure returns (uint256) {
        return packed & 0xff;
    }

    /// @dev Entry `i` (unchecked against the count: callers loop `i < length`).
    function at(uint256 packed, uint256 i) internal pure returns (uint256) {
        return (packed >> (8 + ID_BITS * i)) & ID_MASK;
    }

    /// @dev Appends `id`; the caller checks `length < MAX_ENTRIES` and that `id` is absent.
    function push(uint256 packed, uint256 id) internal pure returns (uint256) {
        uint256 n = packed & 0xff;
        return ((packed & ~uint256(0xff)) | (id << (8 + ID_BITS * n))) | (n + 1);
    }

    /// @dev Removes `id` if present, keeping the order of the others.
    function remove(uint256 packed, uint256 id) internal pure returns (uint256) {
        uint256 n = packed & 0xff;
        uint256 out = 0;
        uint256 k = 0;
        for (uint256 i; i < n; ++i) {
            uint256 e = at(packed, i);
            if (e == id) continue;
            out |= e << (8 + ID_BITS * k);
            ++k;
        }
        return out | k;
    }

    /// @dev The entries in order, as an array.
    function toArray(uint256 packed) internal pure returns (uint256[] memory ids) {
        ids = new uint256[](length(packed));
        for (uint256 i; i < ids.length; ++i) {
            ids[i] = at(packed, i);
        }
    }
}
