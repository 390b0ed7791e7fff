"""Crash tests of the case engine: real ``eri worker`` processes and a real dev server, SIGKILLed.

1. A worker killed in the middle of ``record_case_changes``: the test holds a PostgreSQL lock on
   the ledger (or the task projection) so the activity blocks inside its transaction, sees that
   nothing of the change is visible yet, SIGKILLs the worker, releases the lock and starts
   another worker. The case completes; the ledger holds exactly the entries a pure replay
   of the same events gives (none lost, none twice), every step is completed once and the task
   projection equals the workflow's state.
2. The dev server killed mid-case and restarted on the same SQLite file and port: the case's
   state is intact, updates are accepted, and a deadline that fell due during the downtime fires
   (its ledger entries are written after the restart).

The case is a gt-eri case (the worker loads protocols/definitions). Its events carry the times
the test chose; test 2 opens its case "received two hours ago less a few seconds", the honest
way to make gt-eri's two-hour activation deadline (anchored on the case's opening) fall due in
seconds.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from activities.case import CaseActivities
from api.casework import form_schema, protocol
from eri import ledger, temporal
from eri.db import upgrade
from eri.db.models import CaseRow, LedgerEntry, LedgerHead, TaskRow, VaultRecord
from eri.notify import LogChannel
from eri.runtime import Runtime, open_runtime
from eri.settings import Settings
from eri.vault import Vault
from protocols.lock import content_hash
from protocols.model import Protocol
from tests.api.casework_support import GT_ADULT, GT_TEAM, form_for
from tests.support.processes import (
    Service,
    dev_server,
    dev_server_settings,
    eventually,
    polling,
    worker,
)
from workflows.case import CaseChanges, CaseInput, CaseView, CaseWorkflow, update_key
from workflows.interpreter import Actor, Audit, CaseState, Claim, Complete, Opened, Task, apply

GT = protocol("gt-eri")  # also registers it for this process
GT_HASH = content_hash(GT)
TEAM = [
    Actor(
        actor_id="usr_" + name.replace(".", ""),
        role=role,
        institution=institution.upper(),
        groups=groups,
    )
    for name, role, institution, groups in GT_TEAM
]
INTAKE = {"name": "Persona Sintética Crash", "statement": "Relato sintético."}
UP_WITHIN = 60.0  # a dev server or a worker on a loaded 2-core machine
CASE_WITHIN = 45.0  # an update that waits for a new worker (the workflow task timeout is 10 s)


def who_can(groups: list[str]) -> Actor:
    ordered = [a for a in TEAM if a.role == "responder"] + [
        a for a in TEAM if a.role != "responder"
    ]
    return next(a for a in ordered if set(a.groups) & set(groups))


def now() -> datetime:
    return datetime.now(UTC)


# --- processes ------------------------------------------------------------------------------


@dataclass
class Stack:
    """The test's processes (each one SIGKILLed at teardown) and their shared settings."""

    settings: Settings
    logs: Path
    services: list[Service] = field(default_factory=list)

    def server(self) -> Service:
        service = dev_server(self.settings, self.logs / "temporal.log")
        self.services.append(service)
        return service.start()

    def worker(self, n: int) -> Service:
        service = worker(self.settings, self.logs / f"worker-{n}.log")
        self.services.append(service)
        return service.start()

    def tails(self) -> str:
        return "\n".join(f"--- {s.log.name} ---\n{s.tail()}" for s in self.services)


@contextmanager
def _stack(tmp_path: Path, **settings: Any) -> Iterator[Stack]:
    stack = Stack(dev_server_settings(tmp_path / "data", **settings), tmp_path)
    stack.settings.ensure_dirs()
    try:
        yield stack
    finally:
        for service in stack.services:
            service.kill()
        print(stack.tails())  # shown by pytest only when the test failed


@pytest.fixture
def pg_stack(tmp_path: Path, postgres_url: str) -> Iterator[Stack]:
    with _stack(tmp_path, database_url=postgres_url) as stack:
        yield stack


@pytest.fixture
def sqlite_stack(tmp_path: Path) -> Iterator[Stack]:
    with _stack(tmp_path) as stack:
        upgrade(stack.settings.effective_database_url)
        yield stack


@pytest.fixture
async def pg_platform(pg_stack: Stack) -> AsyncIterator[tuple[Stack, Runtime]]:
    async with open_runtime(pg_stack.settings) as runtime:  # the workers' KEK and key store
        yield pg_stack, runtime


