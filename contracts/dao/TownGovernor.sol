// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {Governor} from "@openzeppelin/contracts/governance/Governor.sol";
import {GovernorSettings} from "@openzeppelin/contracts/governance/extensions/GovernorSettings.sol";
import {GovernorCountingSimple} from "@openzeppelin/contracts/governance/extensions/GovernorCountingSimple.sol";
import {GovernorVotes} from "@openzeppelin/contracts/governance/extensions/GovernorVotes.sol";
import {GovernorVotesQuorumFraction} from
    "@openzeppelin/contracts/governance/extensions/GovernorVotesQuorumFraction.sol";
import {GovernorTimelockControl} from "@openzeppelin/contracts/governance/extensions/GovernorTimelockControl.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {IVotes} from "@openzeppelin/contracts/governance/utils/IVotes.sol";
import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";
import {Context} from "@openzeppelin/contracts/utils/Context.sol";

/// @title TownGovernor
/// @notice One chamber of a town's DAO: an OZ Governor over one voting token. A town runs one per
/// token side by side - a card chamber (a {FanCollection} with votes: 1 card = 1 vote) and a
/// resident chamber ({ResidentPass}: 1 verified person = 1 vote) - both proposers on the same
/// {TownTreasury} timelock, which holds the money and executes approved payouts after its delay,
/// during which the town guardian (a Safe multisig holding CANCELLER_ROLE) may cancel them
/// (docs/adr/0006-treasury-consent.md).
///
/// Votes: For/Against/Abstain ({GovernorCountingSimple}); quorum is a fraction of the token's
/// supply at the snapshot but never below an absolute floor of votes, so a chamber whose token has
/// few holders cannot be carried by one of them. Proposing needs `proposalThreshold` votes, except
/// for the platform's proposer key, which files the proposals town staff write for their users.
/// Gasless voting: `castVoteBySig` takes the voter's EIP-712 signature from any relayer
/// (nonce-bound, chain-bound), and the platform's ERC-2771 forwarder is trusted for
/// `propose`/`castVote` sent as meta-transactions. Settings changes only pass through this
/// chamber's own proposals (Governor's governance-call queue rejects calls another chamber made
/// through the shared timelock).
contract TownGovernor is
    Governor,
    GovernorSettings,
    GovernorCountingSimple,
    GovernorVotes,
    GovernorVotesQuorumFraction,
    GovernorTimelockControl,
    ERC2771Context
{
    /// @notice A chamber's voting rules (backend/chain/dao_settings.py derives them per town).
    /// @param votingDelay token clock units (blocks) between proposing and the snapshot.
    /// @param votingPeriod token clock units the vote stays open.
    /// @param proposalThreshold votes needed to propose (the platform proposer excepted).
    /// @param quorumNumerator quorum in percent of the supply at the snapshot.
    /// @param quorumFloor the least quorum in votes, whatever the supply (at least 1).
    /// @param platformProposer may propose without holding votes (zero: nobody may).
    struct ChamberSettings {
        uint48 votingDelay;
        uint32 votingPeriod;
        uint256 proposalThreshold;
        uint256 quorumNumerator;
        uint256 quorumFloor;
        address platformProposer;
    }

    /// @notice The least quorum in votes, whatever the token's supply. Fixed at deployment so that
    /// a chamber captured by a few holders cannot vote it down.
    uint256 public immutable quorumFloor;
    /// @notice The platform's proposer key: files staff-written proposals without holding votes
    /// (it still needs the chamber's votes to pass them).
    address public immutable platformProposer;

    /// @dev A quorum floor of zero would let a proposal pass with no votes at all.
    error TownGovernorInvalidQuorumFloor();

    /// @param name_ the chamber's name (also its EIP-712 domain name), e.g. "Sarabetsu Card Chamber".
    /// @param token the voting token (ERC-5805: {FanCollection} with votes or {ResidentPass}).
    /// @param treasury the town's {TownTreasury}.
    /// @param settings the chamber's voting rules.
    /// @param trustedForwarder the platform's {FurusatoForwarder}.
    constructor(
        string memory name_,
        IVotes token,
        TimelockController treasury,
        ChamberSettings memory settings,
        address trustedForwarder
    )
        Governor(name_)
        GovernorSettings(settings.votingDelay, settings.votingPeriod, settings.proposalThreshold)
        GovernorVotes(token)
        GovernorVotesQuorumFraction(settings.quorumNumerator)
        GovernorTimelockControl(treasury)
        ERC2771Context(trustedForwarder)
    {
        if (settings.quorumFloor == 0) revert TownGovernorInvalidQuorumFloor();
        quorumFloor = settings.quorumFloor;
        platformProposer = settings.platformProposer;
    }

    /// @notice Votes needed for a proposal at `timepoint`: the fraction of the supply, but at least
    /// {quorumFloor}.
    function quorum(uint256 timepoint) public view override(Governor, GovernorVotesQuorumFraction) returns (uint256) {
        uint256 fraction = super.quorum(timepoint);
        return fraction > quorumFloor ? fraction : quorumFloor;
    }

    /// @notice Creates a proposal. Requires `proposalThreshold` votes at the previous clock, unless
    /// the caller is {platformProposer}.
    function propose(
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        string memory description
    ) public override returns (uint256) {
        address proposer = _msgSender();
        if (proposer != platformProposer) {
            return super.propose(targets, values, calldatas, description);
        }
        if (!_isValidDescriptionForProposer(proposer, description)) revert GovernorRestrictedProposer(proposer);
        return _propose(targets, values, calldatas, description, proposer);
    }

    // The overrides below only resolve OZ's multiple inheritance.

    function votingDelay() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.votingDelay();
    }

    function votingPeriod() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.votingPeriod();
    }

    function proposalThreshold() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.proposalThreshold();
    }

    function state(uint256 proposalId) public view override(Governor, GovernorTimelockControl) returns (ProposalState) {
        return super.state(proposalId);
    }

    function proposalNeedsQueuing(uint256 proposalId)
        public
        view
        override(Governor, GovernorTimelockControl)
        returns (bool)
    {
        return super.proposalNeedsQueuing(proposalId);
    }

    function _queueOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint48) {
        return super._queueOperations(proposalId, targets, values, calldatas, descriptionHash);
    }

    function _executeOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) {
        super._executeOperations(proposalId, targets, values, calldatas, descriptionHash);
    }

    function _cancel(
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint256) {
        return super._cancel(targets, values, calldatas, descriptionHash);
    }

    function _executor() internal view override(Governor, GovernorTimelockControl) returns (address) {
        return super._executor();
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
