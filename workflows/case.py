"""CaseWorkflow: the durable shell around the protocol interpreter. One workflow per case; its
id is the opaque case id, so every payload is encrypted under the case's key.

Human actions arrive as Updates whose validators run the interpreter's ``check`` (an illegal move
is refused before anything reaches history). Handlers apply the event and return only after the
local activity ``record_case_changes`` has written the vault, the ledger and the task projection:
an answered update means the case has really moved. Deadlines, escalation rungs and follow-ups
are durable timers: the run sleeps until ``next_wake`` and feeds a ``Tick``. The run continues
as new well before Temporal's limits, carrying the full state.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from eri import search_attributes as sa
    from protocols.model import Protocol
    from protocols.registry import pinned
    from workflows.interpreter import (
        Action,
        CaseState,
        Claim,
        Complete,
        Opened,
        Reassign,
        Rejection,
        SetFact,
        Task,
        Tick,
        Unclaim,
        apply,
        check,
        next_wake,
    )

MAX_UPDATES_PER_RUN = 1000  # Temporal refuses more than 2,000 per run
RECORD_TIMEOUT = timedelta(seconds=30)


class CaseResume(BaseModel):
    state: CaseState
    seq: int


class CaseInput(BaseModel):
    case_id: str
    protocol_id: str
    protocol_version: str
    protocol_hash: str
    opened: Opened
    intake: dict[str, Any] = {}
    resume: CaseResume | None = None
    # Continue as new after this many commands (None: MAX_UPDATES_PER_RUN); tests set it low.
    max_updates_per_run: int | None = Field(default=None, ge=1)


class CaseChanges(BaseModel):
    """What ``record_case_changes`` writes for one applied event."""

    case_id: str
    seq: int
    at: datetime  # the event's (workflow) time: what the ledger records
    # The event's identity, the same in every attempt of a workflow task (see _event_key):
    # the ledger's and the notifications' idempotency keys. None: ``seq`` (older inputs).
    event_key: str | None = None
    protocol_id: str
    protocol_version: str
    protocol_hash: str
    country: str
    opened_at: datetime
    closed_at: datetime | None
    opened_by_institution: str
    revision: int
    intake: dict[str, Any] | None = None
    actions: list[Action]


class CaseView(BaseModel):
    """What an update answers: the case's open tasks and revision (no victim data)."""

    case_id: str
    revision: int
    closed: bool
    open_tasks: list[Task]
    task: Task | None = None


