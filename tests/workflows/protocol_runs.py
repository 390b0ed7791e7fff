"""Drive ERI's real protocols (``protocols/definitions``) through CaseWorkflow as a response team
would, on the time-skipping server and ERI's production worker.

Every open task is claimed and completed with a valid form generated from its step's fields
(synthetic values only, all marked FICTICIO); facts are recorded as the forms reveal them: the
engine records the answer of a field marked ``sets_fact`` on completion (under 1.0.0, which
marks none, the team records the fact named like the field itself). The clock is advanced
to every deadline, escalation rung and follow-up the protocol sets: one second before it nothing
has fired, and its ledger entry (and, for a rung, its notification) carries the protocol time.

A *branch* is the set of facts a case ends with; a *policy* says how long tasks stay open:

- ``prompt``: each task is completed as soon as it opens (on time);
- ``at_deadline``: each task with a deadline stays open until its deadline fired (late);
- ``full_ladder``: each task stays open until every rung of its escalation ladder fired.

Used by ``tests/workflows/test_protocol_runs.py``, the history recorder
(``python -m tests.histories.record``) and ``bench/history_bench.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from eri import ledger
from eri.db.models import CaseRow, LedgerEntry, TaskRow
from eri.runtime import Runtime
from protocols.conditions import FactValue
from protocols.durations import due_at, parse_duration
from protocols.loader import load_protocol
from protocols.lock import content_hash
from protocols.model import FormField, Protocol, Step
from protocols.paths import walk
from protocols.registry import load_definitions
from workflows.case import CaseInput, CaseView, CaseWorkflow
from workflows.interpreter import Actor, CaseState, Claim, Complete, Opened, SetFact, Task

Policy = Literal["prompt", "at_deadline", "full_ladder"]
POLICIES: tuple[Policy, ...] = ("prompt", "at_deadline", "full_ladder")
PROTOCOL_IDS = ("gt-eri", "hn-cicesct")
# A scheduled entry must carry its protocol time to within this (the server's timers fire a few
# milliseconds after the time they were set for; they never fire early).
TOLERANCE = timedelta(seconds=1)
# A command is not sent while an awaited timer is this close (see CaseRun._imminent).
IMMINENT = timedelta(seconds=2)
SCHEDULED = ("deadline.missed", "escalation.rung")

# Replayable histories carry no secret: the production payload converter without the
# encrypting codec (the data in them is synthetic).
PLAIN_CONVERTER = DataConverter(
    payload_converter_class=PydanticPayloadConverter,
    failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
)


@dataclass(frozen=True)
class Branch:
    """The facts a case ends with. ``withheld`` facts (ones no form records) are recorded only
    when nothing else is left to do; ``revoke_after`` revokes consent once that step is done;
    ``follow_up_visits`` visits of the repeating follow-up before it is marked complete."""

    name: str
    facts: dict[str, FactValue]
    revoke_after: str | None = None
    withheld: tuple[str, ...] = ()
    follow_up_visits: int = 1


ADULT: dict[str, FactValue] = {
    "minor": False,
    "foreign_national": False,
    "returned_from_abroad": False,
    "consent": "given",
    "consular_contact_agreed": False,
    "repatriation_requested": False,
    "cross_border": False,
    "risk_level": "low",
    "family_involved": False,
}
EVERYTHING: dict[str, FactValue] = ADULT | {
    "foreign_national": True,
    "returned_from_abroad": True,
    "consular_contact_agreed": True,
    "repatriation_requested": True,
    "cross_border": True,
    "risk_level": "high",
}

BRANCHES: tuple[Branch, ...] = (
    Branch("main", ADULT),
    Branch("minor", ADULT | {"minor": True}),
    Branch("minor_family_involved", ADULT | {"minor": True, "family_involved": True}),
    Branch(
        "foreign_national_repatriation",
        ADULT
        | {
            "foreign_national": True,
            "consular_contact_agreed": True,
            "repatriation_requested": True,
        },
    ),
    Branch("foreign_national_no_consul", ADULT | {"foreign_national": True}),
    Branch("consent_refused", ADULT | {"consent": "refused"}),
    Branch("consent_revoked", ADULT | {"consent": "revoked"}, revoke_after="risk_assessment"),
    Branch("high_risk", ADULT | {"risk_level": "high"}),
    Branch("returned_from_abroad", ADULT | {"returned_from_abroad": True}),
    Branch("cross_border", ADULT | {"cross_border": True}),
    Branch(
        "minor_refused_repatriation",
        ADULT
        | {
            "minor": True,
            "consent": "refused",
            "foreign_national": True,
            "consular_contact_agreed": True,
            "repatriation_requested": True,
        },
    ),
)
# Between them these two reach every step with a deadline (tested in test_protocol_runs).
DEADLINE_BRANCHES: tuple[Branch, ...] = (
    Branch(
        "everything_adult", EVERYTHING, withheld=("repatriation_requested",), follow_up_visits=2
    ),
    Branch(
        "everything_minor",
        EVERYTHING | {"minor": True, "family_involved": True},
        withheld=("repatriation_requested",),
        follow_up_visits=2,
    ),
)


def protocols() -> dict[str, tuple[Protocol, str]]:
    """The shipped protocols by id, registered for the worker: (protocol, content hash)."""
    load_definitions()
    found = {}
    for protocol_id in PROTOCOL_IDS:
        protocol = load_protocol(protocol_id)
        found[protocol_id] = (protocol, content_hash(protocol))
    return found


# Under 1.0.0 no field is marked ``sets_fact``: the team records a fact itself after the form that
# revealed it (a field named like the fact, or one of these).
FORM_FACTS = {"decision": "consent"}


def form_fact(protocol: Protocol, form_field: FormField) -> str | None:
    """The fact a form field reveals: the one it records (``sets_fact``), or by its name."""
    name = form_field.sets_fact or FORM_FACTS.get(form_field.id, form_field.id)
    return name if name in {f.id for f in protocol.facts} else None


def form_facts(protocol: Protocol) -> set[str]:
    """Facts some step's form reveals."""
    found = {form_fact(protocol, f) for s in protocol.steps if s.form for f in s.form.fields}
    return {name for name in found if name is not None}


