"""An in-memory :class:`~eri.crypto.keys.DataKeyStore` for tests only.

It implements the store contract exactly (insert-if-absent, compare-and-set re-wrap, tombstones)
and is the reference the SQL store is checked against (``tests/crypto/store_contract.py``).
Never use it in a running system: a restart would lose every key and so every case's data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from eri.crypto.keys import WrappedKey


class MemoryDataKeyStore:
    """Dict-backed store. ``yield_every_call`` awaits ``asyncio.sleep(0)`` inside every call so
    tests can interleave concurrent tasks (rotation against shredding and use)."""

    def __init__(self, *, yield_every_call: bool = False) -> None:
        self._rows: dict[str, WrappedKey] = {}
        self._yield = yield_every_call
        self.get_calls = 0

    async def _pause(self) -> None:
        if self._yield:
            await asyncio.sleep(0)

    async def get_wrapped(self, key_id: str) -> WrappedKey | None:
        self.get_calls += 1
        await self._pause()
        return self._rows.get(key_id)

    async def put_wrapped(self, key: WrappedKey, *, replace_kek_id: str | None = None) -> bool:
        await self._pause()
        existing = self._rows.get(key.key_id)
        if replace_kek_id is None:
            if existing is not None:
                return False
            self._rows[key.key_id] = key
            return True
        if (
            existing is None
            or existing.is_shredded
            or existing.kek_id != replace_kek_id
            or existing.version != key.version
        ):
            return False
        self._rows[key.key_id] = replace(
            existing, kek_id=key.kek_id, wrapped=key.wrapped, rewrapped_at=key.rewrapped_at
        )
        return True

    async def mark_shredded(self, key_id: str, at: datetime) -> bool:
        await self._pause()
        existing = self._rows.get(key_id)
        if existing is None:
            self._rows[key_id] = WrappedKey(key_id, 0, "-", None, at, shredded_at=at)
            return False
        if existing.is_shredded:
            return False
        self._rows[key_id] = replace(existing, wrapped=None, shredded_at=at)
        return True

    async def list_wrapped(
        self, *, after: str | None = None, limit: int = 500
    ) -> Sequence[WrappedKey]:
        await self._pause()
        ids = sorted(k for k in self._rows if after is None or k > after)
        return [self._rows[k] for k in ids[:limit]]

    def raw_rows(self) -> dict[str, WrappedKey]:
        """The stored rows as they are (for assertions)."""
        return dict(self._rows)
