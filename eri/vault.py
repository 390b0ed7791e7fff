"""The vault: victim data at rest, encrypted under the case's data key.

Values are JSON, sealed as AES-256-GCM envelopes by the keyring with associated data
``("eri/vault/v1", case_id, field, version)``: a ciphertext moved to another case, field or
version does not decrypt. Records are versioned, never updated in place. After the case key is
shredded every read raises ``KeyShreddedError`` (the API answers 410 Gone).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from eri.crypto.aead import make_aad
from eri.crypto.keys import Keyring, case_key_id
from eri.db.models import VaultRecord

FIELD = re.compile(r"[a-z][a-z0-9_.:-]{0,95}")
_RETRIES = 3


class VaultFieldError(ValueError):
    """A field name that is not a code (field names are visible; they must not carry data)."""


def vault_aad(case_id: str, field: str, version: int) -> bytes:
    return make_aad("eri/vault/v1", case_id, field, version)


class Vault:
    def __init__(self, keyring: Keyring, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._keyring = keyring
        self._sessions = sessions

    async def put(
        self, case_id: str, field: str, value: Any, *, unless_current: bool = False
    ) -> int:
        """Store a new version of ``field`` for the case; return its version.

        ``unless_current``: when the latest version already holds exactly this value, store
        nothing and return that version. A retried write (a worker killed after the vault
        write, before its activity completed) then adds no second version.
        """
        if FIELD.fullmatch(field) is None:
            raise VaultFieldError("vault field names are lowercase codes")
        plaintext = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        key_id = case_key_id(case_id)
        for attempt in range(_RETRIES):
            async with self._sessions() as session:
                current = (
                    await session.execute(
                        select(func.max(VaultRecord.version)).where(
                            VaultRecord.case_id == case_id, VaultRecord.field == field
                        )
                    )
                ).scalar_one_or_none()
                if unless_current and current is not None:
                    row = (
                        await session.execute(
                            select(VaultRecord).where(
                                VaultRecord.case_id == case_id,
                                VaultRecord.field == field,
                                VaultRecord.version == current,
                            )
                        )
                    ).scalar_one()
                    if await self._plaintext(row) == plaintext:
                        return current
                version = (current or 0) + 1
                sealed = await self._keyring.seal(
                    key_id, plaintext, vault_aad(case_id, field, version), create=True
                )
                session.add(
                    VaultRecord(
                        case_id=case_id,
                        field=field,
                        version=version,
                        ciphertext=sealed,
                        created_at=datetime.now(UTC),
                    )
                )
                try:
                    await session.commit()
                    return version
                except IntegrityError:  # a concurrent writer took this version
                    await session.rollback()
                    if attempt == _RETRIES - 1:
                        raise
        raise AssertionError("unreachable")

    async def get(self, case_id: str, field: str, version: int | None = None) -> Any:
        """The value of ``field`` (latest version unless given); KeyError if there is none."""
        async with self._sessions() as session:
            query = select(VaultRecord).where(
                VaultRecord.case_id == case_id, VaultRecord.field == field
            )
            if version is not None:
                query = query.where(VaultRecord.version == version)
            row = (
                await session.execute(query.order_by(VaultRecord.version.desc()).limit(1))
            ).scalar_one_or_none()
        if row is None:
            raise KeyError(field)
        return await self._open(row)

    async def get_all(self, case_id: str) -> dict[str, Any]:
        """The latest version of every field of the case."""
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(VaultRecord)
                    .where(VaultRecord.case_id == case_id)
                    .order_by(VaultRecord.field, VaultRecord.version)
                )
            ).scalars()
            latest = {row.field: row for row in rows}
        return {field: await self._open(row) for field, row in latest.items()}

    async def _plaintext(self, row: VaultRecord) -> bytes:
        return await self._keyring.open(
            row.ciphertext,
            vault_aad(row.case_id, row.field, row.version),
            expected_key_id=case_key_id(row.case_id),
        )

    async def _open(self, row: VaultRecord) -> Any:
        return json.loads(await self._plaintext(row))
