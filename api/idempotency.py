"""Idempotency-Key for every state-changing request: a retry gets the first answer.

A phone on a bad connection resends a request whose answer it never saw. The first request
with a given key (per caller) records its answer; a retry with the same key and the same
request gets that answer back and changes nothing; the same key with a different request is
refused (422). While the first is still running, a retry answers 409 with ``Retry-After``; if
the process that ran it died, the retry takes over after ``STALE_AFTER`` and reaches Temporal
with the same update id, which Temporal applies once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Table, and_, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.problems import Problem, problem_response
from eri.auth import Principal
from eri.db.models import IdempotencyRecord
from eri.logging import get_logger

log = get_logger(__name__)

HEADER = "Idempotency-Key"
KEY = re.compile(r"[A-Za-z0-9_.:-]{8,128}")
STALE_AFTER = timedelta(seconds=60)
#: How long a record write waits for a busy embedded database (SQLite: one writer at a time,
#: shared with the worker) before giving up; each attempt also waits the engine's busy_timeout.
BUSY_RETRY_FOR = 30.0


def _started(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, from /proc), None if it is
    gone or this is not Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name may hold spaces


HOST = socket.gethostname()
#: This process, as idempotency records name their owner.
OWNER = f"{HOST}:{os.getpid()}:{_started(os.getpid()) or '?'}"


def owner_gone(owner: str | None) -> bool:
    """Whether the process that wrote a record is known to have died: it ran on this host and
    its pid is gone or now belongs to a later process. Unknown (another host, no /proc): False."""
    parts = owner.rsplit(":", 2) if owner else []
    if len(parts) != 3:
        return False
    host, pid, start = parts
    if host != HOST or start == "?" or not pid.isdigit():
        return False
    return _started(int(pid)) != start


_IN_PROGRESS = Problem(
    409,
    "request-in-progress",
    (
        "La primera solicitud con esta clave aún está en curso; reintente.",
        "The first request with this key is still running; retry shortly.",
    ),
    headers={"Retry-After": "2"},
)


# The statements of every state-changing request, built once, on the table (Core): the ORM's
# per-statement work (a bulk UPDATE's session synchronisation, a flush) was most of their cost.
_RECORDS = cast(Table, IdempotencyRecord.__table__)
_THIS_KEY = and_(_RECORDS.c.actor_id == bindparam("actor"), _RECORDS.c.key == bindparam("key_hash"))
_CLAIMED = (
    select(
        _RECORDS.c.fingerprint,
        _RECORDS.c.status,
        _RECORDS.c.body,
        _RECORDS.c.etag,
        _RECORDS.c.created_at,
        _RECORDS.c.owner,
    )
    .where(_THIS_KEY)
    .with_for_update()
)
_TAKEN_OVER = (
    update(_RECORDS).where(_THIS_KEY).values(created_at=bindparam("now"), owner=bindparam("owner"))
)
_ANSWERED = (
    update(_RECORDS)
    .where(_THIS_KEY)
    .values(
        status=bindparam("answer_status"),
        body=bindparam("answer_body"),
        etag=bindparam("answer_etag"),
    )
)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    etag: str | None = None


def fingerprint(request: Request, payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method} {request.url.path}\n{canonical}".encode()).hexdigest()


def request_key(request: Request, key: str | None = None) -> str:
    """The request's key: ``key`` if given (a form's hidden field), else the header."""
    key = key if key is not None else request.headers.get(HEADER)
    if key is None:
        raise Problem(
            428,
            "precondition-required",
            (
                f"Falta la cabecera {HEADER}: envíe un valor único por acción "
                "(el mismo al reintentar).",
                f"Missing the {HEADER} header: send a unique value per action "
                "(the same one when retrying).",
            ),
        )
    if not KEY.fullmatch(key):
        raise Problem(
            400,
            "bad-request",
            (
                f"{HEADER} debe tener 8 a 128 caracteres (letras, dígitos, . _ : -).",
                f"{HEADER} must be 8 to 128 characters (letters, digits, . _ : -).",
            ),
        )
    return key


def _response(answer: Answer, replayed: bool) -> JSONResponse:
    headers = {"ETag": answer.etag} if answer.etag else {}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    media = "application/problem+json" if answer.status >= 400 else "application/json"
    return JSONResponse(answer.body, status_code=answer.status, headers=headers, media_type=media)


async def run_once(
    sessions: async_sessionmaker[AsyncSession],
    principal: Principal,
    request: Request,
    payload: Any,
    action: Callable[[str], Awaitable[Answer]],
) -> Response:
    """Run ``action(update_id)`` once per (caller, key); answer retries from the record.

    ``action`` raises :class:`Problem` for a refusal: 4xx refusals are recorded too (a retry
    gets the same refusal); anything else leaves no record, so a retry runs again.
    """
    answer, replayed = await run_once_answer(sessions, principal, request, payload, action)
    return _response(answer, replayed)


async def run_once_answer(
    sessions: async_sessionmaker[AsyncSession],
    principal: Principal,
    request: Request,
    payload: Any,
    action: Callable[[str], Awaitable[Answer]],
    key: str | None = None,
) -> tuple[Answer, bool]:
    """:func:`run_once` without the HTTP answer: (the answer, whether it was replayed).

    The web pages call it with ``key`` from the form's hidden field."""
    key = request_key(request, key)
    # Stored hashed: the key is the client's choice, and could be anything.
    key_hash = hashlib.sha256(key.encode()).hexdigest()
    digest = fingerprint(request, payload)
    actor = principal.actor_id
    now = datetime.now(UTC)

    async def claim_key() -> tuple[Answer, bool] | None:
        async with sessions.begin() as session:
            row = (await session.execute(_CLAIMED, {"actor": actor, "key_hash": key_hash})).first()
            if row is not None:
                if row.fingerprint != digest:
                    raise Problem(
                        422,
                        "idempotency-key-reused",
                        (
                            f"Esta {HEADER} ya se usó con otra solicitud.",
                            f"This {HEADER} was already used with a different request.",
                        ),
                    )
                if row.status is not None:
                    body = json.loads(row.body or b"{}")
                    return Answer(row.status, body, row.etag), True
                if now - row.created_at < STALE_AFTER and not owner_gone(row.owner):
                    raise _IN_PROGRESS
                # The first request died: take over.
                await session.execute(
                    _TAKEN_OVER, {"actor": actor, "key_hash": key_hash, "now": now, "owner": OWNER}
                )
            else:
                await session.execute(
                    _RECORDS.insert(),
                    {
                        "actor_id": actor,
                        "key": key_hash,
                        "fingerprint": digest,
                        "created_at": now,
                        "owner": OWNER,
                    },
                )
        return None

    try:
        replay: tuple[Answer, bool] | None = await _when_not_busy(claim_key)
    except IntegrityError:
        raise _IN_PROGRESS from None  # a concurrent first request inserted it
    if replay is not None:
        return replay
    try:
        answer = await action(f"{actor}:{key_hash[:32]}")
    except Problem as problem:
        if problem.status >= 500:
            await _forget(sessions, actor, key_hash)
            raise
        rendered = problem_response(
            request, problem.status, problem.type, problem.detail, problem.extra
        )
        answer = Answer(problem.status, json.loads(bytes(rendered.body)))
    except BaseException:
        await _forget(sessions, actor, key_hash)
        raise

    async def record() -> None:
        # One UPDATE, no read first: on SQLite a read-then-write transaction cannot wait for
        # a writer that committed in between (it fails at once with "database is locked").
        async with sessions.begin() as session:
            await session.execute(
                _ANSWERED,
                {
                    "actor": actor,
                    "key_hash": key_hash,
                    "answer_status": answer.status,
                    "answer_body": json.dumps(answer.body).encode(),
                    "answer_etag": answer.etag,
                },
            )

    try:
        await _when_not_busy(record)
    except OperationalError:
        # The change has happened: answer it. A retry finds the record still running, then
        # takes over after STALE_AFTER and gets the same result from Temporal (same update id).
        log.warning("idempotency_record_not_saved", status=answer.status)
    return answer, False


async def _when_not_busy(write: Callable[[], Awaitable[Any]]) -> Any:
    """Run a write transaction, again while the database answers "locked" (SQLite)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_RETRY_FOR
    delay = 0.05
    while True:
        try:
            return await write()
        except OperationalError as error:
            if "locked" not in str(error.orig) or loop.time() >= deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def _forget(sessions: async_sessionmaker[AsyncSession], actor: str, key: str) -> None:
    async def forget() -> None:
        async with sessions.begin() as session:
            await session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.actor_id == actor, IdempotencyRecord.key == key
                )
            )

    await _when_not_busy(forget)


async def purge_older_than(sessions: async_sessionmaker[AsyncSession], age: timedelta) -> int:
    """Forget answers older than ``age`` (a retry after that runs as a new request)."""
    cutoff = datetime.now(UTC) - age
    async with sessions.begin() as session:
        result = await session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff)
        )
    return int(getattr(result, "rowcount", 0) or 0)
