"""A busy embedded database delays a call; it never turns into a 500.

SQLite lets one writer at a time, and the API, the worker and the CLI share the file. Under
load (bench/load.py: 20 concurrent openings), ``POST /v1/cases`` answered 500 with ``database
is locked`` after the case had really opened, because recording the answer for its
Idempotency-Key waited past the busy timeout. Here another process holds the write lock for
longer than that timeout while a responder claims a task.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from temporalio.testing import WorkflowEnvironment

from eri.runtime import Runtime
from tests.api.casework_support import GT_ADULT, Team, open_case, running_api

HOLD = 6.5  # seconds: longer than the engine's busy_timeout (5 s)


@pytest.fixture
async def team(
    temporal_env: WorkflowEnvironment, runtime: Runtime, session_tmp: Path, tmp_path: Path
) -> AsyncIterator[Team]:
    async with running_api(temporal_env, runtime, session_tmp, tmp_path) as t:
        yield t


def hold_write_lock(path: str, held: threading.Event, seconds: float) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")  # the write lock, as another writer holds it
        held.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def test_a_claim_waits_for_a_busy_database_instead_of_failing(
    team: Team, runtime: Runtime
) -> None:
    opened = await open_case(team, "coord.svet", GT_ADULT)
    task = opened["open_tasks"][0]
    member = team.who_can(task["candidate_groups"])
    path = make_url(runtime.settings.effective_database_url).database
    assert path is not None
    held = threading.Event()
    locker = threading.Thread(target=hold_write_lock, args=(path, held, HOLD))
    locker.start()
    try:
        assert await asyncio.to_thread(held.wait, 10)
        began = time.monotonic()
        r = await team.client.post(
            f"/v1/tasks/{task['task_id']}/claim", headers=team.idem(member.name)
        )
        waited = time.monotonic() - began
    finally:
        await asyncio.to_thread(locker.join)
    assert r.status_code == 200, r.text
    assert r.json()["task"]["assignee"] is not None
    assert waited >= HOLD - 1  # it really waited for the lock


async def test_a_database_busy_for_too_long_answers_503_and_the_retry_opens_one_case(
    team: Team, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api import idempotency

    monkeypatch.setattr(idempotency, "BUSY_RETRY_FOR", 0.2)  # give up at once (the lock: 6.5 s)
    path = make_url(runtime.settings.effective_database_url).database
    assert path is not None
    held = threading.Event()
    locker = threading.Thread(target=hold_write_lock, args=(path, held, HOLD))
    locker.start()
    headers = team.idem("coord.svet")
    body = {"protocol_id": "gt-eri", "facts": GT_ADULT, "intake": {}}
    try:
        assert await asyncio.to_thread(held.wait, 10)
        r = await team.client.post("/v1/cases", json=body, headers=headers)
    finally:
        await asyncio.to_thread(locker.join)
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["retry-after"] == "2"
    assert "locked" not in r.text  # no internals in the answer
    again = await team.client.post("/v1/cases", json=body, headers=headers)
    assert again.status_code == 201, again.text
    replay = await team.client.post("/v1/cases", json=body, headers=headers)
    assert replay.json()["case_id"] == again.json()["case_id"]
