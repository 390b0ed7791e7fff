"""PurgeWorkflow: crypto-shredding of one case, at retention expiry or by an authorized order.

Destroying the case's data key makes its Temporal history, vault rows and every backup of them
unreadable at once; the shred receipt (case, key id, time, who authorized it, why) goes to the
ledger. The workflow's own id is ``purge_<case id>``: it does not start with ``case_``, so its
payloads use the system key and stay readable after the case key is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from temporalio import workflow
from temporalio.common import RetryPolicy

PurgeReason = Literal["retention_expired", "lawful_order"]


@dataclass(frozen=True)
class PurgeRequest:
    case_id: str
    reason: PurgeReason
    authorized_by: str  # opaque actor id (usr_…)
    authorized_role: str
    authorized_institution: str
    order_ref: str | None = None  # the order's reference number, never a name
    not_before: datetime | None = None  # retention expiry: wait until then


@dataclass(frozen=True)
class ShredReceipt:
    case_id: str
    key_id: str
    shredded_at: datetime
    ledger_seq: int


def purge_workflow_id(case_id: str) -> str:
    return f"purge_{case_id}"


@workflow.defn
class PurgeWorkflow:
    @workflow.run
    async def run(self, request: PurgeRequest) -> ShredReceipt:
        if request.not_before is not None:
            wait = request.not_before - workflow.now()
            if wait > timedelta(0):
                await workflow.sleep(wait)
        receipt: ShredReceipt = await workflow.execute_activity(
            "shred_case",
            request,
            result_type=ShredReceipt,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
        )
        return receipt