# --- the clock, checked independently of the engine ---------------------------------------


def check_clock(protocol: Protocol, step: Step, anchor: datetime, due: datetime) -> None:
    """The due time keeps the protocol's arithmetic: exact hours, N calendar days at the same
    wall-clock time, or N working days (no weekend, no holiday of the calendar) at that time."""
    deadline = step.deadline
    assert deadline is not None
    duration = parse_duration(deadline.duration)
    zone = ZoneInfo(protocol.timezone)
    start, end = anchor.astimezone(zone), due.astimezone(zone)
    if deadline.clock == "hours":
        assert due - anchor == duration.to_timedelta(), (step.id, anchor, due)
        return
    assert end.time() == start.time(), (step.id, start, end)
    if deadline.clock == "calendar_days":
        assert (end.date() - start.date()).days == duration.whole_days, (step.id, start, end)
        return
    holidays = protocol.business_calendar.holiday_set(range(start.year, start.year + 2))
    working = [
        start.date() + timedelta(days=n)
        for n in range(1, (end.date() - start.date()).days + 1)
        if _working(start.date() + timedelta(days=n), holidays)
    ]
    assert len(working) == duration.whole_days and working[-1] == end.date(), (step.id, start, end)


def _working(day: date, holidays: frozenset[date]) -> bool:
    return day.weekday() < 5 and day not in holidays


def spans_holiday(protocol: Protocol, anchor: datetime, due: datetime) -> bool:
    zone = ZoneInfo(protocol.timezone)
    first, last = anchor.astimezone(zone).date(), due.astimezone(zone).date()
    holidays = protocol.business_calendar.holiday_set(range(first.year, first.year + 2))
    return any(first < day <= last for day in holidays)


def eve_of_holiday(protocol: Protocol, after: datetime) -> datetime:
    """16:00 local on the last working day before the next holiday of the protocol's calendar
    (business-day deadlines from then cross the holiday and usually a weekend)."""
    zone = ZoneInfo(protocol.timezone)
    local = after.astimezone(zone)
    holidays = protocol.business_calendar.holiday_set(range(local.year, local.year + 2))
    for holiday in sorted(d for d in holidays if d > local.date() + timedelta(days=1)):
        eve = holiday - timedelta(days=1)
        while not _working(eve, holidays):
            eve -= timedelta(days=1)
        moment = datetime(eve.year, eve.month, eve.day, 16, 0, tzinfo=zone)
        if moment > after:
            return moment
    raise AssertionError("no holiday ahead")


