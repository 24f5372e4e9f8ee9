// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IMintableCollection} from "../interfaces/IMintableCollection.sol";

/// @title MockMintableCollection
/// @notice TEST ONLY: a plain ERC721 whose {saleMint} safe-mints (so it calls onERC721Received).
contract MockMintableCollection is ERC721, IMintableCollection {
    address public immutable minter;
    uint256 public nextTokenId = 1;

    error MockMintableCollectionUnauthorized(address caller);

    constructor(address minter_) ERC721("Mock Collection", "MOCK") {
        minter = minter_;
    }

    function saleMint(address to, uint256 quantity) external returns (uint256 firstTokenId) {
        if (msg.sender != minter) revert MockMintableCollectionUnauthorized(msg.sender);
        firstTokenId = nextTokenId;
        nextTokenId = firstTokenId + quantity;
        for (uint256 i; i < quantity; ++i) {
            _safeMint(to, firstTokenId + i);
        }
    }
}
