"""The Idempotency-Key record on SQLite and PostgreSQL: first answer, replay, reuse, in flight,
and taking over from a first request that died (api/idempotency.py, without the HTTP stack)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request

from api.idempotency import STALE_AFTER, Answer, run_once_answer
from api.problems import Problem
from eri.auth import Principal, Role
from eri.db import create_engine, session_factory
from eri.db.models import IdempotencyRecord

ANA = Principal("usr_ana00001", Role.RESPONDER, "PGN")


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


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