@pytest.fixture
async def sqlite_platform(sqlite_stack: Stack) -> AsyncIterator[tuple[Stack, Runtime]]:
    async with open_runtime(sqlite_stack.settings) as runtime:
        yield sqlite_stack, runtime


async def connect(stack: Stack, runtime: Runtime) -> Client:
    return await temporal.connect_with_retry(stack.settings, runtime.keyring, timeout=UP_WITHIN)


# --- driving a gt-eri case through the client ----------------------------------------------


@dataclass
class Case:
    """A case and every event it was sent (answered) with its ledger key, to replay purely."""

    client: Client
    case_id: str
    events: list[tuple[Any, str]]
    view: CaseView

    async def send(self, update: Any, event: Any, update_id: str | None = None) -> CaseView:
        handle: WorkflowHandle[Any, Any] = self.client.get_workflow_handle_for(
            CaseWorkflow.run, self.case_id
        )
        update_id = update_id or "u-" + uuid.uuid4().hex
        self.view = await handle.execute_update(update, event, id=update_id)
        self.events.append((event, update_key(0, update_id)))
        return self.view

    def task(self, step_id: str) -> Task:
        (task,) = [t for t in self.view.open_tasks if t.step_id == step_id]
        return task

    async def claim(self, task: Task) -> CaseView:
        actor = who_can(task.candidate_groups)
        return await self.send(
            CaseWorkflow.claim, Claim(at=now(), actor=actor, task_id=task.task_id)
        )

    def completion(self, task: Task) -> Complete:
        form = form_for(form_schema(GT.step(task.step_id), "en"), facts=GT_ADULT)
        actor = who_can(task.candidate_groups)
        return Complete(at=now(), actor=actor, task_id=task.task_id, form=form)

    async def do(self, task: Task) -> CaseView:
        await self.claim(task)
        return await self.send(CaseWorkflow.complete, self.completion(task))

    async def drive_to_closure(self, limit: int = 80) -> list[str]:
        done: list[str] = []
        for _ in range(limit):
            if self.view.closed:
                return done
            assert self.view.open_tasks, f"case stuck after {done}"
            task = self.view.open_tasks[0]
            await self.do(task)
            done.append(task.step_id)
        raise AssertionError(f"no closure after {limit} tasks: {done}")

    async def state(self) -> CaseState:
        handle: WorkflowHandle[Any, Any] = self.client.get_workflow_handle_for(
            CaseWorkflow.run, self.case_id
        )
        return await handle.query(CaseWorkflow.state)


async def open_case(client: Client, queue: str, opened_at: datetime) -> Case:
    case_id = "case_" + uuid.uuid4().hex[:20]
    opened = Opened(at=opened_at, actor=who_can(["svet:eri_coordinator"]), facts=GT_ADULT)
    start = WithStartWorkflowOperation(
        CaseWorkflow.run,
        CaseInput(
            case_id=case_id,
            protocol_id=GT.id,
            protocol_version=GT.version,
            protocol_hash=GT_HASH,
            opened=opened,
            intake=INTAKE,
        ),
        id=case_id,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        task_queue=queue,
    )
    view = await asyncio.wait_for(
        client.execute_update_with_start_workflow(
            CaseWorkflow.opened, start_workflow_operation=start
        ),
        CASE_WITHIN,
    )
    return Case(client, case_id, [(opened, "open")], view)


def replay(
    proto: Protocol, case_id: str, events: list[tuple[Any, str]]
) -> tuple[CaseState, list[tuple[str, str, str | None]]]:
    """The final state and the ledger (idempotency key, action, step) a clean run writes."""
    state: CaseState | None = None
    expected: list[tuple[str, str, str | None]] = []
    for event, key in events:
        state, actions = apply(proto, state, event, case_id=case_id, protocol_hash=GT_HASH)
        expected += [
            (f"{case_id}:{key}:{index}", a.action, a.step_id)
            for index, a in enumerate(actions)
            if isinstance(a, Audit)
        ]
    assert state is not None
    return state, expected


async def assert_projection_matches(runtime: Runtime, state: CaseState) -> None:
    async with runtime.sessions() as s:
        case = await s.get(CaseRow, state.case_id)
        assert case is not None
        assert (case.status, case.revision) == (
            "closed" if state.closed else "open",
            state.revision,
        )
        rows = {
            r.task_id: r
            for r in (
                await s.execute(select(TaskRow).where(TaskRow.case_id == state.case_id))
            ).scalars()
        }
    assert set(rows) == set(state.tasks)
    for task_id, task in state.tasks.items():
        row = rows[task_id]
        projected = (
            row.step_id,
            row.status,
            row.assignee,
            row.revision,
            row.deadline_missed,
            row.rungs_fired,
        )
        assert projected == (
            task.step_id,
            task.status,
            task.assignee,
            task.revision,
            task.deadline_missed,
            task.rungs_fired,
        ), task_id


