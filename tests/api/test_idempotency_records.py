"""The Idempotency-Key record on SQLite and PostgreSQL: first answer, replay, reuse, in flight,
and taking over from a first request that died, after STALE_AFTER or at once when its process
of this host is gone (api/idempotency.py, without the HTTP stack)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request

from api import idempotency
from api.idempotency import STALE_AFTER, Answer, fingerprint, run_once_answer
from api.problems import Problem
from eri.auth import Principal, Role
from eri.db.models import IdempotencyRecord

ANA = Principal("usr_ana00001", Role.RESPONDER, "PGN")


def _request(key: str, path: str = "/v1/tasks/t1/claim") -> Request:
    return Request(
        {
            "type": "http",
            "method": "POST",
            "path": path,
            "query_string": b"",
            "headers": [(b"idempotency-key", key.encode())],
        }
    )


async def test_a_key_answers_once_then_replays_and_refuses_another_request(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    runs: list[str] = []

    async def action(update_id: str) -> Answer:
        runs.append(update_id)
        return Answer(200, {"n": len(runs)}, '"2"')

    first = await run_once_answer(sessions, ANA, _request("key-0001"), {"a": 1}, action)
    again = await run_once_answer(sessions, ANA, _request("key-0001"), {"a": 1}, action)
    assert first == (Answer(200, {"n": 1}, '"2"'), False)
    assert again == (Answer(200, {"n": 1}, '"2"'), True)
    assert len(runs) == 1
    with pytest.raises(Problem) as reused:
        await run_once_answer(sessions, ANA, _request("key-0001"), {"a": 2}, action)
    assert (reused.value.status, reused.value.type) == (422, "idempotency-key-reused")


async def test_a_key_in_flight_answers_409_and_a_dead_first_request_is_taken_over(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async def never(update_id: str) -> Answer:
        raise AssertionError("must not run")

    async def action(update_id: str) -> Answer:
        with pytest.raises(Problem) as busy:
            await run_once_answer(sessions, ANA, _request("key-0002"), {}, never)
        assert (busy.value.status, busy.value.type) == (409, "request-in-progress")
        return Answer(201, {"ok": True})

    assert await run_once_answer(sessions, ANA, _request("key-0002"), {}, action) == (
        Answer(201, {"ok": True}),
        False,
    )
    # A first request whose process died: its record stays unanswered, and goes stale.
    async with sessions.begin() as session:
        await session.execute(
            update(IdempotencyRecord).values(
                status=None, body=None, created_at=datetime.now(UTC) - 2 * STALE_AFTER
            )
        )

    async def retried(update_id: str) -> Answer:
        return Answer(200, {"retried": update_id})

    answer, replayed = await run_once_answer(sessions, ANA, _request("key-0002"), {}, retried)
    assert not replayed and answer.status == 200
    async with sessions() as session:
        (row,) = (await session.execute(select(IdempotencyRecord))).scalars()
    assert row.status == 200
    assert datetime.now(UTC) - row.created_at < STALE_AFTER


async def dead_owner() -> str:
    """The owner string of a real process of this host that has exited."""
    child = await asyncio.create_subprocess_exec("sleep", "30")
    started = idempotency._started(child.pid)
    child.kill()
    await child.wait()
    assert started is not None and idempotency._started(child.pid) is None
    return f"{idempotency.HOST}:{child.pid}:{started}"


async def test_a_first_request_whose_process_of_this_host_died_is_taken_over_at_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """An API killed and restarted: its retry need not wait out STALE_AFTER (60 s). A record
    whose owner lives (this process), runs on another host, or is unknown still answers 409."""
    ran: list[str] = []

    async def action(update_id: str) -> Answer:
        ran.append(update_id)
        return Answer(200, {"ok": True})

    async def left_in_flight(key: str, owner: str | None) -> None:
        """The record a first request leaves when its process is killed, a second ago."""
        async with sessions.begin() as session:
            session.add(
                IdempotencyRecord(
                    actor_id=ANA.actor_id,
                    key=hashlib.sha256(key.encode()).hexdigest(),
                    fingerprint=fingerprint(_request(key), {}),
                    created_at=datetime.now(UTC) - timedelta(seconds=1),
                    owner=owner,
                )
            )

    owners = [idempotency.OWNER, "another-host:4242:12345", None]
    for n, owner in enumerate(owners):
        await left_in_flight(f"key-live-{n}", owner)
        with pytest.raises(Problem) as busy:
            await run_once_answer(sessions, ANA, _request(f"key-live-{n}"), {}, action)
        assert (busy.value.status, busy.value.type) == (409, "request-in-progress"), owner
    assert ran == []

    await left_in_flight("key-dead-0", await dead_owner())
    answer, replayed = await run_once_answer(sessions, ANA, _request("key-dead-0"), {}, action)
    assert (answer.status, replayed, len(ran)) == (200, False, 1)
    async with sessions() as session:
        row = await session.get(
            IdempotencyRecord, (ANA.actor_id, hashlib.sha256(b"key-dead-0").hexdigest())
        )
    assert row is not None and (row.status, row.owner) == (200, idempotency.OWNER)
