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

from sqlalchemy import insert, select
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
        for attempt in range(_RETRIES):
            try:
                async with self._sessions() as session, session.begin():
                    (version,) = await self.put_all(
                        session, case_id, [(field, value)], unless_current=unless_current
                    )
                return version
            except IntegrityError:  # a concurrent writer took this version
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    async def put_all(
        self,
        session: AsyncSession,
        case_id: str,
        writes: list[tuple[str, Any]],
        *,
        unless_current: bool = False,
    ) -> list[int]:
        """:meth:`put` of each ``(field, value)`` in order, inside the caller's transaction
        (one read of the fields' latest versions, one insert); their versions."""
        for field, _ in writes:
            if FIELD.fullmatch(field) is None:
                raise VaultFieldError("vault field names are lowercase codes")
        if not writes:
            return []
        key_id = case_key_id(case_id)
        latest: dict[str, VaultRecord] = {}
        rows = (
            await session.execute(
                select(VaultRecord)
                .where(
                    VaultRecord.case_id == case_id,
                    VaultRecord.field.in_({field for field, _ in writes}),
                )
                .order_by(VaultRecord.version)
            )
        ).scalars()
        for row in rows:
            latest[row.field] = row  # the highest version last
        versions: list[int] = []
        fresh: list[VaultRecord] = []
        for field, value in writes:
            plaintext = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
            current = latest.get(field)
            if (
                unless_current
                and current is not None
                and await self._plaintext(current) == plaintext
            ):
                versions.append(current.version)
                continue
            version = (current.version if current is not None else 0) + 1
            sealed = await self._keyring.seal(
                key_id, plaintext, vault_aad(case_id, field, version), create=True
            )
            record = VaultRecord(
                case_id=case_id,
                field=field,
                version=version,
                ciphertext=sealed,
                created_at=datetime.now(UTC),
            )
            fresh.append(record)
            latest[field] = record
            versions.append(version)
        if fresh:
            await session.execute(
                insert(VaultRecord),
                [
                    {
                        "case_id": r.case_id,
                        "field": r.field,
                        "version": r.version,
                        "ciphertext": r.ciphertext,
                        "created_at": r.created_at,
                    }
                    for r in fresh
                ],
            )
        return versions

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