async def case_entries(runtime: Runtime, case_id: str) -> list[LedgerEntry]:
    return await ledger.entries(runtime.sessions, case_id=case_id)


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


# --- 1. a worker SIGKILLed inside record_case_changes ---------------------------------------


@pytest.mark.parametrize(
    "locked",
    [LedgerHead.__tablename__, TaskRow.__tablename__],
    ids=["at-the-ledger-lock", "at-the-projection"],
)
async def test_a_worker_killed_inside_the_activity_loses_and_repeats_nothing(
    pg_platform: tuple[Stack, Runtime], locked: str
) -> None:
    stack, runtime = pg_platform
    settings = stack.settings
    stack.server()
    client = await connect(stack, runtime)
    first = stack.worker(1)
    await polling(client, settings, first, UP_WITHIN)
    case = await open_case(client, settings.temporal_task_queue, now())
    detection = case.task("detection")
    await case.claim(detection)

    # Lock a table the activity writes: the worker blocks inside record_case_changes.
    blocker = await asyncpg.connect(asyncpg_dsn(settings.effective_database_url))
    try:
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute(f"LOCK TABLE {locked} IN ACCESS EXCLUSIVE MODE")
        completion = case.completion(detection)
        pending = asyncio.create_task(
            case.send(CaseWorkflow.complete, completion, "complete-detection")
        )

        async def worker_waits_on_the_lock() -> int | None:
            assert not pending.done(), f"the update answered although {locked} was locked"
            # pg_locks, not pg_stat_activity.query: asyncpg prepares its statements, and a
            # backend blocked while parsing still shows its previous statement's text.
            waiting = await blocker.fetchval(
                "SELECT count(*) FROM pg_locks WHERE relation = $1::regclass AND NOT granted"
                " AND pid <> pg_backend_pid()",
                locked,
            )
            return int(waiting) if waiting else None

        await eventually(worker_waits_on_the_lock, timeout=CASE_WITHIN, what="the blocked write")
        # In the middle of the activity (read through the connection that holds the lock):
        # the change is one transaction, so none of it shows, wherever the write waits (at the
        # ledger's lock, its first statement; or at the projection, its last).
        fields = {
            r["field"]
            for r in await blocker.fetch(
                "SELECT field FROM vault_records WHERE case_id = $1", case.case_id
            )
        }
        assert "form.detection.place" not in fields
        completed_in_ledger = await blocker.fetchval(
            "SELECT count(*) FROM ledger_entries"
            " WHERE case_id = $1 AND action = $2 AND step_id = $3",
            case.case_id,
            "task.completed",
            "detection",
        )
        projected = await blocker.fetchval(
            "SELECT status FROM tasks WHERE task_id = $1", detection.task_id
        )
        assert (completed_in_ledger, projected) == (0, "open")
        first.kill()
        await lock.rollback()
    finally:
        await blocker.close()

    assert not pending.done()
    stack.worker(2)
    restarted = now()
    await asyncio.wait_for(pending, CASE_WITHIN)
    waited = (now() - restarted).total_seconds()
    print(f"the interrupted update answered {waited:.1f}s after worker 2 started")
    assert case.view.task is None or case.view.task.status == "completed"
    assert "detection" not in [t.step_id for t in case.view.open_tasks]
    done = ["detection", *await case.drive_to_closure()]
    assert case.view.closed

    # The kill happened inside a workflow task (its local activity): the server timed it out.
    history = await client.get_workflow_handle(case.case_id).fetch_history()
    kinds = Counter(e.event_type for e in history.events)
    assert kinds[EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT] >= 1

    state = await case.state()
    expected_state, expected = replay(GT, case.case_id, case.events)
    assert state == expected_state

    entries = await case_entries(runtime, case.case_id)
    assert [(e.idempotency_key, e.action, e.step_id) for e in entries] == expected
    assert [e.case_seq for e in entries] == list(range(1, len(entries) + 1))
    async with runtime.sessions() as s:
        head = await s.get(LedgerHead, 1)
        every = (await s.execute(select(LedgerEntry.seq).order_by(LedgerEntry.seq))).scalars().all()
        versions = (
            await s.execute(
                select(VaultRecord.field, func.count())
                .where(VaultRecord.case_id == case.case_id)
                .group_by(VaultRecord.field)
            )
        ).all()
    assert head is not None and list(every) == list(range(head.size))

    # Every step completed exactly once, in the workflow and in the ledger.
    assert len(done) == len(set(done))
    assert {step: len(times) for step, times in state.completions.items()} == dict.fromkeys(done, 1)
    completed = Counter(e.step_id for e in entries if e.action == "task.completed")
    assert completed == Counter(done)
    await assert_projection_matches(runtime, state)
    # A retried write stores nothing twice in the vault either.
    assert {f: n for f, n in versions if n != 1} == {}


