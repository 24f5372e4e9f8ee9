// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title TestYenStablecoin
/// @notice TEST ONLY - NOT MONEY. A yen-denominated stand-in stablecoin for development and
/// test networks: 1 unit = 1 JPY (0 decimals), with EIP-2612 permit. Anyone holding MINTER_ROLE
/// (a faucet service) may mint any amount; it has no backing and must never be deployed to a
/// production network.
contract TestYenStablecoin is ERC20, ERC20Permit, AccessControl {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @dev Emitted when the faucet `minter` minted `amount` test yen to `to`.
    event TestYenMinted(address indexed minter, address indexed to, uint256 amount);

    error TestYenStablecoinInvalidAdmin();

    /// @param admin gets DEFAULT_ADMIN_ROLE and MINTER_ROLE.
    constructor(address admin)
        ERC20("Test JPY Stablecoin (TEST ONLY)", "tJPY")
        ERC20Permit("Test JPY Stablecoin (TEST ONLY)")
    {
        if (admin == address(0)) revert TestYenStablecoinInvalidAdmin();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, admin);
    }

    /// @notice 1 unit = 1 yen.
    function decimals() public pure override returns (uint8) {
        return 0;
    }

    /// @notice Faucet: mints `amount` test yen to `to`.
    ///
    /// Requirements: the caller has MINTER_ROLE; `to` is not the zero address.
    ///
    /// Emits: {Transfer} and {TestYenMinted}.
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
        emit TestYenMinted(_msgSender(), to, amount);
    }
}
