"""Evidence attachments on both databases: streamed, hashed on arrival, encrypted, bounded."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from eri import ledger
from eri.crypto.kek import LocalFileKEK
from eri.crypto.keys import Keyring
from eri.crypto.sql_store import SqlDataKeyStore
from eri.db import create_engine, session_factory
from eri.db.models import Evidence, EvidenceChunk
from eri.handoff.evidence import (
    EvidenceIntegrityError,
    EvidenceStore,
    EvidenceTooLargeError,
    Uploader,
)

WHO = Uploader("usr_resp0001", "responder", "SVET")


async def blocks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_streamed_evidence_round_trip_tamper_and_limit(
    database_url: str, tmp_path: Path
) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        keyring = Keyring(
            SqlDataKeyStore(engine, sessions), LocalFileKEK.create_if_missing(tmp_path / "kek")
        )
        store = EvidenceStore(keyring, sessions, max_bytes=10_000, chunk_size=1024)
        case_id = "case_" + uuid.uuid4().hex[:20]
        photo = b"synthetic-photo:" + bytes(range(256)) * 20  # 5136 bytes, 6 chunks
        info = await store.put(
            case_id,
            blocks(photo, 700),
            media_type="image/jpeg",
            uploader=WHO,
            meta={"name": "foto_sintética.jpg"},
        )
        assert info.sha256 == hashlib.sha256(photo).hexdigest() and info.size == len(photo)
        _, back = await store.read(info.evidence_id)
        assert back == photo
        assert (await store.meta(info.evidence_id))["name"] == "foto_sintética.jpg"
        async with sessions() as s:
            chunks = (
                (
                    await s.execute(
                        select(EvidenceChunk).where(EvidenceChunk.evidence_id == info.evidence_id)
                    )
                )
                .scalars()
                .all()
            )
            assert len(chunks) == 6
            assert all(b"synthetic-photo" not in c.ciphertext for c in chunks)
            assert b"sint" not in ((await s.get(Evidence, info.evidence_id)).meta or b"")  # type: ignore[union-attr]
        entries = await ledger.entries(sessions, case_id=case_id)
        assert [e.step_id for e in entries] == ["evidence.received"]

        # A dropped last chunk, or chunks swapped, do not open.
        async with sessions.begin() as s:
            last = await s.get(EvidenceChunk, (info.evidence_id, 5))
            assert last is not None
            await s.delete(last)
            first = await s.get(EvidenceChunk, (info.evidence_id, 0))
            assert first is not None
            s.add(EvidenceChunk(evidence_id=info.evidence_id, idx=5, ciphertext=first.ciphertext))
        with pytest.raises(EvidenceIntegrityError):
            await store.read(info.evidence_id)

        # Too large: refused mid-stream, nothing stored.
        with pytest.raises(EvidenceTooLargeError):
            await store.put(
                case_id, blocks(b"x" * 10_001, 4096), media_type="audio/ogg", uploader=WHO
            )
        assert len(await store.list(case_id)) == 1
    finally:
        await engine.dispose()
