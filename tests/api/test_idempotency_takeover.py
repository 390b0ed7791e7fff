"""A request left "in progress" by an API process that died is taken over by its retry.

The retry of a request whose first attempt is still running answers 409
``request-in-progress``. When the API process that ran the first attempt died (killed, then
restarted), waiting out ``STALE_AFTER`` (60 s) only keeps a responder waiting: the record names
its owner process, and a retry on the same host takes over at once when that process is gone.
The records here are what a killed process leaves: written as the API writes them, with the
owner of a real process that has exited.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from api import idempotency
from eri.db.models import IdempotencyRecord
from eri.runtime import Runtime
from tests.api.casework_support import GT_ADULT, Team, open_case, running_api


@pytest.fixture
async def team(
    temporal_env: WorkflowEnvironment, runtime: Runtime, session_tmp: Path, tmp_path: Path
) -> AsyncIterator[Team]:
    async with running_api(temporal_env, runtime, session_tmp, tmp_path) as t:
        yield t


async def dead_owner() -> str:
    """The owner string of a process of this host that has exited."""
    child = await asyncio.create_subprocess_exec("sleep", "30")
    started = idempotency._started(child.pid)
    child.kill()
    await child.wait()
    assert started is not None and idempotency._started(child.pid) is None
    return f"{idempotency.HOST}:{child.pid}:{started}"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def test_a_retry_takes_over_at_once_from_a_dead_process_and_waits_for_a_live_one(
    team: Team, runtime: Runtime
) -> None:
    opened = await open_case(team, "coord.svet", GT_ADULT)
    task = opened["open_tasks"][0]
    member = team.who_can(task["candidate_groups"])
    claim = f"/v1/tasks/{task['task_id']}/claim"
    # The member's actor id, as the API records it (from an answered request of theirs).
    seen = team.idem(member.name)
    r = await team.client.get(f"/v1/tasks/{task['task_id']}", headers=team.h(member.name))
    assert r.status_code == 200, r.text
    first = await team.client.post(claim, headers={**seen, "If-Match": r.headers["etag"]})
    assert first.status_code == 200, first.text
    async with runtime.sessions() as s:
        actor = (
            await s.execute(
                select(IdempotencyRecord.actor_id).where(
                    IdempotencyRecord.key == key_hash(seen["Idempotency-Key"])
                )
            )
        ).scalar_one()
    unclaimed = await team.client.post(
        f"/v1/tasks/{task['task_id']}/unclaim", headers=team.idem(member.name)
    )
    assert unclaimed.status_code == 200, unclaimed.text

    async def left_in_flight(owner: str | None) -> dict[str, str]:
        """A claim whose first attempt is 'running' in ``owner``, started a second ago."""
        headers = team.idem(member.name)
        fingerprint = hashlib.sha256(f"POST {claim}\n{{}}".encode()).hexdigest()
        async with runtime.sessions.begin() as s:
            s.add(
                IdempotencyRecord(
                    actor_id=actor,
                    key=key_hash(headers["Idempotency-Key"]),
                    fingerprint=fingerprint,
                    created_at=datetime.now(UTC),
                    owner=owner,
                )
            )
        return headers

    # Still running in a live process (this one), or in one another host runs: wait.
    for owner in (idempotency.OWNER, "another-host:4242:12345", None):
        waiting = await team.client.post(claim, headers=await left_in_flight(owner))
        assert waiting.status_code == 409, (owner, waiting.text)
        assert waiting.json()["type"].endswith("request-in-progress")
        assert waiting.headers["Retry-After"] == "2"

    # The process that ran it is gone: the retry runs the claim now, once.
    retry = await left_in_flight(await dead_owner())
    taken = await team.client.post(claim, headers=retry)
    assert taken.status_code == 200, taken.text
    assert taken.json()["task"]["assignee"] is not None
    again = await team.client.post(claim, headers=retry)
    assert again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == taken.json()