# --- notifications ------------------------------------------------------------------------


class NoticeSink:
    """A webhook receiver for ERI's notification channel (``ERI_NOTIFY_WEBHOOK_URL``): keeps
    every notice once (by its idempotency key)."""

    def __init__(self) -> None:
        self.notices: dict[str, dict[str, Any]] = {}
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> NoticeSink:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/notify"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readline():
                headers = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.notices.setdefault(headers.get("idempotency-key", ""), json.loads(body))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the channel's keep-alive connection ends when the sink or the worker stops
        finally:
            writer.close()

    def of_task(self, task_id: str) -> list[dict[str, Any]]:
        return [n for n in self.notices.values() if n.get("task_id") == task_id]


# --- one case -----------------------------------------------------------------------------


@dataclass
class Expected:
    """A scheduled ledger entry: a task's deadline or rung, or a follow-up's next visit."""

    action: str
    step_id: str
    at: datetime  # when it falls due
    fire: datetime  # when it must fire (``at``, or the task's opening if that came later)
    waited: bool  # the policy keeps the task open until it fired
    task_id: str | None = None
    rung: int | None = None
    detail_hash: str | None = None
    targets: list[str] = field(default_factory=list)
    fired: datetime | None = None
    future: bool = True  # it fell due after the task opened (so "not before" was checked)


@dataclass
class RunResult:
    case_id: str
    protocol_id: str
    branch: str
    policy: Policy
    history_events: int
    runs: int
    ledger_actions: list[tuple[str, str | None]]
    completed: list[str]
    cancelled: list[str]
    fired: list[Expected]
    business_days_over_holiday: list[str]
    history_json: str


@dataclass
class Engine:
    """A time-skipping server, a running production worker and what the checks read."""

    env: WorkflowEnvironment
    queue: str
    sessions: async_sessionmaker[AsyncSession]
    sink: NoticeSink

    @property
    def client(self) -> Client:
        return self.env.client


@contextlib.asynccontextmanager
async def engine(env: WorkflowEnvironment, runtime: Runtime) -> AsyncIterator[Engine]:
    """ERI's production worker (a queue of its own) whose notices go to a :class:`NoticeSink`."""
    from tests.conftest import worker_on_new_queue

    async with NoticeSink() as sink:
        settings = runtime.settings.model_copy(update={"notify_webhook_url": sink.url})
        worker: Worker
        worker, queue = worker_on_new_queue(
            env.client, dataclasses.replace(runtime, settings=settings)
        )
        async with worker:
            yield Engine(env, queue, runtime.sessions, sink)


def actor_for(group: str, role: str = "responder") -> Actor:
    institution, group_role = group.split(":")
    return Actor(
        actor_id=f"usr_{institution}_{group_role}"[:52],
        role=role,
        institution=institution,
        groups=[group],
    )


