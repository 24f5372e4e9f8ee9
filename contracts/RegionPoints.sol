// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title RegionPoints
/// @notice A town's regional points: 1 point is 1 point (no decimals).
contract RegionPoints is ERC20, AccessControl {
    bytes32 public constant ISSUER_ROLE = keccak256("ISSUER_ROLE");

    /// @dev Emitted when `amount` points were issued to `to` under `programmeId` for `reason`.
    event PointsIssued(address indexed to, uint256 amount, uint256 indexed programmeId, string reason);

    constructor(string memory name_, string memory symbol_, address admin) ERC20(name_, symbol_) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ISSUER_ROLE, admin);
    }

    function decimals() public pure override returns (uint8) {
        return 0;
    }

    /// @notice Issues `amount` points to `to`.
    /// Requirements: the caller has ISSUER_ROLE.
    /// Emits: {PointsIssued} and {Transfer}.
    function issue(address to, uint256 amount, uint256 programmeId, string calldata reason)
        external
        onlyRole(ISSUER_ROLE)
    {
        _mint(to, amount);
        emit PointsIssued(to, amount, programmeId, reason);
    }
}
