// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721Votes} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721Votes.sol";
import {ERC2981} from "@openzeppelin/contracts/token/common/ERC2981.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";
import {Context} from "@openzeppelin/contracts/utils/Context.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IERC4906} from "@openzeppelin/contracts/interfaces/IERC4906.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC5192} from "./interfaces/IERC5192.sol";

/// @title FanCollection
/// @notice One fan NFT collection of a town (ambassador cards, resident cards, tickets, rights...).
///
/// - ERC-721 with ERC-2981 royalties; `tokenURI(id)` is `baseURI + id` (OpenSea JSON served by the
///   backend) and {IERC4906-BatchMetadataUpdate} tells marketplaces to refresh on a new base URI.
/// - Token ids are sequential from 1 and capped by `maxSupply`.
/// - Gas: a mint touches one extra storage slot compared with a plain ERC-721 `_mint(to, id)`,
///   read once and written once. That word packs the mint counter, the max supply, the flags and a
///   cache of one MINTER_ROLE member (the first one granted, normally the primary sale contract),
///   so the usual minter passes the role check without the cold read of AccessControl's role
///   mapping. Other minters fall back to {AccessControl-hasRole}; the cache is only ever a
///   MINTER_ROLE member (cleared on revoke) and never the trusted forwarder, so a call whose
///   `msg.sender` is the cached minter is a direct call and `_msgSender()` is `msg.sender`.
/// - Optional soulbound: transfers revert with {FanCollectionSoulbound}; mint and burn still work.
///   A soulbound collection says so through ERC-5192 (interface 0xb45a3c0e, {IERC5192-Locked} on
///   each mint, {locked} true) and refuses approvals, so marketplaces do not list its tokens.
/// - Optional voting power ({ERC721Votes}, 1 token = 1 vote). A holder who never chose a delegate is
///   delegated to themself on receipt, so a holder's voting power is never 0 by omission. When votes
///   are off, the votes bookkeeping is skipped entirely: a mint takes the flag from the word it has
///   already read and calls {ERC721-_update} directly; transfers and burns read it in {_update}.
/// - Perks ("rights tickets"): the admin or a PERK_ADMIN_ROLE member sets `perkId -> (usesPerToken,
///   validUntil)`; venue staff (VERIFIER_ROLE) mark uses with {usePerk}. Uses are stored per token id, so they follow the
///   token when it is resold: a used ticket stays used.
/// - Trusts the platform's ERC-2771 forwarder, so holders never need gas. No Multicall (it would
///   let anyone spoof `_msgSender()` through the forwarder).
contract FanCollection is ERC721Votes, ERC2981, AccessControl, ERC2771Context, IERC4906, IERC5192 {
    /// @notice May mint (the primary sale contract, staff).
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    /// @notice May mark perk uses (venue staff).
    bytes32 public constant VERIFIER_ROLE = keccak256("VERIFIER_ROLE");
    /// @notice May set perks ({setPerk}) and nothing else (the platform's `collections` key, so
    /// staff can edit perks without a vote; the admin, the town's timelock, can revoke it).
    /// (Not public: one selector more in the dispatcher costs every mint gas; its id is
    /// keccak256("PERK_ADMIN_ROLE"), as OpenZeppelin derives role ids.)
    bytes32 private constant PERK_ADMIN_ROLE = keccak256("PERK_ADMIN_ROLE");

    /// @notice What a collection is for; the backend and the UI use it to present the tokens.
    enum Category {
        AMBASSADOR_CARD,
        RESIDENT_CARD,
        EVENT_TICKET,
        VIP_TICKET,
        EXPERIENCE,
        NAMING_RIGHT,
        DONATION_CERTIFICATE,
        LODGING_RIGHT
    }

    /// @notice Everything a collection is created with (a struct keeps the constructor readable).
    struct CollectionConfig {
        string name;
        string symbol;
        string baseURI;
        uint32 maxSupply;
        Category category;
        bool soulbound;
        bool votes;
        address admin;
        address royaltyReceiver;
        uint96 royaltyBps;
    }

    /// @notice A perk's rule: how many uses each token gets and until when (unix seconds, 0 = no end).
    struct Perk {
        uint32 usesPerToken;
        uint64 validUntil;
    }

    /// @dev The hot state, ONE storage word that a mint reads once and writes once (no read-modify-
    /// write of a packed struct member):
    ///   bits   0..31   totalMinted (the low bits, so booking `n` ids is `word + n`: it cannot carry
    ///                  into maxSupply because totalMinted + n <= maxSupply < 2**32)
    ///   bits  32..63   maxSupply
    ///   bits  64..71   category
    ///   bit   72       soulbound
    ///   bit   73       votes
    ///   bits  96..255  cachedMinter (0 = none)
    uint256 private _hot;
    uint256 private constant _MINTED_MASK = 0xffffffff;
    uint256 private constant _MAX_SHIFT = 32;
    uint256 private constant _CATEGORY_SHIFT = 64;
    uint256 private constant _SOULBOUND_BIT = 1 << 72;
    uint256 private constant _VOTES_BIT = 1 << 73;
    uint256 private constant _MINTER_SHIFT = 96;
    uint256 private _totalBurned;
    string private _baseTokenURI;
    mapping(uint256 perkId => Perk) private _perks;
    mapping(uint256 tokenId => mapping(uint256 perkId => uint256)) private _perkUses;

    /// @dev A transfer was attempted on a soulbound collection.
    error FanCollectionSoulbound(uint256 tokenId);
    /// @dev Minting `requested` more tokens would pass the max supply; `remaining` can still be minted.
    error FanCollectionMaxSupplyExceeded(uint256 requested, uint256 remaining);
    /// @dev An approval was attempted on a soulbound (ERC-5192 locked) collection.
    error FanCollectionApprovalDisabled();
    /// @dev A mint of zero tokens was requested.
    error FanCollectionZeroQuantity();
    /// @dev The collection was configured with a max supply of zero.
    error FanCollectionInvalidMaxSupply();
    /// @dev Delegation was attempted on a collection without voting power.
    error FanCollectionVotesDisabled();
    /// @dev `perkId` was never set (or was removed) on this collection.
    error FanCollectionUnknownPerk(uint256 perkId);
    /// @dev `perkId` ended at `validUntil`.
    error FanCollectionPerkExpired(uint256 perkId, uint64 validUntil);
    /// @dev `tokenId` has no uses of `perkId` left.
    error FanCollectionPerkUsedUp(uint256 tokenId, uint256 perkId);

    /// @dev Emitted when the admin set (or removed, with `usesPerToken` 0) a perk.
    event PerkSet(uint256 indexed perkId, uint32 usesPerToken, uint64 validUntil);
    /// @dev Emitted when venue staff marked one use of `perkId` on `tokenId`.
    event PerkUsed(uint256 indexed tokenId, uint256 indexed perkId, uint256 usesLeft);
    /// @dev Emitted when the admin changed the metadata base URI.
    event BaseURISet(string baseURI);

    /// @notice Creates the collection; the admin gets DEFAULT_ADMIN_ROLE and nothing else.
    /// @param config see {CollectionConfig}; `royaltyReceiver` 0 means no royalty.
    /// @param trustedForwarder the platform's {FurusatoForwarder}.
    ///
    /// Requirements: `config.maxSupply` > 0; `config.royaltyBps` <= 10000 when a receiver is given.
    constructor(CollectionConfig memory config, address trustedForwarder)
        ERC721(config.name, config.symbol)
        EIP712(config.name, "1")
        ERC2771Context(trustedForwarder)
    {
        if (config.maxSupply == 0) revert FanCollectionInvalidMaxSupply();
        uint256 word = (uint256(config.maxSupply) << _MAX_SHIFT) | (uint256(config.category) << _CATEGORY_SHIFT);
        if (config.soulbound) word |= _SOULBOUND_BIT;
        if (config.votes) word |= _VOTES_BIT;
        _hot = word;
        _baseTokenURI = config.baseURI;
        if (config.royaltyReceiver != address(0)) _setDefaultRoyalty(config.royaltyReceiver, config.royaltyBps);
        _grantRole(DEFAULT_ADMIN_ROLE, config.admin);
    }

    // ----------------------------------------------------------------- minting and burning

    /// @notice Mints `quantity` tokens with consecutive ids to `to` (the primary sale's entry point).
    /// @return firstTokenId the id of the first token minted; the others follow it.
    ///
    /// Requirements: the caller has MINTER_ROLE; `quantity` > 0; the max supply is not passed;
    /// `to` is not the zero address.
    ///
    /// Emits: {Transfer} per token (and {IVotes-DelegateVotesChanged} when votes are on).
    function saleMint(address to, uint256 quantity) external returns (uint256 firstTokenId) {
        uint256 word;
        (firstTokenId, word) = _reserve(quantity);
        // after the role check, as before; a zero booking changed nothing and reverts here
        if (quantity == 0) revert FanCollectionZeroQuantity();
        // `end` <= maxSupply + 1 < 2**33: no overflow
        unchecked {
            uint256 end = firstTokenId + quantity;
            for (uint256 id = firstTokenId; id < end; ++id) {
                _mintOne(to, id, word);
            }
        }
    }

    /// @notice Mints the next token to `to`.
    /// @return tokenId the id minted.
    ///
    /// Requirements: the caller has MINTER_ROLE; the max supply is not reached; `to` is not zero.
    ///
    /// Emits: {Transfer} (and {IVotes-DelegateVotesChanged} when votes are on).
    function mint(address to) external returns (uint256 tokenId) {
        uint256 word;
        (tokenId, word) = _reserve(1);
        _mintOne(to, tokenId, word);
    }

    /// @notice Burns `tokenId` (also on soulbound collections).
    ///
    /// Requirements: the caller owns `tokenId` or is approved for it.
    ///
    /// Emits: {Transfer} to the zero address.
    function burn(uint256 tokenId) external {
        _update(address(0), tokenId, _msgSender());
        unchecked {
            ++_totalBurned;
        }
    }

    /// @dev Checks MINTER_ROLE (cached minter first) and books `quantity` ids with one read and one
    /// write of the hot word; returns the first id and the word as read (its flags: the mint reads
    /// no more).
    ///
    /// The cache is never the trusted forwarder (see {_grantRole}), so `msg.sender == minter` means
    /// a direct call from the cached MINTER_ROLE member, whose `_msgSender()` is `msg.sender`; any
    /// other caller, forwarded calls included, goes through {AccessControl-_checkRole}, which uses
    /// `_msgSender()`.
    function _reserve(uint256 quantity) private returns (uint256 first, uint256 word) {
        word = _hot;
        if (address(uint160(word >> _MINTER_SHIFT)) != msg.sender) _checkRole(MINTER_ROLE);
        uint256 minted = word & _MINTED_MASK;
        unchecked {
            // minted <= maxSupply always holds (every booking is checked against it)
            uint256 remaining = ((word >> _MAX_SHIFT) & _MINTED_MASK) - minted;
            if (quantity > remaining) revert FanCollectionMaxSupplyExceeded(quantity, remaining);
            _hot = word + quantity; // stays within the low 32 bits: minted + quantity <= maxSupply
            first = minted + 1;
        }
    }

    /// @dev Mints `tokenId` (a fresh sequential id) to `to`. With votes on, through {_mint} and
    /// {_update} (self-delegation, vote checkpoints). With votes off, {_update} would only add the
    /// soulbound check, which a mint (from the zero address) always passes, so this calls
    /// {ERC721-_update} directly with {ERC721-_mint}'s two checks. A soulbound token is locked
    /// from its mint on ({IERC5192-Locked}); `word` is the hot word {_reserve} read.
    function _mintOne(address to, uint256 tokenId, uint256 word) private {
        if (word & _VOTES_BIT != 0) {
            _mint(to, tokenId);
        } else {
            if (to == address(0)) revert ERC721InvalidReceiver(address(0));
            if (ERC721._update(to, tokenId, address(0)) != address(0)) revert ERC721InvalidSender(address(0));
        }
        if (word & _SOULBOUND_BIT != 0) emit Locked(tokenId);
    }

    // ----------------------------------------------------------------- perks

    /// @notice Sets the rule of `perkId`: `usesPerToken` uses per token (0 removes the perk) until
    /// `validUntil` (unix seconds, 0 = no end). Uses already made stay counted.
    ///
    /// Requirements: the caller has PERK_ADMIN_ROLE or DEFAULT_ADMIN_ROLE.
    ///
    /// Emits: {PerkSet}.
    function setPerk(uint256 perkId, uint32 usesPerToken, uint64 validUntil) external {
        if (!hasRole(PERK_ADMIN_ROLE, _msgSender())) _checkRole(DEFAULT_ADMIN_ROLE);
        _perks[perkId] = Perk(usesPerToken, validUntil);
        emit PerkSet(perkId, usesPerToken, validUntil);
    }

    /// @notice Marks one use of `perkId` on `tokenId` (a venue checked the ticket in).
    ///
    /// Requirements: the caller has VERIFIER_ROLE; `tokenId` exists; the perk is set, not expired,
    /// and the token has uses left.
    ///
    /// Emits: {PerkUsed} with the uses left after this one.
    function usePerk(uint256 tokenId, uint256 perkId) external onlyRole(VERIFIER_ROLE) returns (uint256 usesLeft) {
        _requireOwned(tokenId);
        Perk memory rule = _perks[perkId];
        if (rule.usesPerToken == 0) revert FanCollectionUnknownPerk(perkId);
        if (rule.validUntil != 0 && block.timestamp > rule.validUntil) {
            revert FanCollectionPerkExpired(perkId, rule.validUntil);
        }
        uint256 used = _perkUses[tokenId][perkId];
        if (used >= rule.usesPerToken) revert FanCollectionPerkUsedUp(tokenId, perkId);
        unchecked {
            _perkUses[tokenId][perkId] = used + 1;
            usesLeft = rule.usesPerToken - used - 1;
        }
        emit PerkUsed(tokenId, perkId, usesLeft);
    }

    /// @notice The rule of `perkId`.
    function perk(uint256 perkId) external view returns (uint32 usesPerToken, uint64 validUntil) {
        Perk memory p = _perks[perkId];
        return (p.usesPerToken, p.validUntil);
    }

    /// @notice How many uses of `perkId` `tokenId` has made.
    function perkUsesMade(uint256 tokenId, uint256 perkId) external view returns (uint256) {
        return _perkUses[tokenId][perkId];
    }

    /// @notice How many uses of `perkId` `tokenId` has left now (0 when expired or unknown).
    function perkUsesLeft(uint256 tokenId, uint256 perkId) external view returns (uint256) {
        Perk memory p = _perks[perkId];
        if (p.validUntil != 0 && block.timestamp > p.validUntil) return 0;
        uint256 used = _perkUses[tokenId][perkId];
        return used >= p.usesPerToken ? 0 : p.usesPerToken - used;
    }

    // ----------------------------------------------------------------- admin

    /// @notice Sets the metadata base URI (tokenURI = base + id).
    ///
    /// Requirements: the caller has DEFAULT_ADMIN_ROLE.
    ///
    /// Emits: {BaseURISet} and {IERC4906-BatchMetadataUpdate} over all minted ids.
    function setBaseURI(string calldata baseURI_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _baseTokenURI = baseURI_;
        emit BaseURISet(baseURI_);
        emit BatchMetadataUpdate(1, type(uint256).max);
    }

    /// @notice Sets the default royalty (ERC-2981) of every token.
    ///
    /// Requirements: the caller has DEFAULT_ADMIN_ROLE; `receiver` is not zero; `feeBps` <= 10000.
    function setDefaultRoyalty(address receiver, uint96 feeBps) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setDefaultRoyalty(receiver, feeBps);
    }

    // ----------------------------------------------------------------- views

    /// @notice The collection's category.
    function category() external view returns (Category) {
        return Category(uint8(_hot >> _CATEGORY_SHIFT));
    }

    /// @notice Whether transfers between holders are blocked.
    function soulbound() external view returns (bool) {
        return _hot & _SOULBOUND_BIT != 0;
    }

    /// @notice ERC-5192: whether `tokenId` is locked, i.e. the collection is soulbound. Reverts with
    /// {IERC721Errors-ERC721NonexistentToken} for a token that does not exist.
    function locked(uint256 tokenId) external view returns (bool) {
        _requireOwned(tokenId);
        return _hot & _SOULBOUND_BIT != 0;
    }

    /// @notice Whether tokens carry voting power (1 token = 1 vote).
    function votesEnabled() external view returns (bool) {
        return _hot & _VOTES_BIT != 0;
    }

    /// @notice The cap on tokens ever minted.
    function maxSupply() external view returns (uint256) {
        return (_hot >> _MAX_SHIFT) & _MINTED_MASK;
    }

    /// @notice Tokens ever minted (the last id minted).
    function totalMinted() external view returns (uint256) {
        return _hot & _MINTED_MASK;
    }

    /// @notice Tokens in existence (minted minus burned).
    function totalSupply() external view returns (uint256) {
        return (_hot & _MINTED_MASK) - _totalBurned;
    }

    /// @inheritdoc ERC721
    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(ERC721, ERC2981, AccessControl, IERC165)
        returns (bool)
    {
        // ERC-5192 only where tokens are locked: a marketplace reading it should not list them.
        if (interfaceId == type(IERC5192).interfaceId) return _hot & _SOULBOUND_BIT != 0;
        return interfaceId == bytes4(0x49064906) || ERC721.supportsInterface(interfaceId)
            || ERC2981.supportsInterface(interfaceId) || AccessControl.supportsInterface(interfaceId);
    }

    /// @notice Approves `to` for `tokenId`; refused on a soulbound collection (its tokens are
    /// locked, an approval could only mislead a marketplace).
    function approve(address to, uint256 tokenId) public override(ERC721, IERC721) {
        if (_hot & _SOULBOUND_BIT != 0) revert FanCollectionApprovalDisabled();
        super.approve(to, tokenId);
    }

    /// @notice Approves `operator` for every token of the caller; refused on a soulbound collection.
    function setApprovalForAll(address operator, bool approved) public override(ERC721, IERC721) {
        if (_hot & _SOULBOUND_BIT != 0) revert FanCollectionApprovalDisabled();
        super.setApprovalForAll(operator, approved);
    }

    // ----------------------------------------------------------------- internals

    /// @dev Soulbound check, then either plain ERC-721 bookkeeping (votes off: the flags come from
    /// one read of the hot word) or votes bookkeeping with self-delegation of a receiver who has no
    /// delegate. Used by transfers, burns and votes-on mints (see {_mintOne}).
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        uint256 word = _hot;
        if (word & _VOTES_BIT == 0) {
            from = ERC721._update(to, tokenId, auth);
        } else {
            if (to != address(0) && delegates(to) == address(0)) _delegate(to, to);
            from = super._update(to, tokenId, auth);
        }
        if (word & _SOULBOUND_BIT != 0 && from != address(0) && to != address(0)) {
            revert FanCollectionSoulbound(tokenId);
        }
    }

    /// @dev Delegation only exists when votes are on (otherwise it would checkpoint phantom votes).
    function _delegate(address account, address delegatee) internal override {
        if (_hot & _VOTES_BIT == 0) revert FanCollectionVotesDisabled();
        super._delegate(account, delegatee);
    }

    /// @dev Caches the first MINTER_ROLE member in the hot word (see the contract notes), unless it
    /// is the trusted forwarder: {_reserve}'s fast path compares the cache with `msg.sender`.
    function _grantRole(bytes32 role, address account) internal override returns (bool granted) {
        granted = super._grantRole(role, account);
        if (granted && role == MINTER_ROLE && account != trustedForwarder()) {
            uint256 word = _hot;
            if (word >> _MINTER_SHIFT == 0) _hot = word | (uint256(uint160(account)) << _MINTER_SHIFT);
        }
    }

    /// @dev Clears the minter cache when its member loses MINTER_ROLE.
    function _revokeRole(bytes32 role, address account) internal override returns (bool revoked) {
        revoked = super._revokeRole(role, account);
        if (revoked && role == MINTER_ROLE) {
            uint256 word = _hot;
            if (address(uint160(word >> _MINTER_SHIFT)) == account) _hot = word & type(uint96).max;
        }
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
