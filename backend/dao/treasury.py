"""The treasury steps of a passed proposal: staff queue it in the town's timelock, then execute
it once the delay has passed (the payout). Both are sent by the clerk role key through the
outbox; a step whose transaction failed may be sent again (a new idempotency key per attempt).
"""

from __future__ import annotations

from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.chain.api import (
    AuditEntry,
    ContractCall,
    OutboxTx,
    Sender,
    Subject,
    description_hash,
    timelock_salt,
)
from backend.core.errors import N_, NotFound
from backend.dao import joint
from backend.dao.common import FAILED_TX_STATES
from backend.dao.errors import WrongState
from backend.dao.models import DaoProposal
from backend.dao.proposals import GOVERNOR, NO_SUCH_PROPOSAL, ProposalService
from backend.regions.models import Town

TREASURY = "TownTreasury"


class TreasuryService(ProposalService):
    """Queue and execute passed proposals (reads the governor's state as ProposalService)."""

    def _current_step(
        self, user: User | None, town: Town, p: DaoProposal, tx_id: int | None
    ) -> tuple[User, OutboxTx | None]:
        """(the staff member, the step's transaction unless there is none or it failed)."""
        staff = require_town_role(user, town.id, STAFF)
        if p.town_id != town.id:
            raise NotFound(NO_SUCH_PROPOSAL)
        current = self.tx(tx_id)
        if current is not None and current.state in FAILED_TX_STATES:
            current = None
        return staff, current

    def _retry_key(self, tx_id: int | None) -> int:
        tx = self.tx(tx_id)
        return tx.id if tx is not None else 0

    def queue_proposal(self, user: User | None, town: Town, p: DaoProposal) -> OutboxTx:
        """Staff queue a succeeded proposal in the treasury timelock."""
        staff, current = self._current_step(user, town, p, p.queue_tx_id)
        if current is not None:
            return current
        joint.require_joint_passed(self, p)
        state = self.chain_view(p).state
        if state != "succeeded":
            raise WrongState(
                N_("Only a proposal that passed can be queued (it is %(state)s)."), state=state
            )
        return self._admin_call(staff, town, p, "queue", self._retry_key(p.queue_tx_id))

    def execute_proposal(self, user: User | None, town: Town, p: DaoProposal) -> OutboxTx:
        """Staff execute a queued proposal once the timelock delay has passed (pays out)."""
        staff, current = self._current_step(user, town, p, p.execute_tx_id)
        if current is not None:
            return current
        joint.require_joint_passed(self, p)
        state = self.chain_view(p).state
        if state != "queued":
            raise WrongState(
                N_("Only a queued proposal can be executed (it is %(state)s)."), state=state
            )
        targets, values, calldatas = p.actions()
        op = self.read(
            p.treasury_address,
            "hashOperationBatch",
            targets,
            values,
            [bytes.fromhex(c.removeprefix("0x")) for c in calldatas],
            b"\x00" * 32,
            bytes.fromhex(timelock_salt(p.governor_address, p.description)[2:]),
            artifact_name=TREASURY,
        )
        if not self.read(p.treasury_address, "isOperationReady", op, artifact_name=TREASURY):
            raise WrongState(
                N_("The waiting time after queueing has not passed yet; try again shortly."),
                state="queued",
            )
        return self._admin_call(staff, town, p, "execute", self._retry_key(p.execute_tx_id))

    def _admin_call(
        self, user: User, town: Town, p: DaoProposal, fn: str, attempt: int
    ) -> OutboxTx:
        targets, values, calldatas = p.actions()
        tx = self.outbox.enqueue(
            self.session,
            ContractCall(
                p.governor_address,
                fn,
                [targets, values, calldatas, description_hash(p.description)],
                artifact_name=GOVERNOR,
            ),
            sender=Sender.role("clerk", town_id=town.id, user_id=user.id),
            key=f"dao.{fn}:{p.id}:{attempt}",
            subject=Subject("dao_proposal", p.id),
            audit=AuditEntry(
                actor=f"user:{user.id}",
                action=f"dao.{fn}",
                subject_type="dao_proposal",
                subject_id=str(p.id),
                amount=int(p.amount) if fn == "execute" else None,
                reason=p.title_en or p.title_ja,
                details={"token": p.token, "recipient": p.recipient},
            ),
        )
        if fn == "queue":
            p.queue_tx_id = tx.id
        else:
            p.execute_tx_id = tx.id
        self.session.commit()
        return tx
