"""OpenAPI path items for the DAO API (merged by backend/core/openapi.py)."""

from __future__ import annotations

from typing import Any

from backend.core.openapi import error_response, json_body, json_response

_BASE = "/api/towns/{slug}/dao/proposals"
_SLUG = {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}
_PID = {"name": "pid", "in": "path", "required": True, "schema": {"type": "integer"}}
_PROPOSAL = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "chamber": {"type": "string", "enum": ["card", "resident"]},
        "joint_of": {
            "type": ["integer", "null"],
            "description": "on the resident half of a proposal put to both chambers: the card "
            "chamber's proposal",
        },
        "proposal_id": {"type": "string", "description": "the Governor's uint256 id, decimal"},
        "governor": {"type": "string"},
        "title": {"type": "string"},
        "token": {"type": "string", "enum": ["yen", "points"]},
        "recipient": {"type": "string"},
        "amount": {"type": "string", "description": "whole token units, decimal"},
    },
}
_RESULTS = {
    "type": "object",
    "properties": {
        "state": {
            "type": "string",
            "description": "submitting | failed | pending | active | canceled | defeated | "
            "succeeded | queued | expired | executed (from governor.state())",
        },
        "votes": {
            "type": "object",
            "properties": {k: {"type": "integer"} for k in ("for", "against", "abstain")},
        },
        "snapshot": {"type": ["integer", "null"]},
        "deadline": {"type": ["integer", "null"]},
        "quorum": {"type": ["integer", "null"]},
        "voters_counted": {"type": "integer"},
        "votes_processing": {"type": "integer"},
        "executed_tx_hash": {"type": ["string", "null"]},
        "payouts": {"type": "array", "items": {"type": "object"}},
    },
}
_SUPPORT = {
    "oneOf": [
        {"type": "string", "enum": ["for", "against", "abstain"]},
        {"type": "integer", "enum": [0, 1, 2]},
    ]
}
_ELIGIBILITY = {
    "type": "object",
    "properties": {
        "can_vote": {"type": "boolean"},
        "reason": {"type": "string"},
        "weight": {"type": "integer"},
        "snapshot": {"type": ["integer", "null"]},
        "message": {"type": "string"},
    },
}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    params = [_SLUG] if extra.pop("town_only", False) else [_SLUG, _PID]
    return {"summary": summary, "parameters": params, "responses": responses, **extra}


_STAFF_ERRORS = {
    "401": error_response("Not signed in."),
    "403": error_response("Not staff of this town."),
    "404": error_response("No such town or proposal."),
    "409": error_response("The proposal is not in the right state (wrong_state)."),
}

