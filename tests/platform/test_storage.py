"""Storage tests: each runs once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from eri.db import create_engine, session_factory, upgrade
from eri.db.engine import backend_name
from eri.db.migrate import downgrade
from eri.db.models import DataKey


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_migrations_upgrade_downgrade_and_upgrade_again(empty_database_url: str) -> None:
    print(f"backend={backend_name(empty_database_url)}")
    await asyncio.to_thread(upgrade, empty_database_url)
    assert {"alembic_version", "data_keys"} <= await _tables(empty_database_url)
    await asyncio.to_thread(downgrade, empty_database_url, "base")
    assert "data_keys" not in await _tables(empty_database_url)
    await asyncio.to_thread(upgrade, empty_database_url)
    await asyncio.to_thread(upgrade, empty_database_url)  # idempotent at head
    assert "data_keys" in await _tables(empty_database_url)


async def test_data_key_rows_round_trip_and_ids_are_unique(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    try:
        async with sessions.begin() as session:
            session.add(
                DataKey(
                    key_id="case_k1", version=1, kek_id="kek_a", wrapped=b"\x00\x01", created_at=now
                )
            )
        async with sessions() as session:
            row = (
                await session.execute(select(DataKey).where(DataKey.key_id == "case_k1"))
            ).scalar_one()
            assert (row.version, row.kek_id, row.wrapped) == (1, "kek_a", b"\x00\x01")
            assert row.created_at == now
            assert row.created_at.tzinfo is not None
        with pytest.raises(IntegrityError):
            async with sessions.begin() as session:
                session.add(DataKey(key_id="case_k1", version=1, kek_id="kek_b", created_at=now))
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM data_keys"))).scalar_one() == 1
    finally:
        await engine.dispose()
