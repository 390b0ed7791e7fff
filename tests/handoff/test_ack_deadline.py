"""A missing acknowledgement escalates at its deadline, not before (time-skipping server)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from eri import ledger
from eri.handoff import service
from eri.handoff.keys import RecipientPrivateKey
from eri.runtime import Runtime
from tests.conftest import worker_on_new_queue
from tests.handoff.support import open_gt_case
from workflows.handoff import (
    Answer,
    HandoffRequest,
    HandoffWorkflow,
    Requester,
    handoff_workflow_id,
)


async def test_missing_ack_escalates_at_its_deadline(
    time_skipping_env: WorkflowEnvironment, runtime: Runtime
) -> None:
    client = time_skipping_env.client
    await service.register_party(runtime.sessions, RecipientPrivateKey.generate().public(), "MP-TS")
    worker, queue = worker_on_new_queue(client, runtime)
    async with worker:
        case_id = await open_gt_case(client, queue, {"minor": False, "consent": "given"})
        handoff_id = "hnd_" + uuid.uuid4().hex[:20]
        handle = await client.start_workflow(
            HandoffWorkflow.run,
            HandoffRequest(
                handoff_id=handoff_id,
                case_id=case_id,
                recipient_institution="MP-TS",
                purpose="prosecution",
                ack_within_hours=24,
                escalation_hours=[0, 24],
                requested_by=Requester(
                    actor_id="usr_coord001", role="coordinator", institution="SVET"
                ),
            ),
            id=handoff_workflow_id(case_id, handoff_id),
            task_queue=queue,
        )

        async def overdue() -> list[ledger.LedgerEntry]:
            return [
                e
                for e in await ledger.entries(runtime.sessions, case_id=case_id)
                if e.step_id in ("handoff.ack_overdue", "handoff.ack")
            ]

        async def delivered() -> bool:
            steps = [e.step_id for e in await ledger.entries(runtime.sessions, case_id=case_id)]
            return "handoff.delivered" in steps

        for _ in range(100):
            if await delivered():
                break
            await time_skipping_env.sleep(timedelta(seconds=1))
        assert await delivered()
        async with runtime.sessions() as s:
            from eri.db.models import Handoff

            row = await s.get(Handoff, handoff_id)
            assert row is not None and row.delivered_at is not None
            delivered_at = row.delivered_at
        await time_skipping_env.sleep(timedelta(hours=23, minutes=50))
        assert await overdue() == [], "escalated before the deadline"
        await time_skipping_env.sleep(timedelta(minutes=15))
        first = await overdue()
        assert [e.step_id for e in first] == ["handoff.ack_overdue", "handoff.ack"]
        offset = first[0].recorded_at - delivered_at
        assert timedelta(hours=24) - timedelta(minutes=1) <= offset < timedelta(hours=24, minutes=1)
        assert first[1].action == "escalation.rung" and first[1].deadline_status == "late"
        await time_skipping_env.sleep(timedelta(hours=24))
        assert len(await overdue()) == 4  # the second rung, 24 h after the deadline
        await handle.signal(
            HandoffWorkflow.answered,
            Answer(status="acknowledged", at=first[0].recorded_at + timedelta(days=2)),
        )
        result = await handle.result()
        assert (result.status, result.escalations) == ("acknowledged", 2)
