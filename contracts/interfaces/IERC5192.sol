// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

/// @title ERC-5192: Minimal Soulbound NFTs (https://eips.ethereum.org/EIPS/eip-5192)
/// @notice A token whose `locked` is true cannot be transferred. Marketplaces read it (and the
/// interface id 0xb45a3c0e through ERC-165) to keep such tokens off their listings.
interface IERC5192 {
    /// @notice Emitted when the locking status is changed to locked (here: on mint).
    event Locked(uint256 tokenId);

    /// @notice Emitted when the locking status is changed to unlocked (never emitted here).
    event Unlocked(uint256 tokenId);

    /// @notice Whether `tokenId` is locked (cannot be transferred). Reverts for a token that does
    /// not exist.
    function locked(uint256 tokenId) external view returns (bool);
}
