// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {Context} from "@openzeppelin/contracts/utils/Context.sol";
import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";

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
/// Expiry (see docs/adr/0002-points-expiry.md), in the spirit of ERC-7818: every issuance is a lot
/// that expires at the start (00:00 JST) of day `issueDay + expiryDays + 1`. Each holder keeps at
/// most MAX_LOTS lots (amount, expiry day), sorted by expiry. {balanceOf} leaves expired lots out,
/// so an expired point can never be paid or redeemed; a debit first burns the holder's expired
/// lots ({PointsExpired}, a {Transfer} to the zero address) and then consumes the lots that expire
/// first, then the points that never expire. Nothing waits for a sweep: {expire} only burns the
/// expired lots of holders who do not move (so that {totalSupply} and the indexer's totals follow),
/// it never gates spending. A person-to-person transfer moves the consumed lot pieces, with their
/// expiry, to the recipient ({PointsLotMoved}); points paid to an active merchant no longer expire
/// (merchant revenue is settled in yen).
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
    /// @notice The town's own settings, changed by its staff without a vote (docs/adr/0012):
    /// programmes (bounded by MAX_EXPIRY_DAYS), the transfer policy and partner towns.
    /// DEFAULT_ADMIN_ROLE (the town's timelock) is its admin: it grants and revokes it.
    bytes32 public constant SETTINGS_ROLE = keccak256("SETTINGS_ROLE");

    /// @notice Expiry days start at 00:00 JST (UTC+9).
    uint256 public constant DAY_OFFSET = 9 hours;
    /// @notice Longest programme lifetime.
    uint32 public constant MAX_EXPIRY_DAYS = 3650;
    /// @notice Lots a holder keeps; a further expiry day joins the lot expiring just before it.
    uint256 public constant MAX_LOTS = 16;
    /// @notice Supply cap: a lot's amount is stored in 96 bits.
    uint256 public constant MAX_SUPPLY = type(uint96).max;

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
    }

    struct Programme {
        uint32 expiryDays; // 0 = the points never expire
        bool active;
    }

    Config private _config;
    mapping(uint256 programmeId => Programme) private _programmes;
    mapping(address account => MerchantStatus) private _merchants;
    mapping(address town => bool) private _partnerIntent;
    /// @dev Per holder, up to MAX_LOTS lots `(expiryDay << 96) | amount`, sorted by expiry day,
    /// packed two per storage slot; the first zero entry ends the list.
    mapping(address holder => uint128[16]) private _lots;

    /// @notice Points ever issued, redeemed (including partner payments) and expired.
    uint256 public totalIssued;
    uint256 public totalRedeemed;
    uint256 public totalExpired;

    /// @dev Emitted when `amount` points were issued to `to` under `programmeId` for `reason`,
    /// expiring at `expiresAt` (0 = never); right after the mint's {Transfer}.
    event PointsIssued(
        address indexed to, uint256 amount, uint256 indexed programmeId, uint40 expiresAt, string reason
    );
    /// @dev Emitted once per {issueBatch}: `recipients` accounts received `total` points (see their
    /// {Transfer} events) expiring at `expiresAt` (0 = never).
    event PointsBatchIssued(
        uint256 indexed programmeId, uint256 recipients, uint256 total, uint40 expiresAt, string reason
    );
    /// @dev Emitted when merchant `merchant` redeemed (burned) `amount` points for settlement `ref`.
    event PointsRedeemed(address indexed merchant, uint256 amount, bytes32 indexed ref);
    /// @dev Emitted when `amount` expired points of `holder` were burned on JST `day`: all of its lots
    /// whose expiry day is `day` or earlier (right after their {Transfer} to the zero address).
    event PointsExpired(address indexed holder, uint256 amount, uint256 indexed day);
    /// @dev Emitted when a transfer moved `amount` points of `from`'s lot expiring on `day` to
    /// `to`'s lots (a recipient that is not an active merchant), after the transfer's {Transfer}.
    event PointsLotMoved(address indexed from, address indexed to, uint256 day, uint256 amount);
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
    error RegionPointsSupplyCapExceeded(uint256 supply);
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

    /// @notice The points `account` can spend now: its balance without its expired lots.
    function balanceOf(address account) public view override returns (uint256) {
        (uint256 expired,) = _expiredLots(account, _today());
        return super.balanceOf(account) - expired;
    }

    /// @notice The balance including expired lots not yet burned (what the {Transfer} events sum to).
    function rawBalanceOf(address account) external view returns (uint256) {
        return super.balanceOf(account);
    }

    /// @notice Points of `account` that have expired and are not yet burned.
    function expiredBalanceOf(address account) external view returns (uint256 amount) {
        (amount,) = _expiredLots(account, _today());
    }

    /// @notice The lots of `account` (expiry day, amount), soonest first, expired ones included
    /// until they are burned. Points not in a lot never expire.
    function lotsOf(address account) external view returns (uint256[] memory expiryDays, uint256[] memory amounts) {
        uint128[16] storage l = _lots[account];
        uint256 n;
        while (n < MAX_LOTS && l[n] != 0) ++n;
        expiryDays = new uint256[](n);
        amounts = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            expiryDays[i] = l[i] >> 96;
            amounts[i] = uint96(l[i]);
        }
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
        (uint256 day, uint40 expiresAt) = _recordIssue(programmeId, amount);
        _creditLot(to, day, amount);
        emit PointsIssued(to, amount, programmeId, expiresAt, reason);
    }

    /// @notice Issues `amounts[i]` points to `to[i]` under one programme and reason; one lot.
    /// One summary event, no per-recipient string; each recipient gets a lot.
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
            total += amounts[i];
        }
        if (total == 0) revert RegionPointsZeroAmount();
        (uint256 day, uint40 expiresAt) = _recordIssue(programmeId, total);
        for (uint256 i; i < n; ++i) {
            uint256 amount = amounts[i];
            if (amount == 0) revert RegionPointsZeroAmount();
            _creditLot(to[i], day, amount);
        }
        emit PointsBatchIssued(programmeId, n, total, expiresAt, reason);
    }

    /// @notice Creates or changes a programme. Changing `expiryDays` affects only later issuances.
    ///
    /// Requirements: the caller has SETTINGS_ROLE; `expiryDays` <= MAX_EXPIRY_DAYS.
    ///
    /// Emits: {ProgrammeSet}.
    function setProgramme(uint256 programmeId, uint32 expiryDays, bool active) external onlyRole(SETTINGS_ROLE) {
        if (expiryDays > MAX_EXPIRY_DAYS) revert RegionPointsInvalidExpiry(expiryDays);
        _programmes[programmeId] = Programme(expiryDays, active);
        emit ProgrammeSet(programmeId, expiryDays, active);
    }

    // ------------------------------------------------------------------ policy and pause

    /// @notice OPEN: anyone may transfer to anyone. MERCHANTS_ONLY: a transfer's recipient must be an
    /// active merchant (people pay merchants; no person-to-person transfers); merchants redeem.
    ///
    /// Requirements: the caller has SETTINGS_ROLE.
    ///
    /// Emits: {TransferPolicySet}.
    function setTransferPolicy(TransferPolicy policy) external onlyRole(SETTINGS_ROLE) {
        _config.policy = policy;
        emit TransferPolicySet(policy);
    }

    /// @notice Stops transfers, payments, issuing and redemption (not {expire}).
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
    /// - the caller is an active merchant; the contract is not paused;
    /// - `amount` > 0 and the caller holds at least `amount` unexpired points.
    ///
    /// Emits: {Transfer} to the zero address and {PointsRedeemed}.
    function redeem(uint256 amount, bytes32 ref) external {
        _requireNotPaused();
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
    /// Requirements: the caller has SETTINGS_ROLE; `town` is a contract other than this one.
    ///
    /// Emits: {PartnerSet}.
    function setPartner(address town, bool accepted) external onlyRole(SETTINGS_ROLE) {
        if (town == address(this) || town.code.length == 0) revert RegionPointsInvalidPartner(town);
        _partnerIntent[town] = accepted;
        emit PartnerSet(town, accepted);
    }

    /// @notice Pays `amount` of this town's points to `merchant`, an active merchant of partner town
    /// `merchantTown`. The points are burned here (counted in {totalRedeemed}); the event is the
    /// claim `merchantTown` clears with this town. Works under both transfer policies.
    ///
    /// Requirements:
    /// - the contract is not paused;
    /// - both towns agreed to be partners; `merchant` is active in `merchantTown`;
    /// - `amount` > 0 and the caller holds at least `amount` unexpired points.
    ///
    /// Emits: {Transfer} to the zero address and {PartnerPaymentAccepted}.
    function payPartnerMerchant(address merchantTown, address merchant, uint256 amount, bytes32 ref) external {
        _requireNotPaused();
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

    // ------------------------------------------------------------------ expiry

    /// @notice Burns the expired lots of `holders` (a holder without any is skipped). Only tidies
    /// {totalSupply} and the projections: expired points are already out of {balanceOf} and are
    /// burned by the holder's next debit anyway, so a late or missing call blocks nothing.
    ///
    /// Requirements: the caller has EXPIRER_ROLE.
    ///
    /// Emits: per holder with expired lots, {Transfer} to the zero address and {PointsExpired}.
    function expire(address[] calldata holders) external onlyRole(EXPIRER_ROLE) {
        uint256 today = _today();
        for (uint256 i; i < holders.length; ++i) {
            _burnExpired(holders[i], today);
        }
    }

    // ------------------------------------------------------------------ internals

    /// @dev Every debit burns the sender's expired lots first and then consumes its lots soonest
    /// expiry first; a transfer between accounts also passes the pause and the transfer policy,
    /// and moves the consumed lot pieces to a recipient that is not an active merchant.
    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0)) {
            super._update(from, to, value);
            uint256 supply = totalSupply();
            if (supply > MAX_SUPPLY) revert RegionPointsSupplyCapExceeded(supply);
            return;
        }
        uint256 today = _today();
        _burnExpired(from, today);
        bool keepsLots = false;
        if (to != address(0)) {
            Config memory c = _config;
            if (c.paused) revert EnforcedPause();
            bool merchant = _merchants[to] == MerchantStatus.ACTIVE;
            if (c.policy == TransferPolicy.MERCHANTS_ONLY && !merchant) revert RegionPointsRecipientNotMerchant(to);
            // A payment to a merchant ends the lots; a transfer to oneself keeps them (else it would
            // turn expiring points into points that never expire).
            keepsLots = to == from || !merchant;
        }
        super._update(from, to, value);
        (uint256[] memory pieces, uint256 n) = _consumeLots(from, value);
        if (keepsLots && n != 0) {
            _burnExpired(to, today);
            for (uint256 i; i < n; ++i) {
                uint256 day = pieces[i] >> 96;
                uint256 amount = uint96(pieces[i]);
                _addLot(to, day, amount);
                emit PointsLotMoved(from, to, day, amount);
            }
        }
    }

    /// @dev Mints `amount` to `to` as a lot of expiry `day` (0: points that never expire), after
    /// burning `to`'s expired lots so the new lot never joins an expired one.
    function _creditLot(address to, uint256 day, uint256 amount) private {
        if (day != 0) _burnExpired(to, _today());
        _mint(to, amount);
        if (day != 0) _addLot(to, day, amount);
    }

    function _recordIssue(uint256 programmeId, uint256 total) private returns (uint256 day, uint40 expiresAt) {
        Programme memory p = _programmes[programmeId];
        if (!p.active) revert RegionPointsProgrammeInactive(programmeId);
        totalIssued += total;
        return expiryOf(p.expiryDays);
    }

    /// @dev The leading lots of `holder` whose expiry day has come by `today`: their sum and count.
    function _expiredLots(address holder, uint256 today) private view returns (uint256 amount, uint256 k) {
        uint128[16] storage l = _lots[holder];
        for (; k < MAX_LOTS; ++k) {
            uint128 lot = l[k];
            if (lot == 0 || lot >> 96 > today) break;
            amount += uint96(lot);
        }
    }

    function _burnExpired(address holder, uint256 today) private {
        (uint256 amount, uint256 k) = _expiredLots(holder, today);
        if (k == 0) return;
        _dropLots(_lots[holder], k);
        super._update(holder, address(0), amount);
        totalExpired += amount;
        emit PointsExpired(holder, amount, today);
    }

    /// @dev Takes `value` from the lots of `holder`, soonest expiry first (what is left comes from
    /// points that never expire). Returns the pieces taken `(day << 96) | amount` and their count.
    function _consumeLots(address holder, uint256 value) private returns (uint256[] memory pieces, uint256 n) {
        uint128[16] storage l = _lots[holder];
        pieces = new uint256[](MAX_LOTS);
        uint256 k;
        while (value != 0 && k < MAX_LOTS) {
            uint128 lot = l[k];
            if (lot == 0) break;
            uint256 amount = uint96(lot);
            if (amount > value) {
                l[k] = lot - uint128(value);
                pieces[n++] = ((uint256(lot) >> 96) << 96) | value;
                break;
            }
            pieces[n++] = lot;
            value -= amount;
            ++k;
        }
        if (k != 0) _dropLots(l, k);
    }

    /// @dev Removes the first `k` lots, shifting the rest to the front.
    function _dropLots(uint128[16] storage l, uint256 k) private {
        uint256 i = k;
        for (; i < MAX_LOTS; ++i) {
            uint128 lot = l[i];
            if (lot == 0) break;
            l[i - k] = lot;
        }
        for (uint256 j = i - k; j < i; ++j) {
            l[j] = 0;
        }
    }

    /// @dev Adds `amount` to the lot of expiry `day` of `holder`. With MAX_LOTS lots already, the
    /// 17 lots (the new one included) become 16 by merging one lot into the lot expiring just
    /// before it, the one that loses the fewest point-days (amount x days shortened; the soonest
    /// on a tie). A merge only ever makes points expire sooner, never later, and dust sent to a
    /// holder to fill its list is what gets merged, not the holder's large lots.
    function _addLot(address holder, uint256 day, uint256 amount) private {
        uint128[16] storage l = _lots[holder];
        uint256 c = 0;
        uint256 p = MAX_LOTS;
        for (; c < MAX_LOTS; ++c) {
            uint128 lot = l[c];
            if (lot == 0) break;
            uint256 d = lot >> 96;
            // Lots are keyed by expiry day: equal days share a lot (no time is hit exactly).
            // slither-disable-next-line incorrect-equality
            if (d == day) {
                l[c] = lot + uint128(amount);
                return;
            }
            if (p == MAX_LOTS && d > day) p = c;
        }
        if (p == MAX_LOTS) p = c;
        if (c < MAX_LOTS) {
            for (uint256 i = c; i > p; --i) {
                l[i] = l[i - 1];
            }
            l[p] = uint128((day << 96) | amount);
            return;
        }
        _mergeInto16(l, p, uint128((day << 96) | amount));
    }

    function _mergeInto16(uint128[16] storage l, uint256 p, uint128 added) private {
        // Every element is written by the loop below before it is read.
        // slither-disable-next-line uninitialized-local
        uint256[17] memory all;
        for (uint256 i; i < 17; ++i) {
            all[i] = i < p ? l[i] : (i == p ? added : l[i - 1]);
        }
        uint256 best = 1;
        uint256 bestCost = type(uint256).max;
        for (uint256 i = 1; i < 17; ++i) {
            uint256 cost = uint96(all[i]) * ((all[i] >> 96) - (all[i - 1] >> 96));
            if (cost < bestCost) {
                bestCost = cost;
                best = i;
            }
        }
        all[best - 1] += uint96(all[best]);
        for (uint256 i; i < 16; ++i) {
            uint128 lot = uint128(all[i < best ? i : i + 1]);
            if (l[i] != lot) l[i] = lot;
        }
    }

    function _today() private view returns (uint256) {
        return (block.timestamp + DAY_OFFSET) / 1 days;
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
