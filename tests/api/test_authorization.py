"""Every case and task route x every role: allowed, or denied with 403/404 and a ledger entry."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from eri.db.models import LedgerEntry
from eri.runtime import Runtime
from tests.api.casework_support import GT_ADULT, Team, add_member, open_case, running_api

OUTSIDERS = [
    ("comite.cit", "committee", "cit", []),
    ("fiscal.mp", "prosecutor", "mp", []),
    ("admin.svet", "admin", "svet", []),
    ("ts.senaf", "responder", "senaf", ["senaf:social_worker"]),
]

# (method, path, json body) with {case} and {task} placeholders; every route of the task API.
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/cases/{case}", None),
    ("GET", "/v1/cases/{case}/timeline", None),
    ("POST", "/v1/cases/{case}/facts", {"fact": "risk_level", "value": "medium"}),
    ("POST", "/v1/cases/{case}/consent", {"decision": "given"}),
    ("POST", "/v1/cases/{case}/consent/revoke", None),
    ("GET", "/v1/tasks", None),
    ("GET", "/v1/tasks/{task}", None),
    ("POST", "/v1/tasks/{task}/claim", None),
    ("POST", "/v1/tasks/{task}/unclaim", None),
    ("POST", "/v1/tasks/{task}/reassign", {"assignee": None}),
    ("PUT", "/v1/tasks/{task}/draft", {"form": {}}),
    ("POST", "/v1/tasks/{task}/complete", {"form": {}}),
    ("POST", "/v1/cases", {"protocol_id": "gt-eri", "facts": {}, "intake": {}}),
]

#: Who is refused, and how: 403 for a role that never reaches cases; 404 where the caller's
#: role may use cases but this case or task is not theirs (its existence must not leak).
DENIED: dict[str, int] = {
    "comite.cit": 403,
    "fiscal.mp": 403,
    "admin.svet": 403,
    "coord.cicesct": 404,
    "ts.senaf": 404,
    "psi.svet": 404,  # a responder of a participating institution, but not of this task's groups
}


@pytest.fixture
async def team(
    temporal_env: WorkflowEnvironment, runtime: Runtime, session_tmp: Path, tmp_path: Path
) -> AsyncIterator[Team]:
    async with running_api(temporal_env, runtime, session_tmp, tmp_path) as t:
        for name, role, institution, groups in OUTSIDERS:
            await add_member(t, name, role, institution, groups)
        yield t


async def _denials(team: Team, actor_id: str) -> int:
    async with team.services.sessions() as s:
        count = await s.execute(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.actor_id == actor_id, LedgerEntry.action == "access.denied")
        )
        return int(count.scalar_one())


def _actor(team: Team, name: str) -> str:
    import jwt

    token = team.members[name].headers["Authorization"].split()[1]
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


async def test_every_route_refuses_every_role_that_may_not_use_it(team: Team) -> None:
    opened = await open_case(team, "coord.svet", GT_ADULT)
    case_id = opened["case_id"]
    task_id = opened["open_tasks"][0]["task_id"]  # detection: svet, mp, pnc, pgn groups
    checked = 0
    for name, expected in DENIED.items():
        actor_id = _actor(team, name)
        for method, template, body in ROUTES:
            path = template.format(case=case_id, task=task_id)
            if name == "psi.svet" and (template.startswith("/v1/cases") or template == "/v1/tasks"):
                continue  # svet takes part in the case: psi.svet may see it (but not the task)
            status = 403 if template == "/v1/cases" and expected == 404 else expected
            if template == "/v1/tasks" and expected == 404:
                continue  # the inbox answers everyone who may use cases (their tasks only)
            before = await _denials(team, actor_id)
            r = await team.client.request(method, path, json=body, headers=team.idem(name))
            assert r.status_code == status, (name, method, path, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert await _denials(team, actor_id) == before + 1, (name, method, path)
            checked += 1
    assert checked >= 50


async def test_the_inbox_of_an_outsider_is_empty(team: Team) -> None:
    opened = await open_case(team, "coord.svet", GT_ADULT)
    for name in ("coord.cicesct", "ts.senaf", "psi.svet"):
        r = await team.client.get("/v1/tasks", headers=team.h(name))
        assert r.status_code == 200
        ids = [t["task_id"] for t in r.json()["items"]]
        assert opened["open_tasks"][0]["task_id"] not in ids, name


async def test_allowed_roles_reach_every_route(team: Team) -> None:
    opened = await open_case(team, "coord.svet", GT_ADULT)
    case_id = opened["case_id"]
    task_id = opened["open_tasks"][0]["task_id"]
    allowed = [
        ("coord.svet", "GET", f"/v1/cases/{case_id}", None, 200),
        ("ts.pgn", "GET", f"/v1/cases/{case_id}", None, 200),
        ("psi.svet", "GET", f"/v1/cases/{case_id}/timeline", None, 200),
        ("ts.pgn", "GET", f"/v1/tasks/{task_id}", None, 200),
        ("ts.pgn", "PUT", f"/v1/tasks/{task_id}/draft", {"form": {}}, 200),
        ("ts.pgn", "POST", f"/v1/tasks/{task_id}/claim", None, 200),
        ("ts.pgn", "POST", f"/v1/tasks/{task_id}/unclaim", None, 200),
        ("coord.svet", "POST", f"/v1/tasks/{task_id}/reassign", {"assignee": None}, 200),
        (
            "agente.pnc",
            "POST",
            f"/v1/cases/{case_id}/facts",
            {"fact": "risk_level", "value": "medium"},
            200,
        ),
        ("enlace.mp", "POST", f"/v1/cases/{case_id}/consent", {"decision": "given"}, 200),
        ("ts.pgn", "POST", f"/v1/cases/{case_id}/consent/revoke", None, 200),
        ("ts.pgn", "POST", "/v1/cases", {"protocol_id": "gt-eri", "facts": {}, "intake": {}}, 201),
        ("comite.cit", "GET", "/v1/protocols", None, 200),
        ("fiscal.mp", "GET", "/v1/protocols/hn-cicesct", None, 200),
    ]
    for name, method, path, body, status in allowed:
        r = await team.client.request(method, path, json=body, headers=team.idem(name))
        assert r.status_code == status, (name, method, path, r.text)


async def test_no_token_no_answer(team: Team) -> None:
    for method, template, body in ROUTES:
        path = template.format(case="case_x0000000", task="task_x0000000")
        r = await team.client.request(method, path, json=body)
        assert r.status_code == 401, (method, path)


async def test_the_web_ui_codec_decodes_a_case_only_for_its_own_commission(
    team: Team, temporal_env: WorkflowEnvironment
) -> None:
    from google.protobuf import json_format
    from temporalio.api.enums.v1 import EventType

    opened = await open_case(team, "coord.svet", GT_ADULT, intake={"alias": "Persona Sintética"})
    history = await temporal_env.client.get_workflow_handle(opened["case_id"]).fetch_history()
    started = next(
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    )
    body = json_format.MessageToDict(started.workflow_execution_started_event_attributes.input)
    other = await team.client.post("/codec/decode", json=body, headers=team.h("coord.cicesct"))
    assert other.status_code == 403
    assert "Sintética" not in other.text
    own = await team.client.post("/codec/decode", json=body, headers=team.h("coord.svet"))
    assert own.status_code == 200
    assert "Sintética" in base64.b64decode(own.json()["payloads"][0]["data"]).decode()
