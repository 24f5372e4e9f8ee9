// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title TownTreasury
/// @notice The town's treasury: an OZ {TimelockController} that holds sale proceeds (ETH and ERC-20,
/// also ERC-721/1155 through the inherited holders) and pays out only what a chamber's
/// {TownGovernor} proposal approved, after `minDelay`.
///
/// Setup: every chamber's governor gets PROPOSER_ROLE and CANCELLER_ROLE; EXECUTOR_ROLE goes to the
/// zero address (anyone may execute a ready operation); `admin` should be the zero address
/// (self-administered) or renounce DEFAULT_ADMIN_ROLE once the chambers are wired.
contract TownTreasury is TimelockController {
    /// @param minDelay seconds between queueing and executing a payout.
    /// @param proposers the chambers' governors.
    /// @param executors who may execute (use `[address(0)]` for anyone).
    /// @param admin optional bootstrap admin (zero address for none).
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {}
}
