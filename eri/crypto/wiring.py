"""The keyring of a process, built from settings: KEK provider, SQL key store, cache.

KEK sources, in order: ``ERI_KEK`` (base64, required in production), else the local key file
``$ERI_KEYS_DIR/kek`` (development creates it, mode 0600). During a KEK rotation the previous
keys stay readable: ``ERI_KEK_PREVIOUS`` (comma-separated base64) and, locally, every
``kek.previous-*`` file beside the current one.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from eri.crypto.kek import EnvKEK, KEKProvider, LocalFileKEK, MultiKEK
from eri.crypto.keys import Keyring
from eri.crypto.sql_store import SqlDataKeyStore
from eri.settings import Settings

KEK_FILE = "kek"
PREVIOUS_PREFIX = "kek.previous-"


def kek_from_settings(settings: Settings) -> KEKProvider:
    previous: list[KEKProvider] = []
    if settings.kek is not None:
        current: KEKProvider = EnvKEK(settings.kek.get_secret_value())
        if settings.kek_previous is not None:
            previous += [
                EnvKEK(v, variable="ERI_KEK_PREVIOUS")
                for v in settings.kek_previous.get_secret_value().split(",")
                if v.strip()
            ]
    else:
        keys = settings.effective_keys_dir
        path = keys / KEK_FILE
        current = (
            LocalFileKEK.create_if_missing(path)
            if settings.is_development
            else LocalFileKEK.from_file(path)
        )
        previous += [LocalFileKEK.from_file(p) for p in sorted(keys.glob(PREVIOUS_PREFIX + "*"))]
    return MultiKEK(current, *previous) if previous else current


def keyring_from_settings(
    settings: Settings, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> Keyring:
    return Keyring(SqlDataKeyStore(engine, sessions), kek_from_settings(settings))
