"""Audit fixtures: a migrated database on each backend, its sessions and settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.app import create_app
from api.deps import Services
from eri import ledger
from eri.audit import note
from eri.db import create_engine, session_factory
from eri.ledger import Action, Outcome, Record
from eri.settings import Settings

WITNESS = note.Signer.from_seed("cit.gt/comite-1", b"\x42" * 32, note.COSIGNATURE_V1)
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


@dataclass
class Api:
    client: httpx.AsyncClient
    settings: Settings
    services: Services


@asynccontextmanager
async def audit_api(database_url: str, tmp_path: Path, k: int) -> AsyncIterator[Api]:
    """ERI's API on ``database_url``, with the committee's witness and threshold ``k``."""
    settings = Settings(
        data_dir=tmp_path,
        keys_dir=tmp_path / "keys",
        database_url=database_url,
        audit_origin="eri.test/audit",
        audit_witnesses=[WITNESS.verifier.encode()],
        audit_k=k,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://eri.test") as client:
            yield Api(client, settings, app.state.services)


@dataclass
class AuditDb:
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings


@pytest.fixture
async def audit_db(database_url: str, tmp_path: Path) -> AsyncIterator[AuditDb]:
    settings = Settings(
        data_dir=tmp_path,
        keys_dir=tmp_path / "keys",
        database_url=database_url,
        audit_origin="eri.test/audit",
        audit_witnesses=[WITNESS.verifier.encode()],
    )
    engine = create_engine(database_url)
    try:
        yield AuditDb(database_url, engine, session_factory(engine), settings)
    finally:
        await engine.dispose()


async def append_many(db: AuditDb, n: int, *, start: int = 0) -> None:
    for i in range(start, start + n):
        await ledger.append(
            db.sessions,
            Record(
                idempotency_key=f"test:entry:{i:06d}",
                action=Action.TASK_COMPLETED if i % 3 else Action.CASE_VIEWED,
                outcome=Outcome.OK,
                case_id=f"case_audit{i % 4}",
                protocol_id="gt-eri",
                protocol_version="1.0.0",
                step_id="activation",
                actor_id="usr_test0001",
                actor_role="coordinator",
                actor_institution="SVET",
                deadline_status="on_time",
                recorded_at=T0 + timedelta(minutes=i),
            ),
        )
