"""The keyring of a process, built from settings: KEK provider, SQL key store, cache.

KEK sources: ``ERI_KEK`` (base64, required in production) with ``ERI_KEK_PREVIOUS``
(comma-separated base64) readable during a rotation; or, in development, the key directory
``$ERI_KEYS_DIR``: the current ``kek`` file and every ``kek.previous-*`` file beside it. The
directory provider re-reads the directory when it meets a KEK id it does not know, or when the
``kek`` file changed, so ``eri keys rotate --new-kek`` works while the worker and API run.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from eri.crypto.errors import UnknownKeyError
from eri.crypto.kek import EnvKEK, KEKProvider, LocalFileKEK, MultiKEK, wrapped_kek_id
from eri.crypto.keys import Keyring
from eri.crypto.sql_store import SqlDataKeyStore
from eri.settings import Settings

KEK_FILE = "kek"
PREVIOUS_PREFIX = "kek.previous-"


class LocalKEKDirectory:
    """KEKs from a directory: ``kek`` is current, ``kek.previous-*`` are readable."""

    def __init__(self, directory: Path, *, create: bool) -> None:
        self._dir = directory
        self._create = create
        self._stamp: tuple[int, int] | None = None
        self._multi = self._load()

    def __repr__(self) -> str:
        return f"LocalKEKDirectory({self._multi!r})"

    def _current_stamp(self) -> tuple[int, int]:
        st = os.stat(self._dir / KEK_FILE)
        return (st.st_ino, st.st_mtime_ns)

    def _load(self) -> MultiKEK:
        path = self._dir / KEK_FILE
        current = (
            LocalFileKEK.create_if_missing(path) if self._create else LocalFileKEK.from_file(path)
        )
        previous = [
            LocalFileKEK.from_file(p) for p in sorted(self._dir.glob(PREVIOUS_PREFIX + "*"))
        ]
        self._stamp = self._current_stamp()
        return MultiKEK(current, *[p for p in previous if p.key_id != current.key_id])

    def reload(self) -> None:
        self._multi = self._load()

    @property
    def key_id(self) -> str:
        return self._multi.key_id

    @property
    def key_ids(self) -> frozenset[str]:
        return self._multi.key_ids

    async def wrap(self, plaintext_dek: bytes, aad: bytes) -> bytes:
        if self._current_stamp() != self._stamp:  # rotated by another process
            self.reload()
        return await self._multi.wrap(plaintext_dek, aad)

    async def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        if wrapped_kek_id(wrapped) not in self._multi.key_ids:
            self.reload()
            if wrapped_kek_id(wrapped) not in self._multi.key_ids:
                raise UnknownKeyError(
                    f"no key-encryption key {wrapped_kek_id(wrapped)} is configured"
                )
        return await self._multi.unwrap(wrapped, aad)


def new_local_kek(directory: Path) -> tuple[str, str]:
    """Start a rotation in the key directory: the current ``kek`` becomes
    ``kek.previous-<id>`` and a new ``kek`` is created. Returns (old id, new id)."""
    old = LocalFileKEK.from_file(directory / KEK_FILE)
    os.replace(directory / KEK_FILE, directory / f"{PREVIOUS_PREFIX}{old.key_id}")
    new = LocalFileKEK.create_if_missing(directory / KEK_FILE)
    return old.key_id, new.key_id


def kek_from_settings(settings: Settings) -> KEKProvider:
    if settings.kek is None:
        return LocalKEKDirectory(settings.effective_keys_dir, create=settings.is_development)
    current = EnvKEK(settings.kek.get_secret_value())
    previous = [
        EnvKEK(v, variable="ERI_KEK_PREVIOUS")
        for v in (settings.kek_previous.get_secret_value() if settings.kek_previous else "").split(
            ","
        )
        if v.strip()
    ]
    return MultiKEK(current, *previous) if previous else current


def keyring_from_settings(
    settings: Settings, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> Keyring:
    return Keyring(SqlDataKeyStore(engine, sessions), kek_from_settings(settings))
