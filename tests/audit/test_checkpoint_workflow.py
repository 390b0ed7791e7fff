"""CheckpointWorkflow and its Schedule on the real Temporal dev server, with ERI's worker."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import ScheduleIntervalSpec
from temporalio.testing import WorkflowEnvironment

from eri import ledger
from eri.audit import log, note, tree
from eri.audit.schedule import SCHEDULE_ID, checkpoint_now, ensure_schedule
from eri.ledger import Action, Record
from eri.runtime import Runtime
from tests.conftest import worker_on_new_queue


async def _append(runtime: Runtime) -> None:
    await ledger.append(
        runtime.sessions,
        Record(idempotency_key="test:cp:" + uuid.uuid4().hex, action=Action.KEYS_ROTATED),
    )


async def test_on_demand_checkpoints_sign_only_when_the_log_grew(
    temporal_env: WorkflowEnvironment, runtime: Runtime
) -> None:
    worker, queue = worker_on_new_queue(temporal_env.client, runtime)
    settings = runtime.settings.model_copy(update={"temporal_task_queue": queue})
    async with worker:
        await _append(runtime)
        first = await checkpoint_now(temporal_env.client, settings, uuid.uuid4().hex)
        async with runtime.sessions() as session:
            size = await tree.size(session)
            assert (first.size, first.root_hash) == (size, (await tree.root(session, size)).hex())
        again = await checkpoint_now(temporal_env.client, settings, uuid.uuid4().hex)
        assert not again.created and again.size == first.size
        await _append(runtime)
        grown = await checkpoint_now(temporal_env.client, settings, uuid.uuid4().hex)
        assert grown.created and grown.size == first.size + 1
    latest = await log.latest(runtime.sessions)
    assert latest is not None and latest.size == grown.size
    note.verify(note.Note.parse(latest.note), log.log_verifier_key(runtime.settings))


async def test_the_schedule_runs_the_checkpoint_workflow(
    temporal_env: WorkflowEnvironment, runtime: Runtime
) -> None:
    worker, queue = worker_on_new_queue(temporal_env.client, runtime)
    settings = runtime.settings.model_copy(
        update={"temporal_task_queue": queue, "audit_checkpoint_minutes": 7}
    )
    await ensure_schedule(temporal_env.client, settings)
    await ensure_schedule(temporal_env.client, settings)  # idempotent: updates in place
    handle = temporal_env.client.get_schedule_handle(SCHEDULE_ID)
    try:
        described = await handle.describe()
        (interval,) = described.schedule.spec.intervals
        assert isinstance(interval, ScheduleIntervalSpec)
        assert interval.every.total_seconds() == 7 * 60
        async with worker:
            await _append(runtime)
            async with runtime.sessions() as session:
                size = await tree.size(session)
            await handle.trigger()
            for _ in range(100):
                latest = await log.latest(runtime.sessions)
                if latest is not None and latest.size >= size:
                    break
                await asyncio.sleep(0.1)
            assert latest is not None and latest.size >= size
    finally:
        await handle.delete()
