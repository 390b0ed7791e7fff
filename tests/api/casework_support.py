"""Driving ERI the way a response team does: users, tokens and HTTP calls only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from eri import users
from eri.runtime import Runtime
from eri.settings import Settings
from tests.conftest import worker_on_new_queue

#: The response team of a Guatemalan case: (user, ERI role, institution, protocol groups).
GT_TEAM = [
    ("coord.svet", "coordinator", "svet", ["svet:eri_coordinator"]),
    ("psi.svet", "responder", "svet", ["svet:psychologist", "svet:social_worker"]),
    ("enlace.mp", "responder", "mp", ["mp:victim_liaison", "mp:prosecutor"]),
    ("agente.pnc", "responder", "pnc", ["pnc:officer", "pnc:investigator"]),
    ("ts.pgn", "responder", "pgn", ["pgn:social_worker"]),
]
#: The response team of a Honduran case (names differ from the Guatemalan team's).
HN_TEAM = [
    ("coord.cicesct", "coordinator", "cicesct", ["cicesct:eri_coordinator"]),
    ("psi.cicesct", "responder", "cicesct", ["cicesct:psychologist", "cicesct:social_worker"]),
    ("abog.cicesct", "responder", "cicesct", ["cicesct:lawyer"]),
    ("fiscal.mp.hn", "responder", "mp", ["mp:prosecutor", "mp:atic_investigator"]),
    ("agente.dpi", "responder", "police", ["police:officer", "police:investigator"]),
    ("oficial.senaf", "responder", "senaf", ["senaf:child_protection_officer"]),
    ("ts.sedis", "responder", "sedis", ["sedis:social_worker"]),
]
#: An adult national who accepts assistance: the main path of gt-eri (and of hn-cicesct).
GT_ADULT = {
    "minor": False,
    "foreign_national": False,
    "returned_from_abroad": False,
    "consent": "given",
    "consular_contact_agreed": False,
    "repatriation_requested": False,
    "cross_border": False,
    "risk_level": "low",
    "family_involved": False,
    "follow_up_complete": True,
}


@dataclass
class Member:
    name: str
    role: str
    institution: str
    groups: list[str]
    headers: dict[str, str]


@dataclass
class Team:
    client: httpx.AsyncClient
    settings: Settings
    services: Any
    members: dict[str, Member] = field(default_factory=dict)
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:6])  # names are unique per db

    def h(self, name: str, **extra: str) -> dict[str, str]:
        return {**self.members[name].headers, **extra}

    def idem(self, name: str, **extra: str) -> dict[str, str]:
        return self.h(name, **{"Idempotency-Key": "k-" + uuid.uuid4().hex, **extra})

    def who_can(self, groups: list[str]) -> Member:
        responders = [m for m in self.members.values() if m.role == "responder"]
        for member in responders + [m for m in self.members.values() if m.role != "responder"]:
            if set(member.groups) & set(groups):
                return member
        raise AssertionError(f"nobody in the team belongs to {groups}")


async def add_member(team: Team, name: str, role: str, institution: str, groups: list[str]) -> None:
    user = await users.add(
        team.services.sessions, f"{name}.{team.suffix}", role, institution, groups
    )
    token = users.token(team.settings, user)
    team.members[name] = Member(
        name, role, institution, groups, {"Authorization": f"Bearer {token}"}
    )


@asynccontextmanager
async def running_api(
    env: WorkflowEnvironment, runtime: Runtime, session_tmp: Path, tmp_path: Path
) -> AsyncIterator[Team]:
    """ERI's API and production worker on the session's database, key store and dev server."""
    worker, queue = worker_on_new_queue(env.client, runtime)
    settings = Settings(
        data_dir=tmp_path,
        keys_dir=session_tmp,
        database_url=runtime.settings.database_url,
        temporal_address=env.client.service_client.config.target_host,
        temporal_task_queue=queue,
    )
    app = create_app(settings)
    async with worker, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://eri.test") as client:
            team = Team(client, settings, app.state.services)
            for name, role, institution, groups in GT_TEAM + HN_TEAM:
                await add_member(team, name, role, institution, groups)
            yield team


def form_for(
    schema: dict[str, Any] | None,
    planted: str | None = None,
    facts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A valid synthetic form for a step's form schema (sensitive text gets ``planted``). A
    field that records a fact answers what ``facts`` says, so the case keeps its route."""
    values: dict[str, Any] = {}
    for f in (schema or {}).get("fields", []):
        kind = f["type"]
        if facts is not None and f.get("sets_fact") in facts:
            values[f["id"]] = facts[f["sets_fact"]]
        elif kind == "boolean":
            values[f["id"]] = True
        elif kind == "integer":
            values[f["id"]] = 1
        elif kind == "enum":
            values[f["id"]] = f["values"][0]
        elif kind == "date":
            values[f["id"]] = "2026-11-20"
        elif kind == "datetime":
            values[f["id"]] = datetime.now(UTC).isoformat()
        elif f["sensitive"] and planted:
            values[f["id"]] = f"{planted} ({f['id']})"
        else:
            values[f["id"]] = "Texto sintético"
    return values


async def open_case(
    team: Team,
    by: str,
    facts: dict[str, Any],
    intake: dict[str, Any] | None = None,
    protocol_id: str = "gt-eri",
) -> dict[str, Any]:
    r = await team.client.post(
        "/v1/cases",
        json={"protocol_id": protocol_id, "facts": facts, "intake": intake or {}},
        headers=team.idem(by),
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def do_task(
    team: Team,
    task_id: str,
    groups: list[str],
    planted: str | None = None,
    facts: Mapping[str, Any] | None = None,
    *,
    in_inbox: bool = True,
) -> Any:
    """Claim and complete a task as a member of one of its groups, first checking that it is
    on their inbox's first page (``in_inbox``); a form field that records a fact answers what
    ``facts`` says."""
    member = team.who_can(groups)
    if in_inbox:
        inbox = await team.client.get("/v1/tasks", headers=team.h(member.name))
        assert inbox.status_code == 200, inbox.text
        assert task_id in [t["task_id"] for t in inbox.json()["items"]]
    task = await team.client.get(f"/v1/tasks/{task_id}", headers=team.h(member.name))
    assert task.status_code == 200, task.text
    claimed = await team.client.post(
        f"/v1/tasks/{task_id}/claim",
        headers=team.idem(member.name, **{"If-Match": task.headers["etag"]}),
    )
    assert claimed.status_code == 200, claimed.text
    done = await team.client.post(
        f"/v1/tasks/{task_id}/complete",
        json={"form": form_for(task.json()["form"], planted, facts)},
        headers=team.idem(member.name, **{"If-Match": claimed.headers["etag"]}),
    )
    assert done.status_code == 200, done.text
    return done.json()


async def drive_to_closure(
    team: Team,
    opened: dict[str, Any],
    facts: Mapping[str, Any],
    planted: str | None = None,
    limit: int = 80,
) -> list[str]:
    """Do every open task until the case closes, the forms answering as ``facts`` say (the
    facts the case should end with); return the steps done, in order."""
    done: list[str] = []
    view = opened
    for _ in range(limit):
        if view["closed"]:
            return done
        assert view["open_tasks"], f"case stuck after {done}"
        task = view["open_tasks"][0]
        view = await do_task(team, task["task_id"], task["candidate_groups"], planted, facts)
        done.append(task["step_id"])
    raise AssertionError(f"no closure after {limit} tasks: {done}")
