"""Key activities: crypto-shredding a case and recording its shred receipt."""

from __future__ import annotations

from temporalio import activity

from eri import ledger
from eri.ledger import Action, Record
from eri.runtime import Runtime
from workflows.purge import PurgeRequest, ShredReceipt


class KeyActivities:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    @activity.defn(name="shred_case")
    async def shred_case(self, request: PurgeRequest) -> ShredReceipt:
        """Destroy the case's data key, then append the shred receipt. Both steps are
        idempotent, so a retried activity destroys nothing twice and records one receipt."""
        result = await self._rt.keyring.shred_case(request.case_id)
        info = activity.info()
        entry = await ledger.append(
            self._rt.sessions,
            Record(
                idempotency_key=f"{info.workflow_id}:{info.workflow_run_id}:shred",
                action=Action.CASE_SHREDDED,
                case_id=request.case_id,
                step_id=request.reason,
                actor_id=request.authorized_by,
                actor_role=request.authorized_role,
                actor_institution=request.authorized_institution,
                detail_hash=ledger.detail_hash(
                    {"key_id": result.key_id, "order_ref": request.order_ref}
                ),
            ),
        )
        return ShredReceipt(
            case_id=request.case_id,
            key_id=result.key_id,
            shredded_at=entry.recorded_at,
            ledger_seq=entry.seq,
        )
