// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";
import {Context} from "@openzeppelin/contracts/utils/Context.sol";
import {FanCollection} from "./FanCollection.sol";

/// @title FanCollectionFactory
/// @notice Deploys one {FanCollection} per collection, all trusting the same ERC-2771 forwarder.
///
/// Why a plain `new` and not OZ Clones: {FanCollection} is built on the non-upgradeable OZ 5.7
/// contracts (the upgradeable package is not a dependency), whose name, symbol and EIP-712
/// domain (needed by ERC721Votes' `delegateBySig`) are set in constructors and partly kept in
/// immutables; a clone would share the implementation's immutables and could not run a
/// constructor, so Clones would need the upgradeable package and initializers in every base.
/// A collection is created a few times a year per town, so deployment gas (a few million, paid once) is
/// not the cost to save: mints and transfers are, and a full contract has no proxy DELEGATECALL on
/// every call (a clone adds ~2.6k gas per call). The factory's runtime code embeds FanCollection's
/// creation code (~15.7 KB), well under the 24,576-byte limit.
contract FanCollectionFactory is AccessControl, ERC2771Context {
    /// @notice May create collections (municipal staff, the backend).
    bytes32 public constant DEPLOYER_ROLE = keccak256("DEPLOYER_ROLE");

    /// @dev Every collection this factory created, in order.
    address[] private _collections;
    /// @notice Whether `collection` was created by this factory.
    mapping(address collection => bool) public isCollection;

    /// @dev Emitted when a collection was created.
    event CollectionCreated(
        address indexed collection,
        address indexed admin,
        FanCollection.Category indexed category,
        string name,
        string symbol,
        uint32 maxSupply,
        bool soulbound,
        bool votes
    );

    /// @param admin gets DEFAULT_ADMIN_ROLE and DEPLOYER_ROLE.
    /// @param trustedForwarder the platform's {FurusatoForwarder}; every collection trusts it too.
    constructor(address admin, address trustedForwarder) ERC2771Context(trustedForwarder) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(DEPLOYER_ROLE, admin);
    }

    /// @notice Deploys a collection configured by `config` (its admin is `config.admin`).
    /// @return collection the new collection's address.
    ///
    /// Requirements: the caller has DEPLOYER_ROLE; `config` is valid for {FanCollection}.
    ///
    /// Emits: {CollectionCreated}.
    function createCollection(FanCollection.CollectionConfig calldata config)
        external
        onlyRole(DEPLOYER_ROLE)
        returns (address collection)
    {
        collection = address(new FanCollection(config, trustedForwarder()));
        _collections.push(collection);
        isCollection[collection] = true;
        emit CollectionCreated(
            collection,
            config.admin,
            config.category,
            config.name,
            config.symbol,
            config.maxSupply,
            config.soulbound,
            config.votes
        );
    }

    /// @notice How many collections this factory created.
    function collectionCount() external view returns (uint256) {
        return _collections.length;
    }

    /// @notice The `index`-th collection created (0-based).
    function collectionAt(uint256 index) external view returns (address) {
        return _collections[index];
    }

    function _msgSender() internal view override(Context, ERC2771Context) returns (address) {
        return ERC2771Context._msgSender();
    }

    function _msgData() internal view override(Context, ERC2771Context) returns (bytes calldata) {
        return ERC2771Context._msgData();
    }

    function _contextSuffixLength() internal view override(Context, ERC2771Context) returns (uint256) {
        return ERC2771Context._contextSuffixLength();
    }
}
