"""The SQL data-key store meets the DataKeyStore contract on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from eri.crypto.keys import DataKeyStore, WrappedKey
from eri.crypto.sql_store import SqlDataKeyStore
from eri.db import create_engine, session_factory
from tests.crypto.store_contract import check_store_contract


async def test_sql_store_meets_the_contract(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        store = SqlDataKeyStore(engine, session_factory(engine))
        assert isinstance(store, DataKeyStore)
        await check_store_contract(lambda: store)
    finally:
        await engine.dispose()


async def test_concurrent_creation_has_exactly_one_winner(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        store = SqlDataKeyStore(engine, session_factory(engine))
        now = datetime.now(UTC)
        rows = [WrappedKey("dk_case_race0001", 1, "kek_a", bytes([i]) * 8, now) for i in range(10)]
        won = await asyncio.gather(*(store.put_wrapped(r) for r in rows))
        assert won.count(True) == 1
        stored = await store.get_wrapped("dk_case_race0001")
        assert stored is not None
        assert stored.wrapped == rows[won.index(True)].wrapped
    finally:
        await engine.dispose()
