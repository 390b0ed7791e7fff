"""CheckpointWorkflow: sign the audit log's tree head when the log grew.

Run every ``ERI_AUDIT_CHECKPOINT_MINUTES`` by a Temporal Schedule (:mod:`eri.audit.schedule`)
and on demand (``eri audit checkpoint``). The activity signs only if the tree is larger than
the latest checkpoint, so overlapping or repeated runs are harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy


@dataclass(frozen=True)
class CheckpointResult:
    size: int
    root_hash: str  # hex
    created: bool


@workflow.defn
class CheckpointWorkflow:
    @workflow.run
    async def run(self) -> CheckpointResult:
        result: CheckpointResult = await workflow.execute_activity(
            "audit_checkpoint",
            result_type=CheckpointResult,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
        )
        return result
