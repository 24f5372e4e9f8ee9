// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {Context} from "@openzeppelin/contracts/utils/Context.sol";
import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @notice What a partner town's points contract must answer (implemented by {RegionPoints}).
interface IRegionPointsPartner {
    function partnerIntent(address town) external view returns (bool);
    function isActiveMerchant(address account) external view returns (bool);
}

/// @title RegionPoints
/// @notice A town's regional points (地域ポイント): 1 point is 1 point (no decimals). One contract per town.
///
/// Points are issued under a programme (a thank-you, a prize, a purchase premium...) that fixes how
/// many days they live. Holders spend them at registered merchants; merchants redeem (burn) them and
/// the town settles in yen off chain.
///
/// Expiry (see docs/adr/0002-points-expiry.md): every issuance is a lot that expires at the start
/// (00:00 JST) of day `issueDay + expiryDays + 1`. The contract counts, per expiry day, the points
/// issued and keeps the earliest pending expiry in the same storage slot as the pause flag and the
/// transfer policy. From that moment on, NO transfer, payment, partner payment or redemption can
/// execute until the EXPIRER (the indexer) has burned the expired lots (oldest first, per holder,
/// as computed from this contract's own events) and called {completeSweep}. Balances are frozen
/// while a sweep is pending, so an expired point can never be paid or redeemed; the contract also
/// caps the points burned for a day at the points issued for that day.
///
/// Partner towns (共同利用): two towns that both called {setPartner} for each other accept each
/// other's points. A holder of this town's points pays a merchant of the partner town with
/// {payPartnerMerchant}: the points are burned here (counted as redeemed) and
/// {PartnerPaymentAccepted} records the amount this town owes the merchant's town; the merchant's
/// town settles its merchant in yen and clears the sum of these events with this town.
contract RegionPoints is ERC20, ERC20Permit, AccessControl, Pausable, ERC2771Context {
    bytes32 public constant ISSUER_ROLE = keccak256("ISSUER_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    bytes32 public constant MERCHANT_ADMIN_ROLE = keccak256("MERCHANT_ADMIN_ROLE");
    bytes32 public constant EXPIRER_ROLE = keccak256("EXPIRER_ROLE");

    /// @notice Expiry days start at 00:00 JST (UTC+9).
    uint256 public constant DAY_OFFSET = 9 hours;
    /// @notice Longest programme lifetime, which bounds the scan for the next expiry day.
    uint32 public constant MAX_EXPIRY_DAYS = 3650;

    enum TransferPolicy {
        OPEN,
        MERCHANTS_ONLY
    }

    enum MerchantStatus {
        NONE,
        ACTIVE,
        SUSPENDED
    }

    /// @dev Everything a transfer reads, packed in ONE storage slot.
    struct Config {
        bool paused;
        TransferPolicy policy;
        uint40 sweepDueAt; // start of the earliest expiry day not yet swept; 0 = none
    }

    struct Programme {
        uint32 expiryDays; // 0 = the points never expire
        bool active;
    }

    Config private _config;
    mapping(uint256 programmeId => Programme) private _programmes;
    mapping(address account => MerchantStatus) private _merchants;
    mapping(address town => bool) private _partnerIntent;
    mapping(uint256 day => uint256) private _expiringOn;
    mapping(uint256 word => uint256) private _expiryDayBits;
    uint256 private _lastExpiryDay;

    /// @notice Points ever issued, redeemed (including partner payments) and expired.
    uint256 public totalIssued;
    uint256 public totalRedeemed;
    uint256 public totalExpired;

    /// @dev Emitted when `amount` points were issued to `to` under `programmeId` for `reason`.
    event PointsIssued(address indexed to, uint256 amount, uint256 indexed programmeId, string reason);
    /// @dev Emitted once per {issueBatch}: `recipients` accounts received `total` points (see their
    /// {Transfer} events) expiring at `expiresAt` (0 = never).
    event PointsBatchIssued(
        uint256 indexed programmeId, uint256 recipients, uint256 total, uint40 expiresAt, string reason
    );
    /// @dev Emitted when merchant `merchant` redeemed (burned) `amount` points for settlement `ref`.
    event PointsRedeemed(address indexed merchant, uint256 amount, bytes32 indexed ref);
    /// @dev Emitted when the sweep burned `amount` expired points of `holder` from the lots of `day`.
    event PointsExpired(address indexed holder, uint256 amount, uint256 indexed day);
    /// @dev Emitted when the sweep of expiry `day` was completed; `nextDueAt` is the next expiry (0 = none).
    event ExpirySweepCompleted(uint256 indexed day, uint40 nextDueAt);
    event ProgrammeSet(uint256 indexed programmeId, uint32 expiryDays, bool active);
    event TransferPolicySet(TransferPolicy policy);
    event MerchantAdded(address indexed merchant);
    event MerchantSuspended(address indexed merchant);
    event MerchantRemoved(address indexed merchant);
    /// @dev Emitted when this town declared (or withdrew) its agreement to partner with `town`.
    event PartnerSet(address indexed town, bool accepted);
    /// @dev Emitted when `payer` paid `amount` of `payerTown`'s points to `merchant` of `merchantTown`:
    /// `payerTown` owes `merchantTown` `amount` points' worth of yen.
    event PartnerPaymentAccepted(
        address indexed payerTown,
        address indexed merchantTown,
        address indexed merchant,
        uint256 amount,
        address payer,
        bytes32 ref
    );

    error RegionPointsInvalidAdmin();
    error RegionPointsZeroAmount();
    error RegionPointsLengthMismatch(uint256 recipients, uint256 amounts);
    error RegionPointsProgrammeInactive(uint256 programmeId);
    error RegionPointsInvalidExpiry(uint32 expiryDays);
    error RegionPointsRecipientNotMerchant(address to);
    error RegionPointsInvalidMerchant(address account);
    error RegionPointsMerchantAlreadyActive(address account);
    error RegionPointsMerchantNotActive(address account);
    error RegionPointsUnknownMerchant(address account);
    error RegionPointsExpirySweepPending(uint40 dueAt);
    error RegionPointsNotYetExpired(uint256 day);
    error RegionPointsSweepNotDue(uint256 day, uint40 dueAt);
    error RegionPointsExpiryExceedsLots(uint256 day, uint256 requested, uint256 remaining);
    error RegionPointsInvalidPartner(address town);
    error RegionPointsNotPartner(address town);
    error RegionPointsNotPartnerMerchant(address town, address merchant);

    /// @param admin gets DEFAULT_ADMIN_ROLE and ISSUER_ROLE; grant the other roles explicitly.
    /// @param trustedForwarder_ the platform's ERC-2771 forwarder (FurusatoForwarder); 0 disables it.
    constructor(string memory name_, string memory symbol_, address admin, address trustedForwarder_)
        ERC20(name_, symbol_)
        ERC20Permit(name_)
        ERC2771Context(trustedForwarder_)
    {
        if (admin == address(0)) revert RegionPointsInvalidAdmin();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ISSUER_ROLE, admin);
    }

    // ------------------------------------------------------------------ views

    /// @notice Points are whole: 1 point = 1 unit.
    function decimals() public pure override returns (uint8) {
        return 0;
    }

    /// @inheritdoc Pausable
    function paused() public view override returns (bool) {
        return _config.paused;
    }

    function transferPolicy() external view returns (TransferPolicy) {
        return _config.policy;
    }

    /// @notice Start of the earliest expiry day not yet swept (0 = none). Transfers stop from then on.
    function sweepDueAt() external view returns (uint40) {
        return _config.sweepDueAt;
    }

    function programme(uint256 programmeId) external view returns (uint32 expiryDays, bool active) {
        Programme memory p = _programmes[programmeId];
        return (p.expiryDays, p.active);
    }

    function merchantStatus(address account) external view returns (MerchantStatus) {
        return _merchants[account];
    }

    function isActiveMerchant(address account) public view returns (bool) {
        return _merchants[account] == MerchantStatus.ACTIVE;
    }

    /// @notice Whether this town declared it accepts `town` as a partner (one side of the agreement).
    function partnerIntent(address town) external view returns (bool) {
        return _partnerIntent[town];
    }

    /// @notice Whether this town and `town` both agreed to be partners.
    function isPartner(address town) public view returns (bool) {
        return _partnerIntent[town] && IRegionPointsPartner(town).partnerIntent(address(this));
    }

    /// @notice Points issued for expiry `day` not yet burned by a sweep (some may have been spent).
    function expiringOn(uint256 day) external view returns (uint256) {
        return _expiringOn[day];
    }

    /// @notice The expiry day (JST day number) of the points issued now under a programme of
    /// `expiryDays` days, and the time they expire; (0, 0) when they never expire.
    function expiryOf(uint32 expiryDays) public view returns (uint256 day, uint40 expiresAt) {
        if (expiryDays == 0) return (0, 0);
        day = (block.timestamp + DAY_OFFSET) / 1 days + expiryDays + 1;
        expiresAt = _dayStart(day);
    }

    // ------------------------------------------------------------------ issuing

    /// @notice Issues `amount` points to `to` under `programmeId`.
    ///
    /// Requirements:
    /// - the caller has ISSUER_ROLE; the contract is not paused;
    /// - `programmeId` is active; `amount` > 0; `to` is not the zero address.
    ///
    /// Emits: {PointsIssued} and {Transfer}.
    function issue(address to, uint256 amount, uint256 programmeId, string calldata reason)
        external
        onlyRole(ISSUER_ROLE)
        whenNotPaused
    {
        if (amount == 0) revert RegionPointsZeroAmount();
        _recordLot(programmeId, amount);
        _mint(to, amount);
        emit PointsIssued(to, amount, programmeId, reason);
    }

    /// @notice Issues `amounts[i]` points to `to[i]` under one programme and reason; one lot.
    /// Costs about 25,000 gas per new recipient: one summary event, no per-recipient string.
    ///
    /// Requirements:
    /// - the caller has ISSUER_ROLE; the contract is not paused; `programmeId` is active;
    /// - `to` and `amounts` have the same length; every amount > 0; no recipient is the zero address.
    ///
    /// Emits: one {Transfer} per recipient and one {PointsBatchIssued}.
    function issueBatch(
        address[] calldata to,
        uint256[] calldata amounts,
        uint256 programmeId,
        string calldata reason
    ) external onlyRole(ISSUER_ROLE) whenNotPaused {
        uint256 n = to.length;
        if (n != amounts.length) revert RegionPointsLengthMismatch(n, amounts.length);
        uint256 total = 0;
        for (uint256 i; i < n; ++i) {
            uint256 amount = amounts[i];
            if (amount == 0) revert RegionPointsZeroAmount();
            total += amount;
            _mint(to[i], amount);
        }
        if (total == 0) revert RegionPointsZeroAmount();
        uint40 expiresAt = _recordLot(programmeId, total);
        emit PointsBatchIssued(programmeId, n, total, expiresAt, reason);
    }

    /// @notice Creates or changes a programme. Changing `expiryDays` affects only later issuances.
    ///
    /// Requirements: the caller has DEFAULT_ADMIN_ROLE; `expiryDays` <= MAX_EXPIRY_DAYS.
    ///
    /// Emits: {ProgrammeSet}.
    function setProgramme(uint256 programmeId, uint32 expiryDays, bool active) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (expiryDays > MAX_EXPIRY_DAYS) revert RegionPointsInvalidExpiry(expiryDays);
        _programmes[programmeId] = Programme(expiryDays, active);
        emit ProgrammeSet(programmeId, expiryDays, active);
    }

    // ------------------------------------------------------------------ policy and pause

    /// @notice OPEN: anyone may transfer to anyone. MERCHANTS_ONLY: a transfer's recipient must be an
    /// active merchant (people pay merchants; no person-to-person transfers); merchants redeem.
    ///
    /// Requirements: the caller has DEFAULT_ADMIN_ROLE.
    ///
    /// Emits: {TransferPolicySet}.
    function setTransferPolicy(TransferPolicy policy) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _config.policy = policy;
        emit TransferPolicySet(policy);
    }

    /// @notice Stops transfers, payments, issuing and redemption (not the expiry sweep).
    ///
    /// Requirements: the caller has PAUSER_ROLE; the contract is not paused.
    ///
    /// Emits: {Paused}.
    function pause() external onlyRole(PAUSER_ROLE) whenNotPaused {
        _config.paused = true;
        emit Paused(_msgSender());
    }

    /// @notice Resumes after {pause}.
    ///
    /// Requirements: the caller has PAUSER_ROLE; the contract is paused.
    ///
    /// Emits: {Unpaused}.
    function unpause() external onlyRole(PAUSER_ROLE) whenPaused {
        _config.paused = false;
        emit Unpaused(_msgSender());
    }

    // ------------------------------------------------------------------ merchants

    /// @notice Registers `account` as an active merchant (or reactivates a suspended one).
    ///
    /// Requirements: the caller has MERCHANT_ADMIN_ROLE; `account` is not zero and not already active.
    ///
    /// Emits: {MerchantAdded}.
    function addMerchant(address account) external onlyRole(MERCHANT_ADMIN_ROLE) {
        if (account == address(0)) revert RegionPointsInvalidMerchant(account);
        if (_merchants[account] == MerchantStatus.ACTIVE) revert RegionPointsMerchantAlreadyActive(account);
        _merchants[account] = MerchantStatus.ACTIVE;
        emit MerchantAdded(account);
    }

    /// @notice Suspends an active merchant: it can neither be paid nor redeem until re-added.
    ///
    /// Requirements: the caller has MERCHANT_ADMIN_ROLE; `account` is an active merchant.
    ///
    /// Emits: {MerchantSuspended}.
    function suspendMerchant(address account) external onlyRole(MERCHANT_ADMIN_ROLE) {
        if (_merchants[account] != MerchantStatus.ACTIVE) revert RegionPointsMerchantNotActive(account);
        _merchants[account] = MerchantStatus.SUSPENDED;
        emit MerchantSuspended(account);
    }

    /// @notice Removes a merchant (active or suspended) from the registry.
    ///
    /// Requirements: the caller has MERCHANT_ADMIN_ROLE; `account` is registered.
    ///
    /// Emits: {MerchantRemoved}.
    function removeMerchant(address account) external onlyRole(MERCHANT_ADMIN_ROLE) {
        if (_merchants[account] == MerchantStatus.NONE) revert RegionPointsUnknownMerchant(account);
        delete _merchants[account];
        emit MerchantRemoved(account);
    }

    /// @notice Burns `amount` of the caller's points for yen settlement `ref` (off chain).
    ///
    /// Requirements:
    /// - the caller is an active merchant; the contract is not paused; no expiry sweep is pending;
    /// - `amount` > 0 and the caller holds at least `amount`.
    ///
    /// Emits: {Transfer} to the zero address and {PointsRedeemed}.
    function redeem(uint256 amount, bytes32 ref) external {
        _requireSpendable(_config);
        address merchant = _msgSender();
        if (!isActiveMerchant(merchant)) revert RegionPointsMerchantNotActive(merchant);
        if (amount == 0) revert RegionPointsZeroAmount();
        _burn(merchant, amount);
        totalRedeemed += amount;
        emit PointsRedeemed(merchant, amount, ref);
    }

    // ------------------------------------------------------------------ partner towns

    /// @notice Declares (or withdraws) this town's agreement to partner with `town`. The partnership
    /// holds only while both towns declared it ({isPartner}).
    ///
    /// Requirements: the caller has DEFAULT_ADMIN_ROLE; `town` is a contract other than this one.
    ///
    /// Emits: {PartnerSet}.
    function setPartner(address town, bool accepted) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (town == address(this) || town.code.length == 0) revert RegionPointsInvalidPartner(town);
        _partnerIntent[town] = accepted;
        emit PartnerSet(town, accepted);
    }

    /// @notice Pays `amount` of this town's points to `merchant`, an active merchant of partner town
    /// `merchantTown`. The points are burned here (counted in {totalRedeemed}); the event is the
    /// claim `merchantTown` clears with this town. Works under both transfer policies.
    ///
    /// Requirements:
    /// - the contract is not paused and no expiry sweep is pending;
    /// - both towns agreed to be partners; `merchant` is active in `merchantTown`;
    /// - `amount` > 0 and the caller holds at least `amount`.
    ///
    /// Emits: {Transfer} to the zero address and {PartnerPaymentAccepted}.
    function payPartnerMerchant(address merchantTown, address merchant, uint256 amount, bytes32 ref) external {
        _requireSpendable(_config);
        if (!isPartner(merchantTown)) revert RegionPointsNotPartner(merchantTown);
        if (!IRegionPointsPartner(merchantTown).isActiveMerchant(merchant)) {
            revert RegionPointsNotPartnerMerchant(merchantTown, merchant);
        }
        if (amount == 0) revert RegionPointsZeroAmount();
        address payer = _msgSender();
        _burn(payer, amount);
        totalRedeemed += amount;
        emit PartnerPaymentAccepted(address(this), merchantTown, merchant, amount, payer, ref);
    }

    // ------------------------------------------------------------------ expiry sweep

    /// @notice Burns the expired points of expiry `day` still held by `holders` (oldest lots first,
    /// as the indexer computes them from this contract's events).
    ///
    /// Requirements:
    /// - the caller has EXPIRER_ROLE; expiry `day` has started;
    /// - `holders` and `amounts` have the same length; each holder holds its amount;
    /// - the total does not exceed the points of `day` not yet expired.
    ///
    /// Emits: {Transfer} to the zero address and {PointsExpired} per holder.
    function expire(uint256 day, address[] calldata holders, uint256[] calldata amounts)
        external
        onlyRole(EXPIRER_ROLE)
    {
        if (day > _lastExpiryDay || _dayStart(day) > block.timestamp) revert RegionPointsNotYetExpired(day);
        uint256 n = holders.length;
        if (n != amounts.length) revert RegionPointsLengthMismatch(n, amounts.length);
        uint256 total = 0;
        for (uint256 i; i < n; ++i) {
            _burn(holders[i], amounts[i]);
            total += amounts[i];
            emit PointsExpired(holders[i], amounts[i], day);
        }
        uint256 remaining = _expiringOn[day];
        if (total > remaining) revert RegionPointsExpiryExceedsLots(day, total, remaining);
        _expiringOn[day] = remaining - total;
        totalExpired += total;
    }

    /// @notice Declares the sweep of the earliest pending expiry `day` complete and moves the
    /// transfer stop to the next expiry day.
    ///
    /// Requirements: the caller has EXPIRER_ROLE; `day` is the pending expiry day and has started.
    ///
    /// Emits: {ExpirySweepCompleted}.
    function completeSweep(uint256 day) external onlyRole(EXPIRER_ROLE) {
        uint40 due = _config.sweepDueAt;
        if (due == 0 || day > _lastExpiryDay || _dayStart(day) != due) revert RegionPointsSweepNotDue(day, due);
        if (due > block.timestamp) revert RegionPointsNotYetExpired(day);
        uint256 next = _nextExpiryDayAfter(day);
        // `next` is a day number, 0 meaning "no later expiry day" (a sentinel, not a time to hit).
        // slither-disable-next-line incorrect-equality
        uint40 nextDueAt = next == 0 ? 0 : _dayStart(next);
        _config.sweepDueAt = nextDueAt;
        emit ExpirySweepCompleted(day, nextDueAt);
    }

    // ------------------------------------------------------------------ internals

    /// @dev Transfers between accounts pass the pause, the expiry stop and the transfer policy,
    /// all read from one storage slot (plus the recipient's merchant status under MERCHANTS_ONLY).
    /// The slot is read once, as a word: `paused` is bits 0-7, `policy` bits 8-15 and
    /// `sweepDueAt` bits 16-55 (Solidity packs struct members from the low-order end).
    function _update(address from, address to, uint256 value) internal override {
        if (from != address(0) && to != address(0)) {
            uint256 packed;
            assembly ("memory-safe") {
                packed := sload(_config.slot)
            }
            if (packed & 0xff != 0) revert EnforcedPause();
            uint256 due = (packed >> 16) & 0xffffffffff;
            if (due != 0 && block.timestamp >= due) revert RegionPointsExpirySweepPending(uint40(due));
            // An enum compared with a stored enum; no timestamp or balance is compared for equality.
            // slither-disable-next-line incorrect-equality
            if ((packed >> 8) & 0xff == uint8(TransferPolicy.MERCHANTS_ONLY) && _merchants[to] != MerchantStatus.ACTIVE) {
                revert RegionPointsRecipientNotMerchant(to);
            }
        }
        super._update(from, to, value);
    }

    function _requireSpendable(Config memory c) private view {
        if (c.paused) revert EnforcedPause();
        if (c.sweepDueAt != 0 && block.timestamp >= c.sweepDueAt) revert RegionPointsExpirySweepPending(c.sweepDueAt);
    }

    function _recordLot(uint256 programmeId, uint256 total) private returns (uint40 expiresAt) {
        Programme memory p = _programmes[programmeId];
        if (!p.active) revert RegionPointsProgrammeInactive(programmeId);
        totalIssued += total;
        if (p.expiryDays == 0) return 0;
        uint256 day;
        (day, expiresAt) = expiryOf(p.expiryDays);
        _expiringOn[day] += total;
        _expiryDayBits[day >> 8] |= 1 << (day & 0xff);
        if (day > _lastExpiryDay) _lastExpiryDay = day;
        uint40 due = _config.sweepDueAt;
        if (due == 0 || expiresAt < due) _config.sweepDueAt = expiresAt;
    }

    /// @dev The first day after `day` for which points were issued; 0 when there is none.
    function _nextExpiryDayAfter(uint256 day) private view returns (uint256) {
        uint256 last = _lastExpiryDay;
        if (day >= last) return 0;
        uint256 start = day + 1;
        uint256 word = start >> 8;
        uint256 bits = _expiryDayBits[word] & (type(uint256).max << (start & 0xff));
        // An empty bitmap word (no lots in these 256 days) is skipped; `bits` is not a time.
        // slither-disable-next-line incorrect-equality
        while (bits == 0) {
            ++word;
            if (word > last >> 8) return 0;
            bits = _expiryDayBits[word];
        }
        return (word << 8) + Math.log2(bits & (~bits + 1));
    }

    function _dayStart(uint256 day) private pure returns (uint40) {
        // Day 0 is the "none" sentinel (it maps to time 0), not a time to hit exactly.
        // slither-disable-next-line incorrect-equality
        return day == 0 ? 0 : uint40(day * 1 days - DAY_OFFSET);
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