class CaseRun:
    def __init__(
        self,
        engine: Engine,
        protocol: Protocol,
        protocol_hash: str,
        branch: Branch,
        policy: Policy,
        max_updates_per_run: int | None = None,
        claim: bool = True,
    ) -> None:
        self.engine = engine
        self.claim = claim
        self.view: CaseView | None = None
        self.protocol = protocol
        self.protocol_hash = protocol_hash
        self.branch = branch
        self.policy = policy
        self.max_updates_per_run = max_updates_per_run
        self.case_id = "case_" + uuid.uuid4().hex[:20]
        self.zone = ZoneInfo(protocol.timezone)
        self.coordinator = actor_for(
            protocol.step(protocol.closure_step).responsible[0], "coordinator"
        )
        self.facts: dict[str, FactValue] = {}
        self.fact_times: dict[str, datetime] = {}
        self.completed_at: dict[str, list[datetime]] = {}
        self.expected: dict[tuple[str, str, int | None], Expected] = {}
        self.seen_tasks: set[str] = set()
        self.ledger_seen = 0
        self.over_holiday: list[str] = []
        self.revoked = False
        self.withheld = [f for f in branch.withheld if f in branch.facts]
        self.visits_over: dict[str, bool] = {}  # repeating step -> its last form ended it
        self.opened_at: datetime | None = None
        self.order = {s.id: n for n, s in enumerate(protocol.steps)}

    @property
    def handle(self) -> WorkflowHandle[CaseWorkflow, Any]:
        return self.engine.client.get_workflow_handle_for(CaseWorkflow.run, self.case_id)

    async def now(self) -> datetime:
        return await self.engine.env.get_current_time()

    # --- commands ---

    async def open(self) -> None:
        at = await self.now()
        facts = {
            k: v
            for k, v in self.branch.facts.items()
            if k not in form_facts(self.protocol) and k not in self.branch.withheld
        }
        start = WithStartWorkflowOperation(
            CaseWorkflow.run,
            CaseInput(
                case_id=self.case_id,
                protocol_id=self.protocol.id,
                protocol_version=self.protocol.version,
                protocol_hash=self.protocol_hash,
                opened=Opened(at=at, actor=self.coordinator, facts=facts),
                intake={"alias": "PERSONA FICTICIA 0001", "note": "datos sintéticos de prueba"},
                **(
                    {"max_updates_per_run": self.max_updates_per_run}
                    if self.max_updates_per_run
                    else {}
                ),
            ),
            id=self.case_id,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            task_queue=self.engine.queue,
        )
        self.view = await self.engine.client.execute_update_with_start_workflow(
            CaseWorkflow.opened, start_workflow_operation=start
        )
        self.opened_at = at
        self.facts.update(facts)
        self.fact_times.update({k: at for k in facts})

    async def set_fact(self, fact: str, value: FactValue) -> None:
        at = await self.now()
        self.view = await self.handle.execute_update(
            CaseWorkflow.set_fact, SetFact(at=at, actor=self.coordinator, fact=fact, value=value)
        )
        self.facts[fact] = value
        self.fact_times[fact] = at

    def form_for(self, step: Step, at: datetime) -> dict[str, Any]:
        return {f.id: self._value(step, f, at) for f in (step.form.fields if step.form else [])}

    def _value(self, step: Step, form_field: FormField, at: datetime) -> Any:
        fact = form_fact(self.protocol, form_field)
        if fact == "follow_up_complete":
            visits = len(self.completed_at.get(step.id, [])) + 1
            return visits >= self.branch.follow_up_visits
        if fact == "consent":
            wanted = self.branch.facts.get("consent", "given")
            return wanted if wanted in (form_field.values or []) else "given"
        if fact in self.branch.facts and form_field.type in ("boolean", "enum"):
            return self.branch.facts[fact]
        local = at.astimezone(self.zone)
        return {
            "boolean": True,
            "integer": 1,
            "enum": (form_field.values or [""])[0],
            "date": local.date().isoformat(),
            "datetime": local.isoformat(),
        }.get(form_field.type, f"FICTICIO {step.id}.{form_field.id}")

    async def work(self, task: Task) -> None:
        step = self.protocol.step(task.step_id)
        actor = actor_for(task.candidate_groups[0])
        revision = task.revision
        if self.claim:
            at = await self.now()
            claimed = await self.handle.execute_update(
                CaseWorkflow.claim,
                Claim(at=at, actor=actor, task_id=task.task_id, if_revision=revision),
            )
            assert claimed.task is not None and claimed.task.assignee == actor.actor_id
            revision = claimed.task.revision
        at = await self.now()
        form = self.form_for(step, at)
        self.view = await self.handle.execute_update(
            CaseWorkflow.complete,
            Complete(at=at, actor=actor, task_id=task.task_id, if_revision=revision, form=form),
        )
        assert self.view.task is not None and self.view.task.status == "completed"
        self.completed_at.setdefault(step.id, []).append(at)
        for expected in self.expected.values():
            if expected.task_id == task.task_id and expected.fired is None:
                assert expected.fire > at, f"{expected} should have fired before completion"
                expected.waited = False  # the task is done: it must never fire
        if step.repeats is not None:
            self.visits_over[step.id] = form.get("follow_up_complete") is True
        for form_field in step.form.fields if step.form else []:
            fact, value = form_fact(self.protocol, form_field), form.get(form_field.id)
            if fact is None or value is None or self.facts.get(fact) == value:
                continue
            if form_field.sets_fact:  # the engine recorded it with the completion, at its time
                self.facts[fact], self.fact_times[fact] = value, at
            else:
                await self.set_fact(fact, value)
        if step.id == self.branch.revoke_after and not self.revoked:
            self.revoked = True
            await self.set_fact("consent", "revoked")

    # --- expectations ---

    def _anchor(self, task: Task, step: Step) -> datetime:
        deadline = step.deadline
        assert deadline is not None and self.opened_at is not None
        anchor = deadline.anchor
        if anchor.event == "case_opened":
            return self.opened_at
        if anchor.event == "step_opened":
            return task.opened_at
        if anchor.event == "step_completed":
            assert anchor.step is not None
            return self.completed_at[anchor.step][0]
        assert anchor.fact is not None
        return self.fact_times[anchor.fact]

    def _see(self, open_tasks: list[Task]) -> None:
        """New open tasks: their due time is the protocol's, and their schedule is expected."""
        for task in open_tasks:
            if task.task_id in self.seen_tasks:
                continue
            self.seen_tasks.add(task.task_id)
            step = self.protocol.step(task.step_id)
            if step.deadline is None:
                assert task.due_at is None, task
                continue
            anchor = self._anchor(task, step)
            deadline = step.deadline
            holidays = self.protocol.business_calendar.holiday_set(
                range(anchor.year, anchor.year + 2)
            )
            due = due_at(
                anchor, deadline.duration, deadline.clock, self.protocol.timezone, holidays
            )
            check_clock(self.protocol, step, anchor, due)
            assert task.due_at == due, (step.id, task.due_at, due)
            if deadline.clock == "business_days" and spans_holiday(self.protocol, anchor, due):
                self.over_holiday.append(step.id)
            self._expect(task, "deadline.missed", None, due, self.policy != "prompt")
            ladder = self.protocol.escalation_ladders.get(step.escalation or "", [])
            for n, rung in enumerate(ladder, start=1):
                at = due + parse_duration(rung.after).to_timedelta()
                waited = self.policy == "full_ladder" or (
                    self.policy == "at_deadline" and at == due
                )
                expected = self._expect(task, "escalation.rung", n, at, waited)
                expected.detail_hash = ledger.detail_hash({"rung": n, "action": rung.action})
                expected.targets = list(rung.targets) or list(task.candidate_groups)

    def _see_follow_ups(self, state: CaseState) -> None:
        """A visit that is still to come opens a protocol period after the last one."""
        for step_id, at in state.follow_ups.items():
            key = ("task.opened", step_id, len(self.completed_at[step_id]) + 1)
            step = self.protocol.step(step_id)
            assert step.repeats is not None
            schedule = self.protocol.follow_up_schedules[step.repeats]
            if self.visits_over.get(step_id) or len(self.completed_at[step_id]) >= (
                schedule.max_occurrences or 10**6
            ):
                continue  # scheduled before the visit's form ended it: must not open
            if key not in self.expected:
                last = self.completed_at[step_id][-1]
                days = parse_duration(schedule.every).whole_days
                assert schedule.clock == "calendar_days"
                local = last.astimezone(self.zone)
                assert at.astimezone(self.zone) == local + timedelta(days=days), (at, last)
                self.expected[key] = Expected("task.opened", step_id, at, at, True)

    def _expect(
        self, task: Task, action: str, rung: int | None, at: datetime, waited: bool
    ) -> Expected:
        fire = max(at, task.opened_at)
        expected = Expected(
            action, task.step_id, at, fire, waited, task.task_id, rung, future=at > task.opened_at
        )
        self.expected[(action, task.task_id, rung)] = expected
        return expected

    async def _reconcile(self) -> bool:
        """Match every new scheduled ledger entry to what the protocol says, at its time;
        True if there were any."""
        async with self.engine.sessions() as session:
            new = list(
                (
                    await session.execute(
                        select(LedgerEntry)
                        .where(
                            LedgerEntry.case_id == self.case_id,
                            LedgerEntry.case_seq > self.ledger_seen,
                        )
                        .order_by(LedgerEntry.case_seq)
                    )
                ).scalars()
            )
        for entry in new:
            assert entry.case_seq == self.ledger_seen + 1, "ledger case sequence has a gap"
            self.ledger_seen = entry.case_seq
            if entry.action in SCHEDULED:
                match = [
                    e
                    for e in self.expected.values()
                    if e.fired is None
                    and e.action == entry.action
                    and e.step_id == entry.step_id
                    and e.detail_hash == entry.detail_hash
                    and e.fire <= entry.recorded_at < e.fire + TOLERANCE
                ]
                assert match, f"unexpected {entry.action} of {entry.step_id} at {entry.recorded_at}"
                match[0].fired = entry.recorded_at
            elif entry.action == "task.opened":
                for e in self.expected.values():
                    if e.action == "task.opened" and e.step_id == entry.step_id and not e.fired:
                        assert e.fire <= entry.recorded_at < e.fire + TOLERANCE, (e, entry)
                        e.fired = entry.recorded_at
        now = await self.now()
        for e in self.expected.values():
            if e.waited and e.fired is None:
                assert e.fire + TOLERANCE > now, (
                    f"{e.action} of {e.step_id} did not fire at {e.fire}"
                )
        return any(entry.action in SCHEDULED for entry in new)

    async def _check_notices(self, expected: Expected) -> None:
        if expected.action != "escalation.rung":
            return
        for _ in range(50):
            sent = [
                n
                for n in self.engine.sink.of_task(expected.task_id or "")
                if n["rung"] == expected.rung
            ]
            if sent:
                assert [n["targets"] for n in sent] == [expected.targets], (expected, sent)
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"no notice for rung {expected.rung} of {expected.step_id}")

    async def _advance(self, to: datetime) -> None:
        """Nothing fires one second before ``to``; what is due at ``to`` fires then."""
        due = [e for e in self.expected.values() if e.waited and e.fired is None and e.fire == to]
        now = await self.now()
        if to - TOLERANCE > now:
            sent_before = {e.task_id: len(self.engine.sink.of_task(e.task_id or "")) for e in due}
            await self.engine.env.sleep(to - TOLERANCE - now)
            await self._reconcile()
            assert all(e.fired is None for e in due)
            for e in due:
                assert len(self.engine.sink.of_task(e.task_id or "")) == sent_before[e.task_id]
        now = await self.now()
        if to + TOLERANCE > now:
            await self.engine.env.sleep(to + TOLERANCE - now)
        await self._reconcile()
        for e in due:
            assert e.fired is not None, f"{e.action} of {e.step_id} did not fire at {to}"
            await self._check_notices(e)

    async def _imminent(self) -> datetime | None:
        """The time of an awaited timer due within ``IMMINENT``, if any. It is let fire before
        the next command: the time-skipping test server refuses a workflow task that cancels a
        timer which fired while the task ran, and leaves the case hanging (it never times the
        task out; temporalio/sdk-java#2606 and #3088). The real server handles that race."""
        now = await self.now()
        due = [e.fire for e in self.expected.values() if e.waited and e.fired is None]
        soon = min(due, default=None)
        return soon if soon is not None and soon - now < IMMINENT else None

    def _ready(self, task: Task) -> bool:
        return all(
            e.fired is not None
            for e in self.expected.values()
            if e.task_id == task.task_id and e.waited
        )

    # --- the run ---

    async def drive(self) -> RunResult:
        await self.open()
        result = await self.resume()
        assert result is not None
        return result

    async def resume(self, stop_before: str | None = None) -> RunResult | None:
        """Work the case to closure; with ``stop_before``, return None once that step's task is
        the only thing left to do (the test goes on with ``resume()``)."""
        while True:
            view = self.view
            if view is None or not any(self._ready(t) for t in view.open_tasks):
                # nothing to do by the last answer: read the case (ticks may have moved it)
                state = await self.handle.query(CaseWorkflow.state)
                self._see_follow_ups(state)
                view = CaseView(
                    case_id=state.case_id,
                    revision=state.revision,
                    closed=state.closed,
                    open_tasks=state.open_tasks(),
                )
            if view.closed:
                break
            self._see(view.open_tasks)
            if await self._reconcile() and view is self.view:
                self.view = None  # a deadline or rung changed tasks since that answer
                continue
            ready = sorted(
                (t for t in view.open_tasks if self._ready(t)),
                key=lambda t: self.order[t.step_id],
            )
            if ready and ready[0].step_id == stop_before and len(ready) == 1:
                return None
            if ready:
                if soon := await self._imminent():
                    self.view = None
                    await self._advance(soon)
                    continue
                await self.work(ready[0])
                continue
            self.view = None
            pending = [e.fire for e in self.expected.values() if e.waited and e.fired is None]
            if pending:
                await self._advance(min(pending))
                continue
            if self.withheld:
                fact = self.withheld.pop(0)
                await self.set_fact(fact, self.branch.facts[fact])
                continue
            raise AssertionError(
                f"stuck: open {[t.step_id for t in view.open_tasks]}, facts {self.facts}"
            )
        return await self._finish()

    async def _finish(self) -> RunResult:
        result = await self.handle.result()
        assert result.closed and not result.open_tasks
        await self._reconcile()
        for e in self.expected.values():
            assert e.fired is not None or not e.waited, e
        entries = await ledger.entries(self.engine.sessions, case_id=self.case_id)
        actions = [(e.action, e.step_id) for e in entries]
        assert actions[0][0] == "case.opened" and actions[-1][0] == "case.closed"
        assert [e.case_seq for e in entries] == list(range(1, len(entries) + 1))
        final = await self.handle.query(CaseWorkflow.state)
        assert dict(final.facts) == self.facts, "the engine's facts are not the forms' answers"
        completed = sorted(
            {t.step_id for t in final.tasks.values() if t.status == "completed"}, key=self.order.get
        )
        cancelled = sorted(
            {t.step_id for t in final.tasks.values() if t.status == "cancelled"}, key=self.order.get
        )
        reached = walk(self.protocol, dict(final.facts)).reached
        if self.branch.revoke_after is None:
            assert completed == sorted(reached, key=self.order.get), (completed, reached)
        else:
            assert set(reached) <= set(completed), (completed, reached)
        for entry in entries:
            if entry.action != "task.completed":
                continue
            step = self.protocol.step(entry.step_id or "")
            late = any(
                e.step_id == step.id
                and e.action == "deadline.missed"
                and e.fired
                and e.fired <= entry.recorded_at
                for e in self.expected.values()
            )
            wanted = "none" if step.deadline is None else "late" if late else "on_time"
            if step.repeats is None:
                assert entry.deadline_status == wanted, (step.id, entry.deadline_status, wanted)
        async with self.engine.sessions() as session:
            case = await session.get(CaseRow, self.case_id)
            assert case is not None and case.status == "closed"
            rows = {
                r.task_id: r.status
                for r in (
                    await session.execute(select(TaskRow).where(TaskRow.case_id == self.case_id))
                ).scalars()
            }
        assert rows == {t.task_id: t.status for t in final.tasks.values()}
        history = await self.handle.fetch_history()
        events, runs, earlier = len(history.events), 1, history
        while True:  # back through the runs a continue-as-new chained
            started = earlier.events[0].workflow_execution_started_event_attributes
            if not started.continued_execution_run_id:
                break
            earlier = await self.engine.client.get_workflow_handle(
                self.case_id, run_id=started.continued_execution_run_id
            ).fetch_history()
            events, runs = events + len(earlier.events), runs + 1
        return RunResult(
            case_id=self.case_id,
            protocol_id=self.protocol.id,
            branch=self.branch.name,
            policy=self.policy,
            history_events=events,
            runs=runs,
            ledger_actions=actions,
            completed=completed,
            cancelled=cancelled,
            fired=[e for e in self.expected.values() if e.fired is not None],
            business_days_over_holiday=self.over_holiday,
            history_json=history.to_json(),
        )


async def run_case(
    engine: Engine,
    protocol_id: str,
    branch: Branch,
    policy: Policy,
    *,
    start: Literal["now", "eve_of_holiday"] = "now",
    max_updates_per_run: int | None = None,
    claim: bool = True,
) -> RunResult:
    protocol, digest = protocols()[protocol_id]
    if start == "eve_of_holiday":
        now = await engine.env.get_current_time()
        await engine.env.sleep(eve_of_holiday(protocol, now) - now)
    run = CaseRun(engine, protocol, digest, branch, policy, max_updates_per_run, claim)
    return await run.drive()
