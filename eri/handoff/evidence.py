"""Evidence attachments: streamed in, hashed on arrival, stored encrypted under the case key.

A file arrives as a stream of byte blocks. It is cut into chunks of ``chunk_size`` bytes, each
sealed as an AES-256-GCM envelope under the case's data key with associated data
``("eri/evidence/v1", case id, evidence id, index, last)``: a chunk moved to another case,
file or position, a dropped last chunk or an appended one does not open. The SHA-256 of the
plaintext is computed as the bytes arrive; it is what the custody log and a handoff manifest
name. Nothing is stored unless the whole file arrived within the size limit (one transaction).
Shredding the case key makes every chunk unreadable.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from eri import ledger
from eri.crypto.aead import make_aad
from eri.crypto.errors import DecryptionError
from eri.crypto.keys import Keyring, case_key_id
from eri.db.models import Evidence, EvidenceChunk
from eri.ledger import Action, Record

DEFAULT_CHUNK: Final = 1 << 20
MEDIA_TYPE: Final = re.compile(r"[a-z]+/[a-z0-9.+-]{1,100}")


class EvidenceTooLargeError(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"evidence exceeds the limit of {limit} bytes")
        self.limit = limit


class EvidenceIntegrityError(Exception):
    """Stored evidence whose chunks do not open or whose hash differs from the arrival hash."""


@dataclass(frozen=True)
class Uploader:
    actor_id: str
    role: str
    institution: str


@dataclass(frozen=True)
class EvidenceInfo:
    evidence_id: str
    case_id: str
    sha256: str
    size: int
    media_type: str
    received_at: datetime
    received_by: str
    received_by_role: str
    received_by_institution: str

    def custody(self) -> dict[str, Any]:
        """The custody-log entry of this file (no victim data: ids, codes, hash, time)."""
        return {
            "evidence_id": self.evidence_id,
            "sha256": self.sha256,
            "size": self.size,
            "media_type": self.media_type,
            "events": [
                {
                    "event": "received",
                    "at": self.received_at.isoformat(),
                    "actor_id": self.received_by,
                    "role": self.received_by_role,
                    "institution": self.received_by_institution,
                }
            ],
        }


def chunk_aad(case_id: str, evidence_id: str, index: int, last: bool) -> bytes:
    return make_aad("eri/evidence/v1", case_id, evidence_id, index, 1 if last else 0)


def meta_aad(case_id: str, evidence_id: str) -> bytes:
    return make_aad("eri/evidence-meta/v1", case_id, evidence_id)


def _info(row: Evidence) -> EvidenceInfo:
    return EvidenceInfo(
        row.evidence_id,
        row.case_id,
        row.sha256,
        row.size,
        row.media_type,
        row.received_at,
        row.received_by,
        row.received_by_role,
        row.received_by_institution,
    )


class EvidenceStore:
    def __init__(
        self,
        keyring: Keyring,
        sessions: async_sessionmaker[AsyncSession],
        *,
        max_bytes: int,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> None:
        if chunk_size < 1 or max_bytes < 1:
            raise ValueError("chunk_size and max_bytes must be positive")
        self._keyring = keyring
        self._sessions = sessions
        self._max = max_bytes
        self._chunk = chunk_size

    async def put(
        self,
        case_id: str,
        stream: AsyncIterable[bytes],
        *,
        media_type: str,
        uploader: Uploader,
        meta: dict[str, Any] | None = None,
    ) -> EvidenceInfo:
        """Store a file; raises :class:`EvidenceTooLargeError` (storing nothing) past the limit."""
        if MEDIA_TYPE.fullmatch(media_type) is None:
            raise ValueError("media type must look like type/subtype")
        key = await self._keyring.case_key(case_id)
        evidence_id = "ev_" + secrets.token_urlsafe(18)
        digest = hashlib.sha256()
        size = 0
        sealed: list[bytes] = []
        buffer = bytearray()
        async for block in stream:
            size += len(block)
            if size > self._max:
                raise EvidenceTooLargeError(self._max)
            digest.update(block)
            buffer += block
            # Keep at least one byte back: the last chunk is sealed as last.
            while len(buffer) > self._chunk:
                piece, buffer = bytes(buffer[: self._chunk]), buffer[self._chunk :]
                sealed.append(
                    key.seal(piece, chunk_aad(case_id, evidence_id, len(sealed), last=False))
                )
        sealed.append(
            key.seal(bytes(buffer), chunk_aad(case_id, evidence_id, len(sealed), last=True))
        )
        at = datetime.now(UTC)
        row = Evidence(
            evidence_id=evidence_id,
            case_id=case_id,
            sha256=digest.hexdigest(),
            size=size,
            media_type=media_type,
            chunk_size=self._chunk,
            chunks=len(sealed),
            meta=key.seal(
                json.dumps(meta or {}, ensure_ascii=False).encode(),
                meta_aad(case_id, evidence_id),
            ),
            received_at=at,
            received_by=uploader.actor_id,
            received_by_role=uploader.role,
            received_by_institution=uploader.institution,
        )
        async with self._sessions.begin() as session:
            session.add(row)
            session.add_all(
                EvidenceChunk(evidence_id=evidence_id, idx=i, ciphertext=c)
                for i, c in enumerate(sealed)
            )
        info = _info(row)
        await ledger.append(
            self._sessions,
            Record(
                idempotency_key=f"evidence:{evidence_id}:received",
                action=Action.HANDOFF_CUSTODY,
                case_id=case_id,
                step_id="evidence.received",
                actor_id=uploader.actor_id,
                actor_role=uploader.role,
                actor_institution=uploader.institution,
                detail_hash=ledger.detail_hash({"evidence_id": evidence_id, "sha256": info.sha256}),
                recorded_at=at,
            ),
        )
        return info

    async def list(self, case_id: str) -> list[EvidenceInfo]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(Evidence)
                .where(Evidence.case_id == case_id)
                .order_by(Evidence.received_at, Evidence.evidence_id)
            )
            return [_info(r) for r in rows.scalars()]

    async def read(self, evidence_id: str) -> tuple[EvidenceInfo, bytes]:
        """The file, decrypted and checked against its arrival hash."""
        async with self._sessions() as session:
            row = await session.get(Evidence, evidence_id)
            if row is None:
                raise KeyError(evidence_id)
            chunks = list(
                (
                    await session.execute(
                        select(EvidenceChunk.ciphertext)
                        .where(EvidenceChunk.evidence_id == evidence_id)
                        .order_by(EvidenceChunk.idx)
                    )
                ).scalars()
            )
        if len(chunks) != row.chunks:
            raise EvidenceIntegrityError("evidence chunks are missing")
        out = bytearray()
        expected = case_key_id(row.case_id)
        for index, envelope in enumerate(chunks):
            aad = chunk_aad(row.case_id, evidence_id, index, last=index == row.chunks - 1)
            try:
                out += await self._keyring.open(envelope, aad, expected_key_id=expected)
            except DecryptionError:
                raise EvidenceIntegrityError(f"evidence chunk {index} does not open") from None
        data = bytes(out)
        if hashlib.sha256(data).hexdigest() != row.sha256 or len(data) != row.size:
            raise EvidenceIntegrityError("evidence does not match its arrival hash")
        return _info(row), data

    async def meta(self, evidence_id: str) -> dict[str, Any]:
        async with self._sessions() as session:
            row = await session.get(Evidence, evidence_id)
        if row is None or row.meta is None:
            raise KeyError(evidence_id)
        plain = await self._keyring.open(
            row.meta, meta_aad(row.case_id, evidence_id), expected_key_id=case_key_id(row.case_id)
        )
        value: dict[str, Any] = json.loads(plain)
        return value
