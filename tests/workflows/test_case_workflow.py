"""CaseWorkflow on the real servers with ERI's production worker, codec, ledger and projection."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from eri import ledger
from eri.db.models import CaseRow, TaskGroup, TaskRow
from eri.runtime import Runtime
from eri.vault import Vault
from protocols.registry import register
from tests.conftest import worker_on_new_queue
from tests.workflows.test_interpreter import ATTORNEY, COORD, MINI, OTHER, RESPONDER
from workflows.case import CaseInput, CaseView, CaseWorkflow
from workflows.interpreter import Claim, Complete, Opened, SetFact

MINI_HASH = register(MINI)


async def open_case(
    client: Client, queue: str, facts: dict[str, Any], intake: dict[str, Any] | None = None
) -> tuple[str, CaseView]:
    case_id = "case_" + uuid.uuid4().hex[:20]
    start = WithStartWorkflowOperation(
        CaseWorkflow.run,
        CaseInput(
            case_id=case_id,
            protocol_id=MINI.id,
            protocol_version=MINI.version,
            protocol_hash=MINI_HASH,
            opened=Opened(at=_now(), actor=COORD, facts=facts),
            intake=intake or {},
        ),
        id=case_id,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        task_queue=queue,
    )
    view = await client.execute_update_with_start_workflow(
        CaseWorkflow.opened, start_workflow_operation=start
    )
    return case_id, view


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def task_of(view: CaseView, step: str) -> str:
    (task,) = [t for t in view.open_tasks if t.step_id == step]
    return task.task_id


async def do(
    client: Client, case_id: str, update: Any, event: Any, update_id: str | None = None
) -> CaseView:
    handle = client.get_workflow_handle_for(CaseWorkflow.run, case_id)
    return await handle.execute_update(update, event, id=update_id)


async def test_a_case_runs_to_closure_with_ledger_projection_and_vault(
    temporal_env: WorkflowEnvironment, runtime: Runtime
) -> None:
    client = temporal_env.client
    worker, queue = worker_on_new_queue(client, runtime)
    async with worker:
        case_id, view = await open_case(
            client, queue, {"minor": True}, intake={"name": "Persona Sintética"}
        )
        assert [t.step_id for t in view.open_tasks] == ["activate"]
        activate = task_of(view, "activate")
        view = await do(
            client, case_id, CaseWorkflow.claim, Claim(at=_now(), actor=RESPONDER, task_id=activate)
        )
        assert view.task is not None and view.task.assignee == RESPONDER.actor_id
        # the projection is written before the update answers
        async with runtime.sessions() as s:
            row = await s.get(TaskRow, activate)
            assert row is not None and (row.assignee, row.status) == (RESPONDER.actor_id, "open")
            groups = (
                (await s.execute(select(TaskGroup.group_name).where(TaskGroup.task_id == activate)))
                .scalars()
                .all()
            )
            assert list(groups) == ["team:responder"]
        view = await do(
            client,
            case_id,
            CaseWorkflow.complete,
            Complete(
                at=_now(),
                actor=RESPONDER,
                task_id=activate,
                form={"place": "Albergue sintético", "people": 1},
            ),
        )
        view = await do(
            client,
            case_id,
            CaseWorkflow.complete,
            Complete(at=_now(), actor=ATTORNEY, task_id=task_of(view, "child_referral")),
        )
        view = await do(
            client,
            case_id,
            CaseWorkflow.complete,
            Complete(at=_now(), actor=COORD, task_id=task_of(view, "referral_done")),
        )
        view = await do(
            client,
            case_id,
            CaseWorkflow.set_fact,
            SetFact(at=_now(), actor=COORD, fact="follow_up_complete", value=True),
        )
        view = await do(
            client,
            case_id,
            CaseWorkflow.complete,
            Complete(at=_now(), actor=RESPONDER, task_id=task_of(view, "follow_up")),
        )
        view = await do(
            client,
            case_id,
            CaseWorkflow.complete,
            Complete(at=_now(), actor=COORD, task_id=task_of(view, "close")),
        )
        assert view.closed
        result = await client.get_workflow_handle_for(CaseWorkflow.run, case_id).result()
        assert result.closed

    entries = await ledger.entries(runtime.sessions, case_id=case_id)
    actions = [e.action for e in entries]
    assert actions[0] == "case.opened"
    assert actions[-1] == "case.closed"
    assert actions.count("task.completed") == 5
    assert [e.case_seq for e in entries] == list(range(1, len(entries) + 1))
    async with runtime.sessions() as s:
        case = await s.get(CaseRow, case_id)
        assert case is not None and case.status == "closed"
        statuses = (
            (await s.execute(select(TaskRow.status).where(TaskRow.case_id == case_id)))
            .scalars()
            .all()
        )
        assert sorted(statuses) == ["completed"] * 5
    vault = Vault(runtime.keyring, runtime.sessions)
    assert await vault.get(case_id, "intake") == {"name": "Persona Sintética"}
    assert await vault.get(case_id, "form.activate.place") == "Albergue sintético"
    assert await vault.get(case_id, "form.activate") == {"people": 1}
    history = await client.get_workflow_handle(case_id).fetch_history()
    print(f"history events for the mini main path: {len(history.events)}")
    assert len(history.events) < 2000


async def test_illegal_moves_are_refused_before_history_and_retries_apply_once(
    temporal_env: WorkflowEnvironment, runtime: Runtime
) -> None:
    client = temporal_env.client
    worker, queue = worker_on_new_queue(client, runtime)
    async with worker:
        case_id, view = await open_case(client, queue, {"minor": True})
        activate = task_of(view, "activate")
        await do(
            client,
            case_id,
            CaseWorkflow.claim,
            Claim(at=_now(), actor=RESPONDER, task_id=activate),
            update_id="claim-1",
        )
        events_before = len((await client.get_workflow_handle(case_id).fetch_history()).events)
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await do(
                client, case_id, CaseWorkflow.claim, Claim(at=_now(), actor=OTHER, task_id=activate)
            )
        cause = err.value.cause
        assert isinstance(cause, ApplicationError) and (cause.type, cause.message) == (
            "Rejection",
            "claimed_by_other",
        )
        assert cause.details[0]["status"] == 409
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await do(
                client,
                case_id,
                CaseWorkflow.complete,
                Complete(at=_now(), actor=RESPONDER, task_id=activate, form={"people": "Ximena"}),
            )
        assert err.value.cause.details[0]["fields"] == {
            "place": "required",
            "people": "expected_integer",
        }  # type: ignore[union-attr]
        assert (
            len((await client.get_workflow_handle(case_id).fetch_history()).events) == events_before
        )
        # the same update id twice is applied once
        again = await do(
            client,
            case_id,
            CaseWorkflow.claim,
            Claim(at=_now(), actor=RESPONDER, task_id=activate),
            update_id="claim-1",
        )
        assert again.task is not None and again.task.assignee == RESPONDER.actor_id
        claims = [
            e
            for e in await ledger.entries(runtime.sessions, case_id=case_id)
            if e.action == "task.claimed"
        ]
        assert len(claims) == 1
        await client.get_workflow_handle(case_id).terminate("test done")


async def test_deadline_and_rungs_fire_at_protocol_time(
    time_skipping_env: WorkflowEnvironment, runtime: Runtime
) -> None:
    client = time_skipping_env.client
    worker, queue = worker_on_new_queue(client, runtime)
    async with worker:
        case_id = "case_" + uuid.uuid4().hex[:20]
        opened_at = await time_skipping_env.get_current_time()
        handle = await client.start_workflow(
            CaseWorkflow.run,
            CaseInput(
                case_id=case_id,
                protocol_id=MINI.id,
                protocol_version=MINI.version,
                protocol_hash=MINI_HASH,
                opened=Opened(at=opened_at, actor=COORD, facts={"minor": True}),
            ),
            id=case_id,
            task_queue=queue,
        )
        await time_skipping_env.sleep(timedelta(hours=23, minutes=59))
        late = [
            e
            for e in await ledger.entries(runtime.sessions, case_id=case_id)
            if e.action in ("deadline.missed", "escalation.rung")
        ]
        assert late == [], "escalated before the deadline"
        await time_skipping_env.sleep(timedelta(hours=6, minutes=2))
        fired = [
            e
            for e in await ledger.entries(runtime.sessions, case_id=case_id)
            if e.action in ("deadline.missed", "escalation.rung")
        ]
        offsets = [(e.action, e.recorded_at - opened_at) for e in fired]
        assert [a for a, _ in offsets] == [
            "deadline.missed",
            "escalation.rung",
            "escalation.rung",
            "escalation.rung",
        ]
        # the deadline at 24 h (rung 1 with it), rung 2 at 26 h, rung 3 at 30 h: not before
        for (_, offset), expected in zip(offsets, [24, 24, 26, 30], strict=True):
            assert timedelta(hours=expected) <= offset < timedelta(hours=expected, minutes=1), (
                offsets
            )
        await handle.terminate("test done")


async def test_search_attributes_follow_the_case_and_a_claim_upserts_none(
    temporal_env: WorkflowEnvironment, runtime: Runtime
) -> None:
    """The visibility fields the Web UI and operators filter on equal the case's state after
    every command; a command that changes none of them (a claim) adds no upsert to history."""
    from temporalio.api.enums.v1 import EventType

    from eri import search_attributes as sa

    client = temporal_env.client
    worker, queue = worker_on_new_queue(client, runtime)
    async with worker:
        case_id, view = await open_case(client, queue, {"minor": True})
        handle = client.get_workflow_handle(case_id)

        async def visible() -> dict[str, Any]:
            attrs = (await handle.describe()).typed_search_attributes
            return {
                "phase": attrs.get(sa.PHASE),
                "open": attrs.get(sa.OPEN_TASKS),
                "institutions": attrs.get(sa.INSTITUTIONS),
                "case": attrs.get(sa.CASE_ID),
            }

        async def upserts() -> int:
            """Upserts of ERI's attributes (``workflow.patched`` upserts TemporalChangeVersion)."""
            history = await handle.fetch_history()
            kind = EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
            ours = {key.name for key in sa.ALL}
            return sum(
                1
                for e in history.events
                if e.event_type == kind
                and ours
                & set(
                    e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
                )
            )

        opened = {"phase": "start", "open": 1, "institutions": ["team"], "case": case_id}
        assert await visible() == opened
        before = await upserts()
        activate = task_of(view, "activate")
        await do(
            client, case_id, CaseWorkflow.claim, Claim(at=_now(), actor=RESPONDER, task_id=activate)
        )
        assert await upserts() == before
        assert await visible() == opened
        view = await do(
            client,
            case_id,
            CaseWorkflow.complete,
            Complete(
                at=_now(),
                actor=RESPONDER,
                task_id=activate,
                form={"place": "Albergue sintético", "people": 1},
            ),
        )
        assert await upserts() == before + 1
        assert [t.step_id for t in view.open_tasks] == ["child_referral"]
        assert await visible() == {
            "phase": "care",
            "open": 1,
            "institutions": ["child"],
            "case": case_id,
        }