# --- 2. the dev server SIGKILLed mid-case ---------------------------------------------------

ACTIVATION_DUE_IN = timedelta(seconds=15)  # from the case's opening to its activation deadline


async def test_a_deadline_that_fell_due_while_the_server_was_down_fires_after_restart(
    sqlite_platform: tuple[Stack, Runtime],
) -> None:
    stack, runtime = sqlite_platform
    settings = stack.settings
    server = stack.server()
    client = await connect(stack, runtime)
    work = stack.worker(1)
    await polling(client, settings, work, UP_WITHIN)
    step = GT.step("eri_activation")
    assert step.deadline is not None and step.deadline.anchor.event == "case_opened"
    window = timedelta(hours=2)
    assert (step.deadline.duration, step.deadline.clock) == ("PT2H", "hours")
    # The intake was received two hours ago less ACTIVATION_DUE_IN: the deadline is near.
    case = await open_case(client, settings.temporal_task_queue, now() - window + ACTIVATION_DUE_IN)
    await case.do(case.task("detection"))
    activation = case.task("eri_activation")
    assert activation.due_at is not None and not activation.deadline_missed
    assert activation.due_at - now() > timedelta(seconds=2), "too slow to reach the deadline"

    server.kill()
    killed_at = now()
    await asyncio.sleep(max((activation.due_at - now()).total_seconds(), 0) + 1.0)  # the clock
    assert now() > activation.due_at
    missed = [e for e in await case_entries(runtime, case.case_id) if e.action == "deadline.missed"]
    assert missed == []  # nothing could fire while the server was down

    server.start()  # the same SQLite file and ports
    restarted_at = now()

    async def deadline_fired() -> list[LedgerEntry] | None:
        fired = [
            e
            for e in await case_entries(runtime, case.case_id)
            if e.action in ("deadline.missed", "escalation.rung")
        ]
        return fired if len(fired) >= 2 else None

    fired = await eventually(deadline_fired, timeout=UP_WITHIN, what="the deadline after restart")
    print(
        f"server down {(restarted_at - killed_at).total_seconds():.1f}s; the deadline fired "
        f"{(now() - restarted_at).total_seconds():.1f}s after the restart"
    )
    assert work.running(), "the worker did not outlive the server's downtime"
    assert [(e.action, e.step_id) for e in fired] == [
        ("deadline.missed", "eri_activation"),
        ("escalation.rung", "eri_activation"),
    ]
    for entry in fired:
        assert entry.recorded_at is not None and entry.recorded_at >= restarted_at - timedelta(
            seconds=1
        )
        assert entry.recorded_at > killed_at

    # The case resumed: its state is intact and it takes updates again.
    client = await connect(stack, runtime)
    case.client = client
    state = await case.state()
    assert [len(state.completions.get("detection", []))] == [1]
    assert state.facts["consent"] == "given"
    task = state.tasks[activation.task_id]
    assert (task.status, task.deadline_missed, task.rungs_fired) == ("open", True, 1)
    await case.do(case.task("eri_activation"))
    entries = await case_entries(runtime, case.case_id)
    (late,) = [e for e in entries if e.action == "task.completed" and e.step_id == "eri_activation"]
    assert late.deadline_status == "late"
    assert [e.case_seq for e in entries] == list(range(1, len(entries) + 1))
    assert len({e.idempotency_key for e in entries}) == len(entries)
    await assert_projection_matches(runtime, await case.state())


# --- the retry itself, without processes ----------------------------------------------------


