"""The Temporal Schedule that runs CheckpointWorkflow every few minutes."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from eri.settings import Settings
from workflows.checkpoint import CheckpointResult, CheckpointWorkflow

SCHEDULE_ID = "audit-checkpoint"


def checkpoint_workflow_id(suffix: str) -> str:
    return f"audit-checkpoint-{suffix}"


def _schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            CheckpointWorkflow.run,
            id=checkpoint_workflow_id("scheduled"),
            task_queue=settings.temporal_task_queue,
        ),
        spec=ScheduleSpec(
            intervals=[
                ScheduleIntervalSpec(every=timedelta(minutes=settings.audit_checkpoint_minutes))
            ]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_schedule(client: Client, settings: Settings) -> None:
    """Create the schedule, or bring an existing one to the configured interval and queue."""
    schedule = _schedule(settings)
    try:
        await client.create_schedule(SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:

        def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(SCHEDULE_ID).update(update)


async def checkpoint_now(client: Client, settings: Settings, suffix: str) -> CheckpointResult:
    result: CheckpointResult = await client.execute_workflow(
        CheckpointWorkflow.run,
        id=checkpoint_workflow_id(suffix),
        task_queue=settings.temporal_task_queue,
    )
    return result