PATHS = {
    _BASE: {
        "get": _op(
            "A town's proposals, newest first.",
            {"200": json_response("Proposals.", {"type": "object"})},
            town_only=True,
        ),
        "post": _op(
            "Staff: propose a treasury payout (sent on chain by the platform's admin key).",
            {
                "201": json_response("Created (idempotent by idempotency_key).", _PROPOSAL),
                "400": error_response("Invalid input or not enough in the treasury."),
                "401": error_response("Not signed in."),
                "403": error_response("Not staff of this town."),
            },
            town_only=True,
            requestBody=json_body(
                {
                    "type": "object",
                    "required": ["recipient", "amount", "idempotency_key"],
                    "properties": {
                        "chamber": {
                            "type": "string",
                            "enum": ["card", "resident", "both"],
                            "description": "both: a card-chamber proposal with the payout and "
                            "a resident-chamber one approving it; it passes only with both",
                        },
                        "token": {"type": "string", "enum": ["yen", "points"]},
                        "recipient": {
                            "type": "string",
                            "maxLength": 254,
                            "description": "who is paid: a person (the e-mail of an account "
                            "that confirmed it, a customer code P + 12 digits, a printed card "
                            "code C + 10), one of the town's shops by its name, or an address "
                            "(0x...); an unknown one is a 400 with field recipient",
                        },
                        "amount": {"type": "integer", "minimum": 1},
                        "title_ja": {"type": "string", "maxLength": 200},
                        "title_en": {"type": "string", "maxLength": 200},
                        "body_ja": {"type": "string", "maxLength": 5000},
                        "body_en": {"type": "string", "maxLength": 5000},
                        "idempotency_key": {"type": "string", "minLength": 8, "maxLength": 100},
                    },
                }
            ),
        ),
    },
    _BASE + "/{pid}": {
        "get": _op(
            "A proposal with its live results and the caller's eligibility.",
            {"200": json_response("The proposal."), "404": error_response("Not found.")},
        ),
    },
    _BASE + "/{pid}/results": {
        "get": _op(
            "Live results: governor state and proposalVotes(), indexed votes and the payout.",
            {"200": json_response("Results.", _RESULTS), "404": error_response("Not found.")},
        ),
    },
    _BASE + "/{pid}/eligibility": {
        "get": _op(
            "Whether the signed-in user may vote, with what weight and why (nothing signed).",
            {"200": json_response("Eligibility.", _ELIGIBILITY)},
        ),
    },
    _BASE + "/{pid}/votes": {
        "post": _op(
            "Vote For / Against / Abstain without gas (EIP-712 ballot relayed by the platform).",
            {
                "202": json_response("The vote was signed and queued for the chain."),
                "400": error_response(
                    "Invalid support value (invalid_support) or a wallet signature that does "
                    "not recover to the user's address (invalid_signature)."
                ),
                "401": error_response("Not signed in."),
                "403": error_response("No voting weight at the snapshot (not_eligible)."),
                "404": error_response("No such town or proposal."),
                "409": error_response("Already voted (already_voted) or voting is closed."),
            },
            requestBody=json_body(
                {
                    "type": "object",
                    "required": ["support"],
                    "properties": {
                        "support": _SUPPORT,
                        "signature": {
                            "type": "string",
                            "description": "Own-wallet (SIWE) users only: the 0x-hex EIP-712 "
                            "signature of the typed data from POST .../ballot",
                        },
                    },
                }
            ),
        ),
    },
    _BASE + "/{pid}/ballot": {
        "post": _op(
            "Own-wallet (SIWE) users: the EIP-712 Ballot to sign with eth_signTypedData_v4 "
            "(chamber domain, proposalId, support, voter, governor nonce); nothing is stored.",
            {
                "200": json_response("typed_data (uint256 values as decimal strings), voter."),
                "400": error_response("Invalid support, or a built-in account (no need)."),
                "401": error_response("Not signed in."),
                "403": error_response("No voting weight at the snapshot (not_eligible)."),
                "404": error_response("No such town or proposal."),
                "409": error_response("Already voted (already_voted) or voting is closed."),
            },
            requestBody=json_body(
                {"type": "object", "required": ["support"], "properties": {"support": _SUPPORT}}
            ),
        ),
    },
    _BASE + "/{pid}/queue": {
        "post": _op(
            "Staff: queue a succeeded proposal in the treasury timelock.",
            {"202": json_response("Queued for the chain."), **_STAFF_ERRORS},
        ),
    },
    _BASE + "/{pid}/execute": {
        "post": _op(
            "Staff: execute a queued proposal after the delay (pays out from the treasury).",
            {"202": json_response("Sent to the chain."), **_STAFF_ERRORS},
        ),
    },
}


_POLLS = "/api/towns/{slug}/dao/polls"
_POLL_ID = {"name": "poll_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_OPTION = {"type": "integer", "minimum": 0, "maximum": 9, "description": "the option's index"}
_POLL = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "chamber": {"type": "string", "enum": ["card", "resident"]},
        "poll_id": {"type": ["integer", "null"], "description": "TownPoll id once indexed"},
        "title": {"type": "string"},
        "options": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "label": {"type": "string"},
                    "ja": {"type": "string"},
                    "en": {"type": "string"},
                },
            },
        },
        "duration_blocks": {"type": "integer"},
        "snapshot_block": {"type": ["integer", "null"]},
        "deadline_block": {"type": ["integer", "null"]},
    },
}
_POLL_RESULTS = {
    "type": "object",
    "properties": {
        "state": {
            "type": "string",
            "description": "submitting | failed | active | ended | canceled (TownPoll.state())",
        },
        "tallies": {
            "type": "array",
            "items": {"type": "integer"},
            "description": "weight per option (TownPoll.results())",
        },
        "total_weight": {"type": "integer"},
        "total_supply": {
            "type": ["integer", "null"],
            "description": "voting power at the snapshot (turnout = total_weight / this)",
        },
        "snapshot": {"type": ["integer", "null"]},
        "deadline": {"type": ["integer", "null"]},
        "voters_counted": {"type": "integer"},
        "votes_processing": {"type": "integer"},
    },
}
_VOTE_ERRORS = {
    "401": error_response("Not signed in."),
    "403": error_response("No voting weight at the snapshot (not_eligible)."),
    "404": error_response("No such town or poll."),
    "409": error_response("Already voted (already_voted) or voting is closed (voting_closed)."),
}


