// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

/// @title IMintableCollection
/// @notice What {PrimarySale} needs from an NFT collection (FanCollection implements it and grants
/// the sale contract its minter role).
interface IMintableCollection {
    /// @notice Mints `quantity` consecutive tokens to `to` and returns the first token id.
    /// Implementations may call {IERC721Receiver-onERC721Received} on `to` (safe mint).
    function saleMint(address to, uint256 quantity) external returns (uint256 firstTokenId);
}
