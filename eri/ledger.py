"""The ledger: an append-only, PII-free log of every case action and every denied access.

Each entry gets a dense global sequence (its Merkle leaf index, :mod:`eri.audit`) and a
per-case sequence. Appends are idempotent: a retried activity or request that presents the same
idempotency key gets the first entry back and writes nothing. Fields hold only opaque ids and
coded values, checked on the way in, so a name or a statement cannot slip into the audit trail.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from eri.audit import leaf, merkle, tree
from eri.db.models import LedgerEntry, LedgerHead

OPAQUE_ID = r"^[a-z]{2,12}_[A-Za-z0-9_-]{4,48}$"
CASE_ID = r"^case_[A-Za-z0-9_-]{1,56}$"  # as eri.crypto.keys.CASE_ID_PATTERN
CODE = r"^[a-z0-9][a-z0-9_.:-]{0,95}$"
INSTITUTION = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Action(StrEnum):
    CASE_OPENED = "case.opened"
    CASE_VIEWED = "case.viewed"
    CASE_CLOSED = "case.closed"
    CASE_SHREDDED = "case.shredded"
    TASK_OPENED = "task.opened"
    TASK_CLAIMED = "task.claimed"
    TASK_UNCLAIMED = "task.unclaimed"
    TASK_COMPLETED = "task.completed"
    TASK_REASSIGNED = "task.reassigned"
    TASK_CANCELLED = "task.cancelled"
    DEADLINE_MET = "deadline.met"
    DEADLINE_MISSED = "deadline.missed"
    ESCALATION = "escalation.rung"
    CONSENT_RECORDED = "consent.recorded"
    CONSENT_REVOKED = "consent.revoked"
    FACT_CHANGED = "fact.changed"
    PAYLOAD_DECODED = "payload.decoded"
    PAYLOAD_ENCODED = "payload.encoded"
    KEYS_ROTATED = "keys.rotated"
    ACCESS_DENIED = "access.denied"
    HANDOFF_CUSTODY = "handoff.custody"
    SIGNED_IN = "session.signed_in"  # the web pages: a sign-in (ok) or a refused one (denied)
    SIGNED_OUT = "session.signed_out"


class Outcome(StrEnum):
    OK = "ok"
    DENIED = "denied"
    REJECTED = "rejected"
    FAILED = "failed"


class Record(BaseModel):
    """What a caller appends. Every string is an opaque id or a code (validated)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    idempotency_key: str = Field(pattern=r"^[A-Za-z0-9_.:/-]{8,160}$")
    action: Action
    outcome: Outcome = Outcome.OK
    case_id: str | None = Field(default=None, pattern=CASE_ID)
    protocol_id: str | None = Field(default=None, pattern=CODE)
    protocol_version: str | None = Field(default=None, pattern=CODE)
    step_id: str | None = Field(default=None, pattern=CODE)
    actor_id: str | None = Field(default=None, pattern=OPAQUE_ID)
    actor_role: str | None = Field(default=None, pattern=CODE)
    actor_institution: str | None = Field(default=None, pattern=INSTITUTION)
    deadline_status: str | None = Field(default=None, pattern=r"^(on_time|late|none)$")
    detail_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    recorded_at: datetime | None = None


def detail_hash(detail: Any) -> str:
    """SHA-256 of the canonical JSON of an action's details (which live elsewhere, encrypted)."""
    canonical = json.dumps(
        detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


_COLUMNS = tuple(c.key for c in LedgerEntry.__table__.columns)


async def append(sessions: async_sessionmaker[AsyncSession], record: Record) -> LedgerEntry:
    """Append ``record`` once; the same idempotency key returns the existing entry."""
    async with sessions() as session, session.begin():
        (entry,) = await append_all(session, [record])
    return entry


async def lock(session: AsyncSession) -> int:
    """Take the ledger's write lock (its head row) in the session's transaction; the size.

    Take it before anything else in a transaction that appends: appends are serialised,
    sequences dense and ordered, and SQLite never has to upgrade a read snapshot to a write."""
    return int(
        (
            await session.execute(
                update(LedgerHead)
                .where(LedgerHead.id == 1)
                .values(size=LedgerHead.size)
                .returning(LedgerHead.size)
            )
        ).scalar_one()
    )


async def append_all(session: AsyncSession, records: list[Record]) -> list[LedgerEntry]:
    """Append each record once, in order, inside the caller's transaction; an idempotency
    key already in the ledger gives back its entry and writes nothing. The entries, their
    per-case sequences and Merkle nodes are written in a few statements, whatever the number
    of records. A transaction that writes anything else before should :func:`lock` first."""
    if not records:
        return []
    size = await lock(session)  # before reading which keys exist: no concurrent twin
    keys = [r.idempotency_key for r in records]
    found = {
        e.idempotency_key: e
        for e in (
            await session.execute(select(LedgerEntry).where(LedgerEntry.idempotency_key.in_(keys)))
        ).scalars()
    }
    fresh = [r for r in records if r.idempotency_key not in found]
    if fresh:
        case_seqs: dict[str, int] = {}
        for case_id in {r.case_id for r in fresh if r.case_id is not None}:
            last = (
                await session.execute(
                    select(LedgerEntry.case_seq)
                    .where(LedgerEntry.case_id == case_id)
                    .order_by(LedgerEntry.case_seq.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
            case_seqs[case_id] = last or 0
        now = datetime.now(UTC)
        new: list[LedgerEntry] = []
        for record in fresh:
            if record.idempotency_key in found:  # the same key twice in one batch
                continue
            case_seq = None
            if record.case_id is not None:
                case_seq = case_seqs[record.case_id] = case_seqs[record.case_id] + 1
            entry = LedgerEntry(
                seq=size + len(new),
                case_seq=case_seq,
                recorded_at=record.recorded_at or now,
                **record.model_dump(exclude={"recorded_at"}),
            )
            new.append(entry)
            found[record.idempotency_key] = entry
        # Core, not the unit of work: the rows are final, nothing in the session refers to them.
        await session.execute(
            insert(LedgerEntry), [{c: getattr(e, c) for c in _COLUMNS} for e in new]
        )
        await session.execute(
            update(LedgerHead).where(LedgerHead.id == 1).values(size=size + len(new))
        )
        # Their Merkle leaves and the nodes they complete, in the same transaction.
        await tree.add_leaves(
            session, size, [merkle.leaf_hash(leaf.encode(entry)) for entry in new]
        )
    return [found[key] for key in keys]


async def entries(
    sessions: async_sessionmaker[AsyncSession], *, case_id: str | None = None
) -> list[LedgerEntry]:
    async with sessions() as session:
        query = select(LedgerEntry).order_by(LedgerEntry.seq)
        if case_id is not None:
            query = query.where(LedgerEntry.case_id == case_id)
        return list((await session.execute(query)).scalars())
