"""Every action leaves exactly one ledger entry: a team drives a case over HTTP (claims, an
unclaim, a reassignment, facts, consent, reads, denied reads, completions to closure) and the
case's ledger is compared with the workflow's own history and with the calls the test made."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from eri import ledger
from eri.runtime import Runtime
from tests.api.casework_support import (
    GT_ADULT,
    Team,
    add_member,
    drive_to_closure,
    form_for,
    open_case,
    running_api,
)
from workflows.case import CaseWorkflow

#: Update name in the workflow history -> the ledger action it must leave, once.
UPDATE_ACTIONS = {
    "claim": "task.claimed",
    "unclaim": "task.unclaimed",
    "reassign": "task.reassigned",
    "complete": "task.completed",
}
FACT_ACTIONS = {"fact.changed", "consent.recorded", "consent.revoked"}


@pytest.fixture
async def team(
    temporal_env: WorkflowEnvironment, runtime: Runtime, session_tmp: Path, tmp_path: Path
) -> AsyncIterator[Team]:
    async with running_api(temporal_env, runtime, session_tmp, tmp_path) as t:
        await add_member(t, "comite.cit", "committee", "svet", [])
        yield t


async def accepted_updates(env: WorkflowEnvironment, case_id: str) -> Counter[str]:
    """Updates the workflow accepted and completed successfully, by name, over every run."""
    history = await env.client.get_workflow_handle(case_id).fetch_history()
    names: dict[str, str] = {}
    done: Counter[str] = Counter()
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            attrs = event.workflow_execution_update_accepted_event_attributes
            names[attrs.protocol_instance_id] = attrs.accepted_request.input.name
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            attrs_c = event.workflow_execution_update_completed_event_attributes
            if attrs_c.outcome.HasField("success"):
                done[names[attrs_c.meta.update_id]] += 1
    return done


async def test_every_action_leaves_exactly_one_entry(
    team: Team, temporal_env: WorkflowEnvironment
) -> None:
    opened = await open_case(team, "coord.svet", GT_ADULT)
    case_id = opened["case_id"]
    detection = opened["open_tasks"][0]["task_id"]
    c = team.client

    # claim, unclaim, claim by another, reassign back to the first, complete
    assert (await c.post(f"/v1/tasks/{detection}/claim", headers=team.idem("ts.pgn"))).is_success
    first = (await c.get(f"/v1/tasks/{detection}", headers=team.h("ts.pgn"))).json()["assignee"]
    assert (await c.post(f"/v1/tasks/{detection}/unclaim", headers=team.idem("ts.pgn"))).is_success
    taken = await c.post(f"/v1/tasks/{detection}/claim", headers=team.idem("agente.pnc"))
    assert taken.is_success, taken.text
    # a refused claim (someone holds it) leaves no entry and no accepted update
    refused = await c.post(f"/v1/tasks/{detection}/claim", headers=team.idem("ts.pgn"))
    assert refused.status_code == 409
    moved = await c.post(
        f"/v1/tasks/{detection}/reassign", json={"assignee": first}, headers=team.idem("coord.svet")
    )
    assert moved.is_success, moved.text
    task = (await c.get(f"/v1/tasks/{detection}", headers=team.h("ts.pgn"))).json()
    assert task["assignee"] == first
    done = await c.post(
        f"/v1/tasks/{detection}/complete",
        json={"form": form_for(task["form"])},
        headers=team.idem("ts.pgn"),
    )
    assert done.is_success, done.text

    # facts and consent
    fact = await c.post(
        f"/v1/cases/{case_id}/facts",
        json={"fact": "risk_level", "value": "medium"},
        headers=team.idem("coord.svet"),
    )
    assert fact.is_success, fact.text
    consent = await c.post(
        f"/v1/cases/{case_id}/consent", json={"decision": "given"}, headers=team.idem("coord.svet")
    )
    assert consent.is_success, consent.text

    # reads and denied reads
    views = 0
    for name in ("coord.svet", "psi.svet"):
        r = await c.get(f"/v1/cases/{case_id}", headers=team.h(name))
        assert r.status_code == 200, (name, r.text)
        views += 1
    denials = 0
    for name in ("comite.cit", "coord.cicesct"):
        r = await c.get(f"/v1/cases/{case_id}", headers=team.h(name))
        assert r.status_code in (403, 404), (name, r.text)
        denials += 1

    await drive_to_closure(team, consent.json(), {**GT_ADULT, "risk_level": "medium"})

    entries = await ledger.entries(team.services.sessions, case_id=case_id)
    actions = Counter(e.action for e in entries)
    updates = await accepted_updates(temporal_env, case_id)

    assert updates["claim"] >= 2 and updates["unclaim"] == 1 and updates["reassign"] == 1
    for update, action in UPDATE_ACTIONS.items():
        assert actions[action] == updates[update], (update, actions, updates)
    assert sum(actions[a] for a in FACT_ACTIONS) == updates["set_fact"] == 2
    state = await temporal_env.client.get_workflow_handle(case_id).query(CaseWorkflow.state)
    assert state.closed_at is not None
    assert actions["case.opened"] == actions["case.closed"] == 1
    assert actions["task.opened"] == len(state.tasks)
    assert actions["task.completed"] == sum(t.status == "completed" for t in state.tasks.values())
    assert actions["task.cancelled"] == sum(t.status == "cancelled" for t in state.tasks.values())
    assert actions["deadline.missed"] == sum(t.deadline_missed for t in state.tasks.values())
    assert actions["case.viewed"] == views
    assert actions["access.denied"] == denials
    denied = [e for e in entries if e.action == "access.denied"]
    assert sorted(e.actor_role for e in denied) == ["committee", "coordinator"]
    assert sum(actions.values()) == len(entries)  # nothing else, and nothing twice
    assert len({e.idempotency_key for e in entries}) == len(entries)
    assert [e.case_seq for e in entries] == list(range(1, len(entries) + 1))
