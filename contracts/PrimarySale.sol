// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Context} from "@openzeppelin/contracts/utils/Context.sol";
import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IMintableCollection} from "./interfaces/IMintableCollection.sol";

/// @title PrimarySale
/// @notice Primary sale of NFT collections (fan cards, tickets, resident cards...) for an ERC-20:
/// a town's RegionPoints or a yen stablecoin. Each listing has a price, a sale window, a supply, a
/// per-wallet cap, a lister and a split (basis points) between the lister and the town treasury,
/// and may be limited to an allowlist: a voucher signed (EIP-712) by a SIGNER_ROLE backend key that
/// binds the buyer, the listing, a maximum quantity, a one-time nonce and a deadline (the chain id
/// and this contract are bound by the EIP-712 domain). Card sales confirmed by the payment provider
/// are minted by the backend with {mintPaidOffChain}.
///
/// Payments go straight from the buyer to the lister and the treasury (this contract holds no
/// funds). Counters (sold, per-wallet) are updated before any external call and every entry point
/// is nonReentrant, so caps and supply hold even if the buyer re-enters from onERC721Received.
/// When the payment token is RegionPoints in MERCHANTS_ONLY mode, the lister and the treasury must
/// be registered merchants of that town.
contract PrimarySale is AccessControl, EIP712, ReentrancyGuardTransient, ERC2771Context {
    using SafeERC20 for IERC20;

    bytes32 public constant LISTING_ADMIN_ROLE = keccak256("LISTING_ADMIN_ROLE");
    bytes32 public constant SIGNER_ROLE = keccak256("SIGNER_ROLE");
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    bytes32 public constant VOUCHER_TYPEHASH =
        keccak256("Voucher(address buyer,uint256 listingId,uint256 maxQuantity,uint256 nonce,uint256 deadline)");

    uint16 public constant MAX_BPS = 10_000;

    struct Listing {
        address collection;
        uint16 listerBps; // lister's share; the treasury gets the rest
        uint40 start; // inclusive
        uint40 end; // exclusive
        address paymentToken;
        uint32 walletCap;
        uint32 supply;
        uint32 sold;
        address lister;
        bool allowlistOnly;
        bool paused;
        uint256 price; // per token, in payment-token units
    }

    /// @notice An allowlist voucher; `signature` is an EIP-712 signature over
    /// Voucher(buyer, listingId, maxQuantity, nonce, deadline) by a SIGNER_ROLE account.
    /// Pass an empty voucher for listings that are not allowlist-only.
    struct Voucher {
        uint256 maxQuantity;
        uint256 nonce;
        uint256 deadline;
        bytes signature;
    }

    address public treasury;
    uint256 public listingCount;
    mapping(uint256 listingId => Listing) private _listings;
    mapping(uint256 listingId => mapping(address wallet => uint256)) public mintedBy;
    mapping(address buyer => mapping(uint256 nonce => bool)) public voucherUsed;
    mapping(bytes32 paymentRef => bool) public paymentRefUsed;

    event ListingCreated(
        uint256 indexed listingId,
        address indexed collection,
        address indexed paymentToken,
        address lister,
        uint256 price,
        uint32 supply
    );
    event ListingPausedSet(uint256 indexed listingId, bool paused);
    event TreasurySet(address indexed treasury);
    /// @dev Emitted when `buyer` bought `quantity` tokens from `firstTokenId` for `paid`, of which
    /// `listerAmount` went to the lister and the rest to the treasury.
    event Purchased(
        uint256 indexed listingId,
        address indexed buyer,
        uint256 quantity,
        uint256 firstTokenId,
        uint256 paid,
        uint256 listerAmount
    );
    /// @dev Emitted when a voucher of `buyer` with `nonce` was used.
    event VoucherRedeemed(address indexed buyer, uint256 indexed nonce);
    /// @dev Emitted when tokens paid off chain (card, reference `paymentRef`) were minted to `to`.
    event PaidOffChainMinted(
        uint256 indexed listingId, address indexed to, uint256 quantity, uint256 firstTokenId, bytes32 indexed paymentRef
    );

    error PrimarySaleInvalidAdmin();
    error PrimarySaleInvalidTreasury(address treasury);
    error PrimarySaleInvalidListing();
    error PrimarySaleUnknownListing(uint256 listingId);
    error PrimarySaleListingPaused(uint256 listingId);
    error PrimarySaleNotOpen(uint256 listingId, uint40 start, uint40 end);
    error PrimarySaleZeroQuantity();
    error PrimarySaleSupplyExceeded(uint256 listingId, uint256 requested, uint256 remaining);
    error PrimarySaleWalletCapExceeded(uint256 listingId, address wallet, uint256 requested, uint256 remaining);
    error PrimarySaleVoucherExpired(uint256 deadline);
    error PrimarySaleVoucherUsed(address buyer, uint256 nonce);
    error PrimarySaleInvalidVoucherSigner(address signer);
    error PrimarySaleVoucherQuantityExceeded(uint256 requested, uint256 maxQuantity);
    error PrimarySalePaymentRefUsed(bytes32 paymentRef);

    /// @param admin gets DEFAULT_ADMIN_ROLE and LISTING_ADMIN_ROLE; grant SIGNER_ROLE and MINTER_ROLE explicitly.
    /// @param treasury_ the town treasury that receives the non-lister share.
    /// @param trustedForwarder_ the platform's ERC-2771 forwarder; 0 disables it.
    constructor(address admin, address treasury_, address trustedForwarder_)
        EIP712("FurusatoPrimarySale", "1")
        ERC2771Context(trustedForwarder_)
    {
        if (admin == address(0)) revert PrimarySaleInvalidAdmin();
        if (treasury_ == address(0)) revert PrimarySaleInvalidTreasury(treasury_);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(LISTING_ADMIN_ROLE, admin);
        treasury = treasury_;
        emit TreasurySet(treasury_);
    }

    // ------------------------------------------------------------------ admin

    /// @notice Creates a listing; ids start at 1.
    ///
    /// Requirements:
    /// - the caller has LISTING_ADMIN_ROLE;
    /// - collection, payment token and lister are not zero; `listerBps` <= 10,000;
    /// - start < end; supply > 0; walletCap > 0; `sold` and `paused` are ignored.
    ///
    /// Emits: {ListingCreated}.
    function createListing(Listing calldata p) external onlyRole(LISTING_ADMIN_ROLE) returns (uint256 listingId) {
        if (
            p.collection == address(0) || p.paymentToken == address(0) || p.lister == address(0)
                || p.listerBps > MAX_BPS || p.start >= p.end || p.supply == 0 || p.walletCap == 0
        ) revert PrimarySaleInvalidListing();
        listingId = ++listingCount;
        Listing memory l = p;
        l.sold = 0;
        l.paused = false;
        _listings[listingId] = l;
        emit ListingCreated(listingId, p.collection, p.paymentToken, p.lister, p.price, p.supply);
    }

    /// @notice Pauses or resumes sales of one listing (including {mintPaidOffChain}).
    ///
    /// Requirements: the caller has LISTING_ADMIN_ROLE; the listing exists.
    ///
    /// Emits: {ListingPausedSet}.
    function setListingPaused(uint256 listingId, bool paused_) external onlyRole(LISTING_ADMIN_ROLE) {
        _existing(listingId).paused = paused_;
        emit ListingPausedSet(listingId, paused_);
    }

    /// @notice Changes the town treasury.
    ///
    /// Requirements: the caller has DEFAULT_ADMIN_ROLE; `treasury_` is not zero.
    ///
    /// Emits: {TreasurySet}.
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (treasury_ == address(0)) revert PrimarySaleInvalidTreasury(treasury_);
        treasury = treasury_;
        emit TreasurySet(treasury_);
    }

    // ------------------------------------------------------------------ sales

    /// @notice Buys `quantity` tokens of `listingId` for the caller, paying price * quantity from the
    /// caller's allowance to this contract.
    ///
    /// Requirements:
    /// - the listing exists, is not paused and its sale window is open;
    /// - allowlist-only listings: a valid, unused, unexpired voucher for the caller and this listing
    ///   with `quantity` <= its maxQuantity;
    /// - 0 < `quantity`; the supply and the caller's per-wallet cap are not exceeded;
    /// - the caller approved and holds price * quantity of the payment token.
    ///
    /// Emits: {Purchased} (and {VoucherRedeemed} for allowlist-only listings).
    function buy(uint256 listingId, uint256 quantity, Voucher calldata voucher)
        external
        nonReentrant
        returns (uint256 firstTokenId)
    {
        return _buy(listingId, _msgSender(), quantity, voucher);
    }

    /// @notice {buy} after an EIP-2612 permit of exactly price * quantity to this contract, in one
    /// transaction. A permit that fails (e.g. front-run) is ignored when the allowance suffices;
    /// otherwise its error is re-thrown.
    ///
    /// Requirements: those of {buy}; the payment token supports EIP-2612.
    ///
    /// Emits: {Approval} (from the token), {Purchased}.
    function buyWithPermit(
        uint256 listingId,
        uint256 quantity,
        Voucher calldata voucher,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant returns (uint256 firstTokenId) {
        address buyer = _msgSender();
        Listing storage l = _existing(listingId);
        uint256 total = l.price * quantity;
        address token = l.paymentToken;
        try IERC20Permit(token).permit(buyer, address(this), total, permitDeadline, v, r, s) {}
        catch (bytes memory reason) {
            if (IERC20(token).allowance(buyer, address(this)) < total) {
                assembly ("memory-safe") {
                    revert(add(reason, 0x20), mload(reason))
                }
            }
        }
        return _buy(listingId, buyer, quantity, voucher);
    }

    /// @notice Mints `quantity` tokens of `listingId` to `to` for a payment the backend confirmed off
    /// chain (card), identified by `paymentRef`. The sale window and allowlist were checked when
    /// the payment was taken; supply and the per-wallet cap are enforced here.
    ///
    /// Requirements:
    /// - the caller has MINTER_ROLE; the listing exists and is not paused;
    /// - `paymentRef` was never used; 0 < `quantity`; supply and `to`'s cap are not exceeded.
    ///
    /// Emits: {PaidOffChainMinted}.
    function mintPaidOffChain(uint256 listingId, address to, uint256 quantity, bytes32 paymentRef)
        external
        nonReentrant
        onlyRole(MINTER_ROLE)
        returns (uint256 firstTokenId)
    {
        if (paymentRefUsed[paymentRef]) revert PrimarySalePaymentRefUsed(paymentRef);
        paymentRefUsed[paymentRef] = true;
        Listing storage l = _existing(listingId);
        if (l.paused) revert PrimarySaleListingPaused(listingId);
        _reserve(l, listingId, to, quantity);
        firstTokenId = IMintableCollection(l.collection).saleMint(to, quantity);
        emit PaidOffChainMinted(listingId, to, quantity, firstTokenId, paymentRef);
    }

    // ------------------------------------------------------------------ views

    function listing(uint256 listingId) external view returns (Listing memory) {
        return _listings[listingId];
    }

    /// @notice The EIP-712 digest a SIGNER_ROLE key signs for a voucher.
    function voucherDigest(address buyer, uint256 listingId, uint256 maxQuantity, uint256 nonce, uint256 deadline)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(VOUCHER_TYPEHASH, buyer, listingId, maxQuantity, nonce, deadline)));
    }

    // ------------------------------------------------------------------ internals

    function _buy(uint256 listingId, address buyer, uint256 quantity, Voucher calldata voucher)
        private
        returns (uint256 firstTokenId)
    {
        Listing storage l = _existing(listingId);
        if (l.paused) revert PrimarySaleListingPaused(listingId);
        if (block.timestamp < l.start || block.timestamp >= l.end) revert PrimarySaleNotOpen(listingId, l.start, l.end);
        if (l.allowlistOnly) _useVoucher(buyer, listingId, quantity, voucher);
        _reserve(l, listingId, buyer, quantity);

        uint256 total = l.price * quantity;
        uint256 listerAmount = total * l.listerBps / MAX_BPS;
        IERC20 token = IERC20(l.paymentToken);
        // `buyer` is always the caller: _msgSender() of {buy} / {buyWithPermit} (docs/slither.md).
        // slither-disable-next-line arbitrary-send-erc20
        if (listerAmount != 0) token.safeTransferFrom(buyer, l.lister, listerAmount);
        // slither-disable-next-line arbitrary-send-erc20
        if (total != listerAmount) token.safeTransferFrom(buyer, treasury, total - listerAmount);

        firstTokenId = IMintableCollection(l.collection).saleMint(buyer, quantity);
        emit Purchased(listingId, buyer, quantity, firstTokenId, total, listerAmount);
    }

    /// @dev Checks and books supply and the wallet cap before any external call.
    function _reserve(Listing storage l, uint256 listingId, address wallet, uint256 quantity) private {
        if (quantity == 0) revert PrimarySaleZeroQuantity();
        uint256 remaining = l.supply - l.sold;
        if (quantity > remaining) revert PrimarySaleSupplyExceeded(listingId, quantity, remaining);
        uint256 minted = mintedBy[listingId][wallet];
        uint256 walletLeft = minted >= l.walletCap ? 0 : l.walletCap - minted;
        if (quantity > walletLeft) revert PrimarySaleWalletCapExceeded(listingId, wallet, quantity, walletLeft);
        l.sold += uint32(quantity);
        mintedBy[listingId][wallet] = minted + quantity;
    }

    function _useVoucher(address buyer, uint256 listingId, uint256 quantity, Voucher calldata voucher) private {
        if (block.timestamp > voucher.deadline) revert PrimarySaleVoucherExpired(voucher.deadline);
        if (voucherUsed[buyer][voucher.nonce]) revert PrimarySaleVoucherUsed(buyer, voucher.nonce);
        if (quantity > voucher.maxQuantity) revert PrimarySaleVoucherQuantityExceeded(quantity, voucher.maxQuantity);
        bytes32 digest = voucherDigest(buyer, listingId, voucher.maxQuantity, voucher.nonce, voucher.deadline);
        // The third value (the error's argument) only details a malformed signature, which is
        // rejected by `err` below with PrimarySaleInvalidVoucherSigner.
        // slither-disable-next-line unused-return
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, voucher.signature);
        if (err != ECDSA.RecoverError.NoError || !hasRole(SIGNER_ROLE, signer)) {
            revert PrimarySaleInvalidVoucherSigner(signer);
        }
        voucherUsed[buyer][voucher.nonce] = true;
        emit VoucherRedeemed(buyer, voucher.nonce);
    }

    function _existing(uint256 listingId) private view returns (Listing storage l) {
        l = _listings[listingId];
        if (l.collection == address(0)) revert PrimarySaleUnknownListing(listingId);
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
