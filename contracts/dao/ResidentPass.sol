// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721Votes} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721Votes.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";
import {Context} from "@openzeppelin/contracts/utils/Context.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IERC5192} from "../interfaces/IERC5192.sol";

/// @title ResidentPass
/// @notice The voting token of a town's resident chamber: 1 verified person = 1 vote.
///
/// - Soulbound ERC-721 with {ERC721Votes}: a pass cannot be transferred (only issued and revoked).
///   It says so through ERC-5192 ({IERC5192-locked} is true, {IERC5192-Locked} on issue) and refuses
///   approvals, so a marketplace never lists a pass that could never sell.
/// - Issued by REGISTRAR_ROLE (municipal staff, after an identity check such as a My Number card)
///   to at most one address per person and at most one pass per address. `personId` is an opaque
///   salted hash the backend derives from the verified identity: it keeps a second wallet of the
///   same person from getting a second vote without putting personal data on chain.
/// - Every holder is delegated to themself when the pass is issued, and delegation to anyone else
///   is disabled: a vote is personal, so no address can gather other residents' votes.
contract ResidentPass is ERC721Votes, AccessControl, ERC2771Context, IERC5192 {
    /// @notice May issue and revoke passes (municipal registry staff).
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");

    string private _baseTokenURI;
    uint256 private _lastTokenId;
    mapping(bytes32 personId => uint256 tokenId) private _passOfPerson;
    mapping(uint256 tokenId => bytes32 personId) private _personOfPass;

    /// @dev `holder` already holds a pass.
    error ResidentPassAlreadyHolder(address holder);
    /// @dev The person behind `personId` already holds a pass.
    error ResidentPassPersonAlreadyRegistered(bytes32 personId);
    /// @dev `personId` is zero.
    error ResidentPassInvalidPerson();
    /// @dev Passes cannot be transferred.
    error ResidentPassSoulbound(uint256 tokenId);
    /// @dev Passes are locked (ERC-5192): no one may be approved to move them.
    error ResidentPassApprovalDisabled();
    /// @dev Votes cannot be delegated: 1 person = 1 vote.
    error ResidentPassDelegationDisabled();

    /// @dev Emitted when a pass was issued to `holder` for `personId`.
    event PassIssued(address indexed holder, uint256 indexed tokenId, bytes32 indexed personId);
    /// @dev Emitted when a pass was revoked (the person moved away, or changes wallet).
    event PassRevoked(address indexed holder, uint256 indexed tokenId, bytes32 indexed personId);

    /// @param name_ token name and EIP-712 domain name.
    /// @param symbol_ token symbol.
    /// @param baseURI_ metadata base URI (tokenURI = base + id).
    /// @param admin gets DEFAULT_ADMIN_ROLE and REGISTRAR_ROLE.
    /// @param trustedForwarder the platform's {FurusatoForwarder}.
    constructor(
        string memory name_,
        string memory symbol_,
        string memory baseURI_,
        address admin,
        address trustedForwarder
    ) ERC721(name_, symbol_) EIP712(name_, "1") ERC2771Context(trustedForwarder) {
        _baseTokenURI = baseURI_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(REGISTRAR_ROLE, admin);
    }

    /// @notice Issues a pass to `holder` for the verified person `personId`; the holder votes at once
    /// from the next block (self-delegated).
    /// @return tokenId the new pass.
    ///
    /// Requirements: the caller has REGISTRAR_ROLE; `holder` holds no pass; `personId` is not zero
    /// and holds no pass.
    ///
    /// Emits: {PassIssued}, {Transfer}, {IVotes-DelegateChanged} and {IVotes-DelegateVotesChanged}.
    function issue(address holder, bytes32 personId) external onlyRole(REGISTRAR_ROLE) returns (uint256 tokenId) {
        if (personId == bytes32(0)) revert ResidentPassInvalidPerson();
        if (balanceOf(holder) != 0) revert ResidentPassAlreadyHolder(holder);
        if (_passOfPerson[personId] != 0) revert ResidentPassPersonAlreadyRegistered(personId);
        tokenId = ++_lastTokenId;
        _passOfPerson[personId] = tokenId;
        _personOfPass[tokenId] = personId;
        _mint(holder, tokenId);
        emit PassIssued(holder, tokenId, personId);
    }

    /// @notice Revokes (burns) pass `tokenId`; its person may be issued a new pass later.
    ///
    /// Requirements: the caller has REGISTRAR_ROLE; `tokenId` exists.
    ///
    /// Emits: {PassRevoked}, {Transfer} and {IVotes-DelegateVotesChanged}.
    function revoke(uint256 tokenId) external onlyRole(REGISTRAR_ROLE) {
        address holder = _requireOwned(tokenId);
        bytes32 personId = _personOfPass[tokenId];
        delete _passOfPerson[personId];
        delete _personOfPass[tokenId];
        _burn(tokenId);
        emit PassRevoked(holder, tokenId, personId);
    }

    /// @notice The pass held by the person `personId` (0 when none).
    function passOf(bytes32 personId) external view returns (uint256) {
        return _passOfPerson[personId];
    }

    /// @notice Sets the metadata base URI.
    ///
    /// Requirements: the caller has DEFAULT_ADMIN_ROLE.
    function setBaseURI(string calldata baseURI_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _baseTokenURI = baseURI_;
    }

    /// @notice Disabled: 1 person = 1 vote. Always reverts with {ResidentPassDelegationDisabled}.
    function delegate(address) public pure override {
        revert ResidentPassDelegationDisabled();
    }

    /// @notice Disabled: 1 person = 1 vote. Always reverts with {ResidentPassDelegationDisabled}.
    function delegateBySig(address, uint256, uint256, uint8, bytes32, bytes32) public pure override {
        revert ResidentPassDelegationDisabled();
    }

    /// @notice Always true for an existing pass (ERC-5192); reverts with {IERC721Errors-ERC721NonexistentToken}
    /// otherwise.
    function locked(uint256 tokenId) external view returns (bool) {
        _requireOwned(tokenId);
        return true;
    }

    /// @notice Disabled: a pass is locked. Always reverts with {ResidentPassApprovalDisabled}.
    function approve(address, uint256) public pure override {
        revert ResidentPassApprovalDisabled();
    }

    /// @notice Disabled: every pass is locked. Always reverts with {ResidentPassApprovalDisabled}.
    function setApprovalForAll(address, bool) public pure override {
        revert ResidentPassApprovalDisabled();
    }

    /// @inheritdoc ERC721
    function supportsInterface(bytes4 interfaceId) public view override(ERC721, AccessControl) returns (bool) {
        return interfaceId == type(IERC5192).interfaceId || super.supportsInterface(interfaceId);
    }

    /// @dev Soulbound (only mint and burn), {IERC5192-Locked} on issue, self-delegation on issue.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        if (to != address(0) && delegates(to) == address(0)) _delegate(to, to);
        from = super._update(to, tokenId, auth);
        if (from != address(0) && to != address(0)) revert ResidentPassSoulbound(tokenId);
        if (from == address(0)) emit Locked(tokenId);
    }

    function _baseURI() internal view override returns (string memory) {
        return _baseTokenURI;
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
