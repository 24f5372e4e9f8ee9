// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";
import {Context} from "@openzeppelin/contracts/utils/Context.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IERC5805} from "@openzeppelin/contracts/interfaces/IERC5805.sol";

/// @title TownPoll
/// @notice Multi-option polls (e.g. five label-design candidates) under the same voting-power rules
/// as the town's governors: each poll names an ERC-5805 voting token (a {FanCollection} with votes,
/// or {ResidentPass}) and weighs each vote by `token.getPastVotes(voter, snapshot)`, where the
/// snapshot is the token clock just before the poll was created (so nobody can buy weight after
/// seeing the poll). One vote per account per poll, final. Polls are advisory: they execute
/// nothing (binding money decisions go through {TownGovernor}); see docs/adr/0003.
///
/// Verifiable from chain events alone: {PollCreated} carries the token, snapshot, deadline and the
/// option labels; each {VoteCast} carries voter, option and weight, and anyone can re-check every
/// weight with `getPastVotes` on the token and re-add the tallies.
///
/// Gasless: `castVoteBySig` takes the voter's EIP-712 `Ballot` signature from any relayer (the
/// domain binds chain id and this contract; `pollId` binds the poll; the one-vote rule stops
/// replays), and the platform's ERC-2771 forwarder is trusted for `castVote`.
contract TownPoll is AccessControl, ERC2771Context, EIP712 {
    /// @notice May create and cancel polls (municipal staff, the backend).
    bytes32 public constant POLL_CREATOR_ROLE = keccak256("POLL_CREATOR_ROLE");
    /// @notice EIP-712 type of a signed vote.
    bytes32 public constant BALLOT_TYPEHASH = keccak256("Ballot(uint256 pollId,uint8 option,address voter)");
    /// @notice The most options a poll can have.
    uint256 public constant MAX_OPTIONS = 32;

    /// @notice Where a poll is in its life.
    enum PollState {
        Active,
        Ended,
        Canceled
    }

    struct Poll {
        IERC5805 token;
        uint48 snapshot;
        uint48 deadline;
        uint8 optionCount;
        bool canceled;
        uint256 totalWeight;
    }

    uint256 private _pollCount;
    mapping(uint256 pollId => Poll) private _polls;
    mapping(uint256 pollId => mapping(uint256 option => uint256 weight)) private _tally;
    mapping(uint256 pollId => mapping(address voter => bool)) private _voted;

    /// @dev No poll has id `pollId`.
    error TownPollNonexistentPoll(uint256 pollId);
    /// @dev A poll needs 2 to {MAX_OPTIONS} options; `count` were given.
    error TownPollInvalidOptionCount(uint256 count);
    /// @dev A poll must last at least one clock unit.
    error TownPollInvalidDuration();
    /// @dev `token` is not a contract with an ERC-6372 clock.
    error TownPollInvalidToken(address token);
    /// @dev Poll `pollId` is not active (it ended or was canceled).
    error TownPollNotActive(uint256 pollId, PollState state);
    /// @dev `option` is not an option of poll `pollId`.
    error TownPollInvalidOption(uint256 pollId, uint8 option);
    /// @dev `voter` already voted in poll `pollId`.
    error TownPollAlreadyVoted(uint256 pollId, address voter);
    /// @dev `voter` had no voting power at the poll's snapshot.
    error TownPollNoVotingPower(uint256 pollId, address voter);
    /// @dev The signature is not `voter`'s signature of this ballot.
    error TownPollInvalidSignature(address voter);

    /// @dev Emitted when a poll was created; `options[i]` is option `i`'s label.
    event PollCreated(
        uint256 indexed pollId,
        address indexed token,
        address indexed creator,
        uint48 snapshot,
        uint48 deadline,
        string[] options,
        string description
    );
    /// @dev Emitted when `voter` voted for `option` with `weight` votes.
    event VoteCast(uint256 indexed pollId, address indexed voter, uint8 option, uint256 weight);
    /// @dev Emitted when a poll was canceled.
    event PollCanceled(uint256 indexed pollId);

    /// @param admin gets DEFAULT_ADMIN_ROLE and POLL_CREATOR_ROLE.
    /// @param trustedForwarder the platform's {FurusatoForwarder}.
    constructor(address admin, address trustedForwarder) ERC2771Context(trustedForwarder) EIP712("TownPoll", "1") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(POLL_CREATOR_ROLE, admin);
    }

    /// @notice Creates a poll over `token`'s voting power, open from now for `duration` clock units.
    /// @return pollId the new poll's id (sequential from 1).
    ///
    /// Requirements: the caller has POLL_CREATOR_ROLE; 2 to {MAX_OPTIONS} options; `duration` > 0;
    /// `token` has an ERC-6372 clock.
    ///
    /// Emits: {PollCreated}.
    function createPoll(IERC5805 token, string[] calldata options, uint48 duration, string calldata description)
        external
        onlyRole(POLL_CREATOR_ROLE)
        returns (uint256 pollId)
    {
        if (options.length < 2 || options.length > MAX_OPTIONS) revert TownPollInvalidOptionCount(options.length);
        if (duration == 0) revert TownPollInvalidDuration();
        if (address(token).code.length == 0) revert TownPollInvalidToken(address(token));
        uint48 now_ = token.clock();
        pollId = ++_pollCount;
        Poll storage p = _polls[pollId];
        p.token = token;
        p.snapshot = now_ - 1;
        p.deadline = now_ + duration;
        p.optionCount = uint8(options.length);
        emit PollCreated(pollId, address(token), _msgSender(), now_ - 1, now_ + duration, options, description);
    }

    /// @notice Cancels an active poll (its votes stay on chain but it has no result).
    ///
    /// Requirements: the caller has POLL_CREATOR_ROLE; the poll is active.
    ///
    /// Emits: {PollCanceled}.
    function cancelPoll(uint256 pollId) external onlyRole(POLL_CREATOR_ROLE) {
        _requireActive(pollId);
        _polls[pollId].canceled = true;
        emit PollCanceled(pollId);
    }

    /// @notice Votes for `option` in `pollId` with the caller's voting power at the snapshot.
    /// @return weight the votes counted.
    ///
    /// Requirements: the poll is active; `option` exists; the caller has not voted in it and had
    /// voting power at the snapshot.
    ///
    /// Emits: {VoteCast}.
    function castVote(uint256 pollId, uint8 option) external returns (uint256 weight) {
        return _castVote(pollId, _msgSender(), option);
    }

    /// @notice Votes for `voter`, who signed the EIP-712 `Ballot(pollId, option, voter)` (relayed).
    /// @return weight the votes counted.
    ///
    /// Requirements: `signature` is `voter`'s (EOA or ERC-1271) over this chain and contract; as
    /// {castVote} otherwise.
    ///
    /// Emits: {VoteCast}.
    function castVoteBySig(uint256 pollId, uint8 option, address voter, bytes calldata signature)
        external
        returns (uint256 weight)
    {
        bytes32 digest = _hashTypedDataV4(keccak256(abi.encode(BALLOT_TYPEHASH, pollId, option, voter)));
        if (!SignatureChecker.isValidSignatureNow(voter, digest, signature)) revert TownPollInvalidSignature(voter);
        return _castVote(pollId, voter, option);
    }

    /// @notice The state of `pollId`.
    function state(uint256 pollId) public view returns (PollState) {
        Poll storage p = _polls[pollId];
        if (address(p.token) == address(0)) revert TownPollNonexistentPoll(pollId);
        if (p.canceled) return PollState.Canceled;
        if (p.token.clock() > p.deadline) return PollState.Ended;
        return PollState.Active;
    }

    /// @notice The poll's token, snapshot, deadline (last clock value votes are taken), option count
    /// and total weight cast.
    function pollInfo(uint256 pollId)
        external
        view
        returns (address token, uint48 snapshot, uint48 deadline, uint8 optionCount, uint256 totalWeight)
    {
        Poll storage p = _polls[pollId];
        if (address(p.token) == address(0)) revert TownPollNonexistentPoll(pollId);
        return (address(p.token), p.snapshot, p.deadline, p.optionCount, p.totalWeight);
    }

    /// @notice The weight cast for each option of `pollId` (index = option).
    function results(uint256 pollId) external view returns (uint256[] memory tallies) {
        Poll storage p = _polls[pollId];
        if (address(p.token) == address(0)) revert TownPollNonexistentPoll(pollId);
        tallies = new uint256[](p.optionCount);
        for (uint256 i = 0; i < tallies.length; ++i) {
            tallies[i] = _tally[pollId][i];
        }
    }

    /// @notice Whether `voter` voted in `pollId`.
    function hasVoted(uint256 pollId, address voter) external view returns (bool) {
        return _voted[pollId][voter];
    }

    /// @notice The weight `voter` may cast in `pollId` (0 when none or already voted).
    function votingPower(uint256 pollId, address voter) external view returns (uint256) {
        Poll storage p = _polls[pollId];
        if (address(p.token) == address(0)) revert TownPollNonexistentPoll(pollId);
        if (_voted[pollId][voter]) return 0;
        return p.token.getPastVotes(voter, p.snapshot);
    }

    /// @notice How many polls were created (the last poll id).
    function pollCount() external view returns (uint256) {
        return _pollCount;
    }

    function _castVote(uint256 pollId, address voter, uint8 option) private returns (uint256 weight) {
        Poll storage p = _requireActive(pollId);
        if (option >= p.optionCount) revert TownPollInvalidOption(pollId, option);
        if (_voted[pollId][voter]) revert TownPollAlreadyVoted(pollId, voter);
        weight = p.token.getPastVotes(voter, p.snapshot);
        if (weight == 0) revert TownPollNoVotingPower(pollId, voter);
        _voted[pollId][voter] = true;
        _tally[pollId][option] += weight;
        p.totalWeight += weight;
        emit VoteCast(pollId, voter, option, weight);
    }

    function _requireActive(uint256 pollId) private view returns (Poll storage p) {
        PollState s = state(pollId);
        if (s != PollState.Active) revert TownPollNotActive(pollId, s);
        return _polls[pollId];
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