def rejection_error(rejected: Rejection) -> ApplicationError:
    return ApplicationError(
        rejected.code,
        {
            "status": rejected.status,
            "fields": rejected.fields,
            "es": rejected.message[0],
            "en": rejected.message[1],
        },
        type="Rejection",
        non_retryable=True,
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def update_key(run_base: int, update_id: str) -> str:
    """The event key of an update (``run_base``: the case's ``seq`` when its run began)."""
    return f"r{run_base}.u{_digest(update_id)}"


def _tick_key(wake: datetime) -> str:
    """A tick is the processing of what fell due at ``wake`` (its own time varies by attempt)."""
    return f"t{round(wake.timestamp() * 1_000_000)}"


@workflow.defn(name="CaseWorkflow")
class CaseWorkflow:
    @workflow.init
    def __init__(self, inp: CaseInput) -> None:
        self._input = inp
        self._protocol: Protocol = pinned(inp.protocol_hash)
        self._state: CaseState | None = inp.resume.state if inp.resume else None
        self._seq = inp.resume.seq if inp.resume else 0
        self._run_base = self._seq  # fixed for the run: tells this run's update ids apart
        self._lock = asyncio.Lock()
        self._updates = 0

    # --- the run ------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: CaseInput) -> CaseView:
        if self._state is None:
            await self._apply(inp.opened, intake=inp.intake)
        while not self._current.closed:
            if self._should_continue():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    inp.model_copy(
                        update={
                            "resume": CaseResume(state=self._current, seq=self._seq),
                            "intake": {},
                        }
                    )
                )
            seen = self._current.revision
            wake = next_wake(
                self._protocol,
                self._current,
                # an ended follow-up no longer wakes the case (it used to, in a loop)
                legacy_follow_ups=not workflow.patched("wake-only-for-open-follow-ups"),
            )
            timeout = None if wake is None else max(wake - workflow.now(), timedelta(0))
            try:
                await workflow.wait_condition(
                    lambda seen=seen: self._current.revision != seen or self._should_continue(),  # type: ignore[misc]
                    timeout=timeout,
                )
            except TimeoutError:
                assert wake is not None
                await self._apply(Tick(at=workflow.now()), key=_tick_key(wake))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._view()

    @property
    def _current(self) -> CaseState:
        assert self._state is not None
        return self._state

    def _should_continue(self) -> bool:
        limit = self._input.max_updates_per_run or MAX_UPDATES_PER_RUN
        return self._updates >= limit or workflow.info().is_continue_as_new_suggested()

    def _event_key(self, event: Any) -> str:
        """An identity for the event that a retried workflow task gives it again.

        ``seq`` is not one: a workflow task that dies after its local activity wrote the ledger
        is retried with whatever arrived meanwhile, and Temporal hands updates and signals to the
        workflow before a fired timer, so the retry can apply the events in another order and
        give the dead attempt's ``seq`` to a different event (its entries were then skipped as
        duplicates, and the first event's written again under the next ``seq``).
        """
        if isinstance(event, Opened):
            return "open"
        update = workflow.current_update_info()
        if update is not None:  # the update's id: Temporal's own identity for it
            return update_key(self._run_base, update.id)
        return f"r{self._run_base}.e{_digest(event.model_dump_json())}"  # a signal: its content

    async def _apply(
        self,
        event: Any,
        intake: dict[str, Any] | None = None,
        command: bool = False,
        key: str | None = None,
    ) -> None:
        event_key = key or self._event_key(event)
        async with self._lock:
            if command and workflow.patched("recheck-command-under-lock"):
                # Another update may have applied while this one waited for the lock (two
                # people claiming at once): check against the state it will really change.
                self._check(event)
            new, actions = apply(
                self._protocol,
                self._state,
                event,
                case_id=self._input.case_id,
                protocol_hash=self._input.protocol_hash,
            )
            if actions or intake:
                self._seq += 1
                await workflow.execute_local_activity(
                    "record_case_changes",
                    CaseChanges(
                        case_id=self._input.case_id,
                        seq=self._seq,
                        at=event.at,
                        event_key=event_key,
                        protocol_id=self._protocol.id,
                        protocol_version=self._protocol.version,
                        protocol_hash=self._input.protocol_hash,
                        country=self._protocol.country,
                        opened_at=new.opened_at,
                        closed_at=new.closed_at,
                        opened_by_institution=self._input.opened.actor.institution,
                        revision=new.revision,
                        intake=intake or None,
                        actions=actions,
                    ),
                    start_to_close_timeout=RECORD_TIMEOUT,
                    retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
                )
            self._state = new
            self._upsert_search_attributes()

    def _upsert_search_attributes(self) -> None:
        state = self._current
        open_tasks = state.open_tasks()
        phases = [self._protocol.step(t.step_id).phase for t in open_tasks]
        institutions = sorted({g.split(":")[0] for t in open_tasks for g in t.candidate_groups})
        wanted: list[SearchAttributeUpdate[Any]] = [
            sa.CASE_ID.value_set(state.case_id),
            sa.PROTOCOL_ID.value_set(state.protocol_id),
            sa.PROTOCOL_VERSION.value_set(state.protocol_version),
            sa.COUNTRY.value_set(self._protocol.country),
            sa.PHASE.value_set("closed" if state.closed else (phases[0] if phases else "waiting")),
            sa.OPEN_TASKS.value_set(len(open_tasks)),
            sa.OVERDUE.value_set(any(t.deadline_missed for t in open_tasks)),
            sa.INSTITUTIONS.value_set(institutions),
        ]
        if workflow.patched("upsert-only-changed-search-attributes"):
            # A claim changes none of them: no command, no history event, no visibility write.
            current = workflow.info().typed_search_attributes
            wanted = [u for u in wanted if current.get(u.key) != u.value]
            if not wanted:
                return
        workflow.upsert_search_attributes(wanted)

    def _view(self, task_id: str | None = None) -> CaseView:
        state = self._current
        return CaseView(
            case_id=state.case_id,
            revision=state.revision,
            closed=state.closed,
            open_tasks=state.open_tasks(),
            task=state.tasks.get(task_id) if task_id else None,
        )

    def _check(self, event: Any) -> None:
        if self._state is None:
            raise ApplicationError("case_not_ready", type="Rejection", non_retryable=True)
        try:
            check(self._protocol, self._state, event)
        except Rejection as rejected:
            raise rejection_error(rejected) from None

    async def _command(self, event: Any, task_id: str | None = None) -> CaseView:
        self._updates += 1
        self._check(event)  # the state may have moved since the validator ran
        await self._apply(event, command=True)
        return self._view(task_id)

    # --- updates --------------------------------------------------------------------------

    @workflow.update
    async def opened(self) -> CaseView:
        """Answers once the case has opened (the update of update-with-start)."""
        await workflow.wait_condition(lambda: self._state is not None)
        return self._view()

    @workflow.update
    async def claim(self, event: Claim) -> CaseView:
        return await self._command(event, event.task_id)

    @claim.validator
    def _validate_claim(self, event: Claim) -> None:
        self._check(event)

    @workflow.update
    async def unclaim(self, event: Unclaim) -> CaseView:
        return await self._command(event, event.task_id)

    @unclaim.validator
    def _validate_unclaim(self, event: Unclaim) -> None:
        self._check(event)

    @workflow.update
    async def reassign(self, event: Reassign) -> CaseView:
        return await self._command(event, event.task_id)

    @reassign.validator
    def _validate_reassign(self, event: Reassign) -> None:
        self._check(event)

    @workflow.update
    async def complete(self, event: Complete) -> CaseView:
        return await self._command(event, event.task_id)

    @complete.validator
    def _validate_complete(self, event: Complete) -> None:
        self._check(event)

    @workflow.update
    async def set_fact(self, event: SetFact) -> CaseView:
        """Add or correct a fact; consent recorded, refused or revoked is the fact ``consent``."""
        return await self._command(event)

    @set_fact.validator
    def _validate_set_fact(self, event: SetFact) -> None:
        self._check(event)

    # --- signals and queries --------------------------------------------------------------

    @workflow.signal
    async def external(self, event: SetFact) -> None:
        """An external event (e.g. the person arrived at a shelter) recorded as a fact."""
        try:
            check(self._protocol, self._state, event)
        except Rejection:
            workflow.logger.warning("external event rejected")
            return
        await self._apply(event)

    @workflow.query
    def state(self) -> CaseState:
        return self._current

    @workflow.query
    def view(self) -> CaseView:
        return self._view()