def _poll_op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "parameters": [_SLUG, _POLL_ID], "responses": responses, **extra}


PATHS.update(
    {
        _POLLS: {
            "get": _op(
                "A town's multi-option polls, newest first.",
                {"200": json_response("Polls.", {"type": "object"})},
                town_only=True,
            ),
            "post": _op(
                "Staff: create a poll (TownPoll.createPoll sent by the platform's admin key).",
                {
                    "201": json_response("Created (idempotent by idempotency_key).", _POLL),
                    "400": error_response("Invalid input (invalid_input)."),
                    "401": error_response("Not signed in."),
                    "403": error_response("Not staff of this town."),
                },
                town_only=True,
                requestBody=json_body(
                    {
                        "type": "object",
                        "required": ["options", "duration_blocks", "idempotency_key"],
                        "properties": {
                            "chamber": {
                                "type": "string",
                                "enum": ["card", "resident"],
                                "description": "card: the ambassador collection; resident: "
                                "ResidentPass",
                            },
                            "title_ja": {"type": "string", "maxLength": 200},
                            "title_en": {"type": "string", "maxLength": 200},
                            "options": {
                                "type": "array",
                                "minItems": 2,
                                "maxItems": 10,
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "ja": {"type": "string", "maxLength": 100},
                                        "en": {"type": "string", "maxLength": 100},
                                    },
                                },
                            },
                            "duration_blocks": {
                                "type": "integer",
                                "minimum": 10,
                                "maximum": 1_000_000,
                            },
                            "idempotency_key": {
                                "type": "string",
                                "minLength": 8,
                                "maxLength": 100,
                            },
                        },
                    }
                ),
            ),
        },
        _POLLS + "/{poll_id}": {
            "get": _poll_op(
                "A poll with live per-option results and the caller's eligibility.",
                {"200": json_response("The poll."), "404": error_response("Not found.")},
            ),
        },
        _POLLS + "/{poll_id}/results": {
            "get": _poll_op(
                "Live results from TownPoll: state, weight per option, turnout.",
                {
                    "200": json_response("Results.", _POLL_RESULTS),
                    "404": error_response("Not found."),
                },
            ),
        },
        _POLLS + "/{poll_id}/eligibility": {
            "get": _poll_op(
                "Whether the signed-in user may vote, with what weight (snapshot) and why.",
                {"200": json_response("Eligibility.", _ELIGIBILITY)},
            ),
        },
        _POLLS + "/{poll_id}/ballot": {
            "post": _poll_op(
                "Own-wallet users: the EIP-712 Ballot(pollId, option, voter) to sign.",
                {
                    "200": json_response("typed_data (uint256 as decimal strings), voter."),
                    "400": error_response("Invalid option (invalid_option)."),
                    **_VOTE_ERRORS,
                },
                requestBody=json_body(
                    {"type": "object", "required": ["option"], "properties": {"option": _OPTION}}
                ),
            ),
        },
        _POLLS + "/{poll_id}/votes": {
            "post": _poll_op(
                "Vote for one option without gas (castVoteBySig relayed by the platform).",
                {
                    "202": json_response("The vote was signed and queued for the chain."),
                    "400": error_response(
                        "Invalid option (invalid_option) or signature (invalid_signature)."
                    ),
                    **_VOTE_ERRORS,
                },
                requestBody=json_body(
                    {
                        "type": "object",
                        "required": ["option"],
                        "properties": {
                            "option": _OPTION,
                            "signature": {
                                "type": "string",
                                "description": "Own-wallet users: signature of .../ballot",
                            },
                        },
                    }
                ),
            ),
        },
    }
)

PATHS["/api/towns/{slug}/dao/alerts"] = {
    "get": _op(
        "Staff: on-chain events the platform did not send that nobody has checked yet "
        "(proposals made outside the platform, cancelled treasury payouts), newest first.",
        {
            "200": json_response(
                "Alerts: id, kind (external_proposal | payout_cancelled), proposal, actor, "
                "details, tx_hash, block_number.",
                {"type": "object"},
            ),
            "401": error_response("Not signed in."),
            "403": error_response("Not staff of this town."),
        },
        town_only=True,
    )
}
