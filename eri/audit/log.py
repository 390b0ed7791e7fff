"""The log's operations on the database: checkpoints, cosignatures, proofs and exports.

The deployment's log key is an Ed25519 seed in the secret file ``audit-log-signing`` (created
0600 on first use in development, required in production: :meth:`Settings.dev_secret`); its
key name is the log's origin (``ERI_AUDIT_ORIGIN``).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from eri.audit import leaf, note, tree
from eri.db.models import AuditCheckpoint, AuditCosignature, LedgerEntry
from eri.settings import Settings

LOG_KEY_SECRET = "audit-log-signing"  # noqa: S105 (a file name, not a secret)
EXPORT_FORMAT = "eri-audit-export/1"


def log_signer(settings: Settings) -> note.Signer:
    return note.Signer.from_seed(settings.audit_origin, settings.dev_secret(LOG_KEY_SECRET))


def log_verifier_key(settings: Settings) -> note.VerifierKey:
    return log_signer(settings).verifier


def witness_keys(settings: Settings) -> list[note.VerifierKey]:
    keys = [note.VerifierKey.parse(k) for k in settings.audit_witnesses]
    return [k for k in keys if k.alg == note.COSIGNATURE_V1]


@dataclass(frozen=True)
class SignedCheckpoint:
    size: int
    root: bytes
    note: str  # the signed note, with every stored cosignature appended
    signed_at: datetime
    cosigners: tuple[str, ...]


async def checkpoint(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> tuple[SignedCheckpoint, bool]:
    """Sign the current tree head unless the latest checkpoint already has this size.

    Returns the checkpoint and whether it is new.
    """
    signer = log_signer(settings)
    async with sessions() as session:
        size = await tree.size(session)
        current = await _latest_row(session)
        if current is not None and current.size == size:
            return await _signed(session, current), False
        root = await tree.root(session, size)
    body = note.Checkpoint(settings.audit_origin, size, root).body()
    row = AuditCheckpoint(
        size=size,
        origin=settings.audit_origin,
        root_hash=root,
        note=note.sign(body, signer).render(),
        signed_at=datetime.now(UTC),
    )
    try:
        async with sessions.begin() as session:
            session.add(row)
    except IntegrityError:  # a concurrent run signed the same size
        async with sessions() as session:
            existing = await session.get(AuditCheckpoint, size)
            assert existing is not None
            return await _signed(session, existing), False
    async with sessions() as session:
        return await _signed(session, row), True


async def _latest_row(session: AsyncSession) -> AuditCheckpoint | None:
    query = select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc()).limit(1)
    return (await session.execute(query)).scalar_one_or_none()


async def _signed(session: AsyncSession, row: AuditCheckpoint) -> SignedCheckpoint:
    query = select(AuditCosignature).where(AuditCosignature.size == row.size)
    cosigs = list((await session.execute(query)).scalars())
    parsed = note.Note.parse(row.note)
    for cosig in sorted(cosigs, key=lambda c: (c.key_name, c.key_id)):
        parsed = parsed.with_signature(note.SignatureLine.parse(cosig.line))
    return SignedCheckpoint(
        row.size,
        bytes(row.root_hash),
        parsed.render(),
        row.signed_at,
        tuple(c.key_name for c in cosigs),
    )


async def latest(sessions: async_sessionmaker[AsyncSession]) -> SignedCheckpoint | None:
    async with sessions() as session:
        row = await _latest_row(session)
        return None if row is None else await _signed(session, row)


async def checkpoints(sessions: async_sessionmaker[AsyncSession]) -> list[SignedCheckpoint]:
    async with sessions() as session:
        rows = (
            await session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.size))
        ).scalars()
        return [await _signed(session, r) for r in rows]


class CosignatureError(ValueError):
    """A submitted cosignature that is not accepted; the message says why."""


async def add_cosignatures(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, cosigned: str
) -> list[str]:
    """Store the cosignatures on ``cosigned`` (a checkpoint note) by configured witnesses.

    The note's text must be a checkpoint this log signed; each cosignature line by a configured
    witness key must verify. Returns the names of the witnesses whose cosignature was stored.
    """
    try:
        parsed = note.Note.parse(cosigned)
        body = note.Checkpoint.parse_body(parsed.text)
    except note.NoteError as exc:
        raise CosignatureError(str(exc)) from None
    async with sessions() as session:
        row = await session.get(AuditCheckpoint, body.size)
    if row is None or note.Note.parse(row.note).text != parsed.text:
        raise CosignatureError("the note is not a checkpoint this log signed")
    stored: list[str] = []
    for key in witness_keys(settings):
        try:
            line = note.verify(parsed, key)
        except note.NoteError:
            continue
        async with sessions.begin() as session:
            await session.merge(
                AuditCosignature(
                    size=body.size,
                    key_name=key.name,
                    key_id=key.id.hex(),
                    line=line.render().rstrip("\n"),
                    cosigned_at=datetime.fromtimestamp(note.cosignature_time(line), UTC),
                )
            )
        stored.append(key.name)
    if not stored:
        raise CosignatureError("no valid cosignature by a configured witness key")
    return stored


async def export(sessions: async_sessionmaker[AsyncSession], out: IO[bytes]) -> int:
    """Write every ledger entry (ordered by ``seq``) and every checkpoint to ``out``.

    Format ``eri-audit-export/1``, one JSON value per line:

    1. a header ``{"format", "origin", "size", "leaf_format"}``;
    2. one line per ledger entry: its canonical leaf (:mod:`eri.audit.leaf`), verbatim;
    3. a trailer: the checkpoints (signed notes with their cosignatures, by size), the tree's
       stored leaf hashes (base64, 32 bytes each, the log's own record, authenticated by the
       checkpoints), and the server's consistency proofs between consecutive checkpoints and
       inclusion proofs of each checkpoint's last entry (base64 hashes).

    Returns the number of entries written.
    """
    async with sessions() as session:
        size = await tree.size(session)
        cps = [c for c in await checkpoints(sessions) if c.size <= size]
        header = {
            "format": EXPORT_FORMAT,
            "origin": None,
            "size": size,
            "leaf_format": leaf.VERSION,
        }
        if cps:
            header["origin"] = note.Checkpoint.parse_body(note.Note.parse(cps[-1].note).text).origin
        out.write(json.dumps(header).encode() + b"\n")
        count = 0
        columns = [getattr(LedgerEntry, name) for name in leaf.FIELDS]
        stream = await session.stream(
            select(*columns).order_by(LedgerEntry.seq).execution_options(yield_per=10_000)
        )
        async for batch in stream.partitions():
            out.write(b"".join(leaf.encode(row) + b"\n" for row in batch))
            count += len(batch)
        leaves = await tree.leaf_hashes(session, size)
        consistency = []
        inclusion = []
        for previous, current in zip([None, *cps], cps, strict=False):
            if previous is not None:
                proof = await tree.consistency_proof(session, previous.size, current.size)
                consistency.append(
                    {"first": previous.size, "second": current.size, "proof": _b64(proof)}
                )
            if current.size:
                proof = await tree.inclusion_proof(session, current.size - 1, current.size)
                inclusion.append(
                    {"index": current.size - 1, "size": current.size, "proof": _b64(proof)}
                )
    trailer: dict[str, Any] = {
        "checkpoints": [c.note for c in cps],
        "leaf_hashes": base64.b64encode(b"".join(leaves)).decode(),
        "consistency": consistency,
        "inclusion": inclusion,
    }
    out.write(json.dumps(trailer).encode() + b"\n")
    return count


def _b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]
