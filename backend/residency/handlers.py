"""Indexer handlers: a resident's row follows its pass on chain.

PassIssued sets the token id and "issued", PassRevoked sets "revoked"; each finds the row by
the event's subject (the outbox row that sent it names the resident) and checks that the
event's personId is the row's identity hash, so a pass issued outside the platform (by the
registrar key from a console of its own) changes no row. Reverts undo them on a reorg.

The chain is the truth: a row judged failed because its call failed (failures.py) still follows
an event of its own that arrives after all (a reorg's replay): a failed issue becomes issued, a
pass whose revocation failed becomes revoked.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy.orm import Session

from backend.chain.api import ChainEvent, EventHandler, handler
from backend.residency.models import FAILED, ISSUED, ISSUING, REVOKED, REVOKING, Resident

PASS_ARTIFACT = "ResidentPass"  # noqa: S105 - a contract name, not a secret


def _rows(session: Session, events: Sequence[ChainEvent]) -> Iterator[tuple[ChainEvent, Resident]]:
    for ev in events:
        if ev.subject is None or ev.subject.kind != "resident":
            continue
        row = session.get(Resident, ev.subject.id)
        person = ev.args.get("personId")
        person_hex = person.lower() if isinstance(person, str) else ""
        if row is not None and person_hex == row.identity_hash.lower():
            yield ev, row


def _issued(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev, row in _rows(session, events):
        if row.state in (ISSUING, FAILED):
            row.state, row.token_id = ISSUED, int(ev.args["tokenId"])


def _issued_revert(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev, row in _rows(session, events):
        if row.state == ISSUED and row.token_id == int(ev.args["tokenId"]):
            row.state, row.token_id = ISSUING, None


def _revoked(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev, row in _rows(session, events):
        if row.state in (REVOKING, ISSUED) and row.token_id == int(ev.args["tokenId"]):
            row.state = REVOKED


def _revoked_revert(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev, row in _rows(session, events):
        if row.state == REVOKED and row.token_id == int(ev.args["tokenId"]):
            row.state = REVOKING


HANDLERS: tuple[EventHandler, ...] = (
    handler("PassIssued", _issued, _issued_revert, contract=PASS_ARTIFACT),
    handler("PassRevoked", _revoked, _revoked_revert, contract=PASS_ARTIFACT),
)
