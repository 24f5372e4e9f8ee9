// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {IERC721Receiver} from "@openzeppelin/contracts/token/ERC721/IERC721Receiver.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {PrimarySale} from "../PrimarySale.sol";

/// @title ReentrantBuyer
/// @notice TEST ONLY: buys from {PrimarySale} and tries to buy again from onERC721Received.
/// With `swallow` the re-entry's revert is caught (and stored) so the outer purchase can finish.
contract ReentrantBuyer is IERC721Receiver {
    PrimarySale public immutable sale;
    uint256 public listingId;
    uint256 public quantity;
    uint256 public reentriesLeft;
    bool public swallow;
    uint256 public received;
    bytes public lastError;

    constructor(PrimarySale sale_) {
        sale = sale_;
    }

    function approve(IERC20 token, uint256 amount) external {
        token.approve(address(sale), amount);
    }

    function attack(uint256 listingId_, uint256 quantity_, uint256 reentries, bool swallow_) external {
        listingId = listingId_;
        quantity = quantity_;
        reentriesLeft = reentries;
        swallow = swallow_;
        sale.buy(listingId_, quantity_, _noVoucher());
    }

    function onERC721Received(address, address, uint256, bytes calldata) external returns (bytes4) {
        ++received;
        if (reentriesLeft > 0) {
            --reentriesLeft;
            if (swallow) {
                try sale.buy(listingId, quantity, _noVoucher()) {}
                catch (bytes memory err) {
                    lastError = err;
                }
            } else {
                sale.buy(listingId, quantity, _noVoucher());
            }
        }
        return IERC721Receiver.onERC721Received.selector;
    }

    function _noVoucher() private pure returns (PrimarySale.Voucher memory v) {}
}
