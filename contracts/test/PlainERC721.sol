// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";

/// @title PlainERC721
/// @notice TEST ONLY: a plain OpenZeppelin ERC-721 with an open `mint(to, id)`, the gas baseline
/// that {FanCollection} mints are measured against. Never deploy it anywhere that matters.
contract PlainERC721 is ERC721 {
    constructor() ERC721("Plain", "PLAIN") {}

    /// @notice Mints `id` to `to` (anyone may call: this is a gas baseline only).
    function mint(address to, uint256 id) external {
        _mint(to, id);
    }
}