async def test_a_retried_record_case_changes_writes_nothing_twice(
    database_url: str, tmp_path: Path
) -> None:
    """What the new worker of test 1 does: run the same change again after a partial write."""
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    settings.ensure_dirs()
    case_id = "case_" + uuid.uuid4().hex[:20]
    opened = Opened(at=now(), actor=who_can(["svet:eri_coordinator"]), facts=GT_ADULT)
    state, _ = apply(GT, None, opened, case_id=case_id, protocol_hash=GT_HASH)
    (detection,) = state.open_tasks()
    actor = who_can(detection.candidate_groups)
    state, _ = apply(GT, state, Claim(at=now(), actor=actor, task_id=detection.task_id))
    form = form_for(form_schema(GT.step("detection"), "en"))
    event = Complete(at=now(), actor=actor, task_id=detection.task_id, form=form)
    state, actions = apply(GT, state, event)
    changes = CaseChanges(
        case_id=case_id,
        seq=3,
        at=event.at,
        protocol_id=GT.id,
        protocol_version=GT.version,
        protocol_hash=GT_HASH,
        country=GT.country,
        opened_at=state.opened_at,
        closed_at=None,
        opened_by_institution=opened.actor.institution,
        revision=state.revision,
        intake=INTAKE,
        actions=actions,
    )
    async with open_runtime(settings) as runtime:
        record = CaseActivities(runtime, LogChannel()).record_case_changes
        first = await record(changes)
        again = await record(changes)
        assert first == again > 0
        async with runtime.sessions() as s:
            versions = {
                f: n
                for f, n in await s.execute(
                    select(VaultRecord.field, func.count())
                    .where(VaultRecord.case_id == case_id)
                    .group_by(VaultRecord.field)
                )
            }
            tasks = (
                await s.execute(select(func.count()).where(TaskRow.case_id == case_id))
            ).scalar_one()
        assert versions == {"intake": 1, "form.detection": 1, "form.detection.place": 1}
        entries = await case_entries(runtime, case_id)
        assert len(entries) == first and tasks >= 1
        # A real correction (another value) is still a new version.
        await record(changes.model_copy(update={"seq": 4, "intake": {**INTAKE, "name": "Otra"}}))
        assert await Vault(runtime.keyring, runtime.sessions).get(case_id, "intake") == {
            **INTAKE,
            "name": "Otra",
        }


# --- 3. a worker SIGKILLed inside a deadline's write, with an update arriving meanwhile ------


async def test_a_deadline_write_interrupted_while_someone_claims_loses_and_repeats_nothing(
    pg_platform: tuple[Stack, Runtime],
) -> None:
    """The timer's workflow task dies inside its write (its ledger entries written, not yet
    committed: the projection is locked); its retry also carries a claim.

    Temporal hands the new worker the claim (an update) before the fired timer, so the retried
    task applies the events in another order than the dead one did.
    """
    stack, runtime = pg_platform
    settings = stack.settings
    stack.server()
    client = await connect(stack, runtime)
    first = stack.worker(1)
    await polling(client, settings, first, UP_WITHIN)
    window = timedelta(hours=2)
    case = await open_case(client, settings.temporal_task_queue, now() - window + ACTIVATION_DUE_IN)
    await case.do(case.task("detection"))
    activation = case.task("eri_activation")
    assert activation.due_at is not None and activation.due_at - now() > timedelta(seconds=2)

    blocker = await asyncpg.connect(asyncpg_dsn(settings.effective_database_url))
    try:
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute(f"LOCK TABLE {TaskRow.__tablename__} IN ACCESS EXCLUSIVE MODE")

        async def tick_written_and_blocked() -> bool | None:
            waiting = await blocker.fetchval(
                "SELECT count(*) FROM pg_locks WHERE relation = $1::regclass AND NOT granted"
                " AND pid <> pg_backend_pid()",
                TaskRow.__tablename__,
            )
            return True if waiting else None

        await eventually(tick_written_and_blocked, timeout=UP_WITHIN, what="the deadline's write")
        written = [
            r["action"]
            for r in await blocker.fetch(
                "SELECT action FROM ledger_entries WHERE case_id = $1 ORDER BY case_seq",
                case.case_id,
            )
        ]
        # The deadline's entries wait in the same transaction as the projection: none shows.
        assert "deadline.missed" not in written
        first.kill()
        await lock.rollback()
    finally:
        await blocker.close()

    claim = asyncio.create_task(case.claim(activation))
    await asyncio.sleep(0)  # the claim reaches the server while no worker runs
    stack.worker(2)
    await asyncio.wait_for(claim, CASE_WITHIN)
    await case.do(case.task("eri_activation"))

    entries = await case_entries(runtime, case.case_id)
    about_activation = Counter(e.action for e in entries if e.step_id == "eri_activation")
    assert about_activation == {
        "task.opened": 1,
        "deadline.missed": 1,
        "escalation.rung": 1,
        "task.claimed": 1,
        "task.completed": 1,
    }
    assert [e.case_seq for e in entries] == list(range(1, len(entries) + 1))
    state = await case.state()
    assert state.tasks[activation.task_id].rungs_fired == 1
    await assert_projection_matches(runtime, state)
