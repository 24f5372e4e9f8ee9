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
/// {TownTreasury} timelock, which holds the money and executes approved payouts.
///
/// Votes: For/Against/Abstain ({GovernorCountingSimple}); quorum is a fraction of the token's
/// supply at the snapshot. Gasless voting: `castVoteBySig` takes the voter's EIP-712 signature from
/// any relayer (nonce-bound, chain-bound), and the platform's ERC-2771 forwarder is trusted for
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
    /// @param name_ the chamber's name (also its EIP-712 domain name), e.g. "Sarabetsu Card Chamber".
    /// @param token the voting token (ERC-5805: {FanCollection} with votes or {ResidentPass}).
    /// @param treasury the town's {TownTreasury}.
    /// @param votingDelay_ token clock units (blocks) between proposing and the snapshot.
    /// @param votingPeriod_ token clock units the vote stays open.
    /// @param proposalThreshold_ votes needed to propose (0: anyone may propose).
    /// @param quorumNumerator_ quorum in percent of the supply at the snapshot.
    /// @param trustedForwarder the platform's {FurusatoForwarder}.
    constructor(
        string memory name_,
        IVotes token,
        TimelockController treasury,
        uint48 votingDelay_,
        uint32 votingPeriod_,
        uint256 proposalThreshold_,
        uint256 quorumNumerator_,
        address trustedForwarder
    )
        Governor(name_)
        GovernorSettings(votingDelay_, votingPeriod_, proposalThreshold_)
        GovernorVotes(token)
        GovernorVotesQuorumFraction(quorumNumerator_)
        GovernorTimelockControl(treasury)
        ERC2771Context(trustedForwarder)
    {}

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

    function quorum(uint256 timepoint) public view override(Governor, GovernorVotesQuorumFraction) returns (uint256) {
        return super.quorum(timepoint);
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
