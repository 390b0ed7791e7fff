"""The inbox's order and cursor: soonest deadline first, ties by task id, undated tasks last.

The rows are written straight into the read model (the shape the case activity writes), so
that ties and missing deadlines are certain; the calls go through HTTP as a coordinator.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from eri.db.models import TaskGroup, TaskRow
from eri.runtime import Runtime
from tests.api.casework_support import Team, running_api

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


@pytest.fixture
async def team(
    temporal_env: WorkflowEnvironment, runtime: Runtime, session_tmp: Path, tmp_path: Path
) -> AsyncIterator[Team]:
    async with running_api(temporal_env, runtime, session_tmp, tmp_path) as t:
        yield t


async def seed(runtime: Runtime, group: str, dues: list[datetime | None]) -> list[TaskRow]:
    rows = []
    async with runtime.sessions.begin() as session:
        for i, due in enumerate(dues):
            task_id = f"task_{uuid.uuid4().hex[:12]}.paging.1"
            rows.append(
                TaskRow(
                    task_id=task_id,
                    case_id="case_paging" + uuid.uuid4().hex[:8],
                    protocol_id="gt-eri",
                    protocol_version="1.0.0",
                    step_id="detection",
                    occurrence=1,
                    status="open",
                    assignee=None,
                    opened_at=T0 - timedelta(minutes=len(dues) - i),
                    due_at=due,
                    closed_at=None,
                    deadline_missed=False,
                    rungs_fired=0,
                    revision=1,
                )
            )
            session.add(rows[-1])
            session.add(TaskGroup(task_id=task_id, group_name=group))
    return rows


async def pages(team: Team, query: str) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        url = f"/v1/tasks?{query}" + (f"&cursor={cursor}" if cursor else "")
        r = await team.client.get(url, headers=team.h("coord.svet"))
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [t["task_id"] for t in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the cursor never ended")


async def test_pages_follow_deadline_then_id_with_undated_tasks_last(
    team: Team, runtime: Runtime
) -> None:
    group = f"svet:paging{uuid.uuid4().hex[:8]}"
    dues = [T0 + timedelta(hours=2), T0, None, T0, T0 + timedelta(hours=1), None, None, T0]
    rows = await seed(runtime, group, dues)
    expected = [
        r.task_id for r in sorted(rows, key=lambda r: (r.due_at is None, r.due_at or T0, r.task_id))
    ]
    for limit in (1, 2, 3, 50):
        assert await pages(team, f"group={group}&limit={limit}") == expected, limit
    by_opened = [r.task_id for r in sorted(rows, key=lambda r: (r.opened_at, r.task_id))]
    assert await pages(team, f"group={group}&limit=3&sort=opened") == by_opened


@pytest.mark.parametrize(
    "values", [["not-a-date", "task_x"], [123, "task_x"], ["2026-11-20T15:00:00+00:00", 7]]
)
async def test_a_forged_cursor_is_a_400_not_a_server_error(
    team: Team, values: list[object]
) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
    r = await team.client.get(f"/v1/tasks?cursor={cursor}", headers=team.h("coord.svet"))
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
