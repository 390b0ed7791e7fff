"""The SQL ``DataKeyStore``: wrapped data keys in the ``data_keys`` table (SQLite, PostgreSQL).

Each method is one atomic statement (or one short transaction), so several workers and API
processes share the store safely: inserts are ``ON CONFLICT DO NOTHING``; rotation is a
compare-and-set on the KEK id and version; shredding nulls the wrapped key and leaves a tombstone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from eri.crypto.keys import WrappedKey
from eri.db.models import DataKey

TOMBSTONE_KEK = "-"


def _row(key: DataKey) -> WrappedKey:
    return WrappedKey(
        key_id=key.key_id,
        version=key.version,
        kek_id=key.kek_id,
        wrapped=key.wrapped,
        created_at=key.created_at,
        rewrapped_at=key.rewrapped_at,
        shredded_at=key.shredded_at,
    )


class SqlDataKeyStore:
    def __init__(self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._engine = engine
        self._sessions = sessions
        dialect = engine.dialect.name
        self._insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert

    def __repr__(self) -> str:
        return f"SqlDataKeyStore({self._engine.dialect.name})"

    async def get_wrapped(self, key_id: str) -> WrappedKey | None:
        async with self._sessions() as session:
            row = await session.get(DataKey, key_id)
            return _row(row) if row is not None else None

    async def put_wrapped(self, key: WrappedKey, *, replace_kek_id: str | None = None) -> bool:
        async with self._sessions() as session, session.begin():
            if replace_kek_id is None:
                stmt = (
                    self._insert(DataKey)
                    .values(
                        key_id=key.key_id,
                        version=key.version,
                        kek_id=key.kek_id,
                        wrapped=key.wrapped,
                        created_at=key.created_at,
                        rewrapped_at=key.rewrapped_at,
                        shredded_at=key.shredded_at,
                    )
                    .on_conflict_do_nothing(index_elements=["key_id"])
                )
            else:
                stmt = (
                    update(DataKey)
                    .where(
                        DataKey.key_id == key.key_id,
                        DataKey.kek_id == replace_kek_id,
                        DataKey.version == key.version,
                        DataKey.wrapped.is_not(None),
                        DataKey.shredded_at.is_(None),
                    )
                    .values(wrapped=key.wrapped, kek_id=key.kek_id, rewrapped_at=key.rewrapped_at)
                )
            result: Any = await session.execute(stmt)
            return bool(result.rowcount == 1)

    async def mark_shredded(self, key_id: str, at: datetime) -> bool:
        async with self._sessions() as session, session.begin():
            destroyed: Any = await session.execute(
                update(DataKey)
                .where(DataKey.key_id == key_id, DataKey.wrapped.is_not(None))
                .values(wrapped=None, shredded_at=at)
            )
            if destroyed.rowcount == 1:
                return True
            # No live key: make sure a tombstone exists (keeping an earlier shredded_at).
            await session.execute(
                update(DataKey)
                .where(DataKey.key_id == key_id, DataKey.shredded_at.is_(None))
                .values(shredded_at=at)
            )
            await session.execute(
                self._insert(DataKey)
                .values(
                    key_id=key_id,
                    version=0,
                    kek_id=TOMBSTONE_KEK,
                    wrapped=None,
                    created_at=at,
                    shredded_at=at,
                )
                .on_conflict_do_nothing(index_elements=["key_id"])
            )
            return False

    async def list_wrapped(
        self, *, after: str | None = None, limit: int = 500
    ) -> Sequence[WrappedKey]:
        async with self._sessions() as session:
            query = select(DataKey).order_by(DataKey.key_id).limit(limit)
            if after is not None:
                query = query.where(DataKey.key_id > after)
            return [_row(r) for r in (await session.execute(query)).scalars()]
