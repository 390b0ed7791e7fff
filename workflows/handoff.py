"""HandoffWorkflow: one case handed to a prosecutor's office or to another country's ERI.

consent check -> assemble and seal -> deliver -> wait for the signed acknowledgement (or a
rejection) with a deadline; each escalation rung after the deadline is recorded and notified;
the sender may recall a package not yet opened. Every step is an activity that writes its
custody event to the ledger. The workflow id is ``<case id>/<handoff id>``, so its payloads
are encrypted under the case's key (and become unreadable when the case is shredded).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

ACTIVITY_TIMEOUT = timedelta(minutes=5)
RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))
_RECALLABLE = frozenset({"created", "sealed", "delivered"})


class Requester(BaseModel):
    actor_id: str
    role: str
    institution: str


class HandoffRequest(BaseModel):
    handoff_id: str = Field(pattern=r"^hnd_[A-Za-z0-9_-]{8,48}$")
    case_id: str
    recipient_institution: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    purpose: Literal["prosecution", "cross_border"]
    legal_basis: str = Field(default="consent", pattern=r"^[a-z][a-z0-9_]{1,63}$")
    reference: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,95}$")
    statements: list[str] = []  # vault fields the victim consented to share
    evidence_ids: list[str] | None = None  # None: every attachment
    ack_within_hours: int = Field(default=72, ge=1, le=24 * 90)
    escalation_hours: list[int] = Field(default=[0, 24, 72])  # rungs after the deadline
    requested_by: Requester


class Prepared(BaseModel):
    allowed: bool
    basis: str
    reason: str | None = None
    message: tuple[str, str] | None = None
    facts: dict[str, Any] = {}
    protocol_id: str = ""
    protocol_version: str = ""
    protocol_hash: str = ""


class SealInput(BaseModel):
    request: HandoffRequest
    prepared: Prepared


class Escalation(BaseModel):
    request: HandoffRequest
    rung: int
    due_at: datetime


class Answer(BaseModel):
    status: Literal["acknowledged", "rejected"]
    at: datetime
    reason: str | None = None


class RecallInput(BaseModel):
    request: HandoffRequest
    by: Requester


class HandoffResult(BaseModel):
    handoff_id: str
    status: str  # refused | acknowledged | rejected | recalled
    basis: str | None = None
    reason: str | None = None
    escalations: int = 0


def handoff_workflow_id(case_id: str, handoff_id: str) -> str:
    return f"{case_id}/{handoff_id}"


@workflow.defn(name="HandoffWorkflow")
class HandoffWorkflow:
    def __init__(self) -> None:
        self._status = "created"
        self._answer: Answer | None = None
        self._recalled = False
        self._request: HandoffRequest | None = None

    @workflow.run
    async def run(self, request: HandoffRequest) -> HandoffResult:
        self._request = request
        prepared: Prepared = await workflow.execute_activity(
            "handoff_prepare",
            request,
            result_type=Prepared,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        if not prepared.allowed:
            self._status = "refused"
            return HandoffResult(
                handoff_id=request.handoff_id,
                status="refused",
                basis=prepared.basis,
                reason=prepared.reason,
            )
        await workflow.execute_activity(
            "handoff_seal",
            SealInput(request=request, prepared=prepared),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        self._status = "sealed"
        await workflow.execute_activity(
            "handoff_deliver",
            request,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        self._status = "delivered"
        deadline = workflow.now() + timedelta(hours=request.ack_within_hours)
        rungs = sorted(set(request.escalation_hours))
        fired = 0
        while self._answer is None and not self._recalled:
            timeout = None
            if fired < len(rungs):
                wake = deadline + timedelta(hours=rungs[fired])
                timeout = max(wake - workflow.now(), timedelta(0))
            try:
                await workflow.wait_condition(
                    lambda: self._answer is not None or self._recalled, timeout=timeout
                )
            except TimeoutError:
                fired += 1
                await workflow.execute_activity(
                    "handoff_escalate",
                    Escalation(
                        request=request,
                        rung=fired,
                        due_at=deadline + timedelta(hours=rungs[fired - 1]),
                    ),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=RETRY,
                )
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._recalled:
            self._status = "recalled"
        else:
            assert self._answer is not None
            self._status = self._answer.status
        return HandoffResult(
            handoff_id=request.handoff_id,
            status=self._status,
            basis=prepared.basis,
            reason=self._answer.reason if self._answer else None,
            escalations=fired,
        )

    @workflow.signal
    def answered(self, answer: Answer) -> None:
        """The recipient's verified ack or rejection (recorded by the API before signalling)."""
        if self._answer is None and not self._recalled:
            self._answer = answer

    @workflow.update
    async def recall(self, by: Requester) -> str:
        assert self._request is not None
        # A recall that arrives while the package is being sealed or delivered waits for the
        # delivery to finish, then withdraws it.
        await workflow.wait_condition(
            lambda: self._status != "created" and self._status != "sealed"
        )
        if self._status != "delivered" or self._answer is not None or self._recalled:
            raise ApplicationError("not_recallable", type="Rejection", non_retryable=True)
        await workflow.execute_activity(
            "handoff_recall",
            RecallInput(request=self._request, by=by),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        self._recalled = True
        return "recalled"

    @recall.validator
    def _validate_recall(self, by: Requester) -> None:
        if self._status not in _RECALLABLE or self._answer is not None or self._recalled:
            raise ApplicationError(
                "not_recallable",
                {"status": self._answer.status if self._answer else self._status},
                type="Rejection",
                non_retryable=True,
            )

    @workflow.query
    def status(self) -> str:
        return self._status
