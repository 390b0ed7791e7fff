"""What every ERI process opens once: the database engine, its sessions and the keyring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from eri.crypto.keys import Keyring
from eri.crypto.wiring import keyring_from_settings
from eri.db import create_engine, session_factory
from eri.settings import Settings


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    keyring: Keyring


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    engine = create_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    try:
        yield Runtime(settings, engine, sessions, keyring_from_settings(settings, engine, sessions))
    finally:
        await engine.dispose()
