"""Handoff operations on ERI's database, shared by the activities and the API routes.

Sender side: the registry of parties (recipient keys to seal to, institution keys whose
signatures are trusted, another ERI's endpoint), assembling and sealing a case's package,
local delivery into the inbox, recording answers and recalls. Recipient side: receiving a
package into the inbox, download, acknowledgement or rejection, recall. Every custody event is
one ledger entry (``handoff.custody``, step ``handoff.<event>``), idempotent per handoff.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from eri import ledger
from eri.crypto.keys import Keyring
from eri.db.models import Handoff, HandoffInbox, HandoffParty, LedgerEntry
from eri.handoff.evidence import EvidenceStore
from eri.handoff.keys import (
    InstitutionPrivateKey,
    InstitutionPublicKey,
    RecipientPublicKey,
    key_from_json,
)
from eri.handoff.notices import Notice
from eri.handoff.package import (
    CaseRef,
    LegalBasis,
    Part,
    Verified,
    json_part,
    seal_package,
    verify_package,
)
from eri.ledger import Action, Outcome, Record
from eri.vault import Vault

CUSTODY_EVENTS: Final = (
    "created",
    "refused",
    "sealed",
    "delivered",
    "downloaded",
    "opened",
    "acknowledged",
    "rejected",
    "recalled",
    "ack_overdue",
    "received",
    "imported",
)


class HandoffError(Exception):
    """A handoff operation refused; ``code`` is stable, ``message`` is (es, en)."""

    def __init__(self, code: str, message: tuple[str, str], status: int = 409) -> None:
        super().__init__(code)
        self.code = code
        self.message = message
        self.status = status


def pseudonym(case_id: str, institution: str) -> str:
    """The case's pseudonym for one recipient institution (docs/handoff-format.md)."""
    digest = hashlib.sha256(
        b"eri-handoff pseudonym\x00" + case_id.encode() + b"\x00" + institution.encode()
    ).hexdigest()
    return "psn_" + digest[:32]


def now() -> datetime:
    return datetime.now(UTC)


# --- the registry ------------------------------------------------------------------------------


async def register_party(
    sessions: async_sessionmaker[AsyncSession],
    key: RecipientPublicKey | InstitutionPublicKey,
    institution: str,
    *,
    endpoint: str | None = None,
) -> str:
    kind = "recipient" if isinstance(key, RecipientPublicKey) else "institution"
    async with sessions.begin() as session:
        if await session.get(HandoffParty, key.key_id) is None:
            session.add(
                HandoffParty(
                    key_id=key.key_id,
                    kind=kind,
                    institution=institution,
                    public_key=json.dumps(key.to_json()),
                    endpoint=endpoint,
                    registered_at=now(),
                )
            )
    return key.key_id


@dataclass(frozen=True)
class Recipient:
    institution: str
    key: RecipientPublicKey
    endpoint: str | None


async def recipient(sessions: async_sessionmaker[AsyncSession], institution: str) -> Recipient:
    """The newest registered recipient key of an institution."""
    async with sessions() as session:
        row = (
            await session.execute(
                select(HandoffParty)
                .where(
                    HandoffParty.institution == institution,
                    HandoffParty.kind == "recipient",
                    HandoffParty.revoked_at.is_(None),
                )
                .order_by(HandoffParty.registered_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
    if row is None:
        raise HandoffError(
            "recipient_unknown",
            (
                f"La institución {institution} no tiene una clave de destinatario registrada.",
                f"Institution {institution} has no registered recipient key.",
            ),
            status=422,
        )
    key = key_from_json(json.loads(row.public_key))
    assert isinstance(key, RecipientPublicKey)
    return Recipient(institution, key, row.endpoint)


async def trusted_keys(
    sessions: async_sessionmaker[AsyncSession], institution: str | None = None
) -> list[InstitutionPublicKey]:
    async with sessions() as session:
        query = select(HandoffParty).where(
            HandoffParty.kind == "institution", HandoffParty.revoked_at.is_(None)
        )
        if institution is not None:
            query = query.where(HandoffParty.institution == institution)
        rows = (await session.execute(query)).scalars().all()
    keys = [key_from_json(json.loads(r.public_key)) for r in rows]
    return [k for k in keys if isinstance(k, InstitutionPublicKey)]


async def peer_endpoint(sessions: async_sessionmaker[AsyncSession], institution: str) -> str | None:
    async with sessions() as session:
        return (
            await session.execute(
                select(HandoffParty.endpoint)
                .where(
                    HandoffParty.institution == institution,
                    HandoffParty.endpoint.is_not(None),
                    HandoffParty.revoked_at.is_(None),
                )
                .limit(1)
            )
        ).scalar_one_or_none()


# --- custody -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Who:
    actor_id: str | None = None
    role: str | None = None
    institution: str | None = None


async def custody(
    sessions: async_sessionmaker[AsyncSession],
    handoff_id: str,
    event: str,
    *,
    case_id: str | None,
    who: Who | None = None,
    outcome: Outcome = Outcome.OK,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
    key_suffix: str = "",
) -> LedgerEntry:
    """One custody event in the ledger; the same (handoff, event, suffix) is written once."""
    base = event.split(":")[0]
    if base not in CUSTODY_EVENTS:
        raise ValueError(f"unknown custody event {event}")
    who = who or Who()
    return await ledger.append(
        sessions,
        Record(
            idempotency_key=f"{handoff_id}:{event}{key_suffix}",
            action=Action.HANDOFF_CUSTODY,
            outcome=outcome,
            case_id=case_id,
            step_id=f"handoff.{event}",
            actor_id=who.actor_id,
            actor_role=who.role,
            actor_institution=who.institution,
            detail_hash=ledger.detail_hash(
                {"handoff_id": handoff_id, "event": event, **(detail or {})}
            ),
            recorded_at=at,
        ),
    )


# --- assembling and sealing --------------------------------------------------------------------


@dataclass(frozen=True)
class Contents:
    facts: dict[str, Any]
    statements: list[str]  # vault fields the victim consented to share
    evidence_ids: list[str] | None  # None: every attachment of the case


def _timeline(entries: Sequence[LedgerEntry]) -> list[dict[str, Any]]:
    return [
        {
            "seq": e.case_seq,
            "at": e.recorded_at.isoformat(),
            "action": e.action,
            "step_id": e.step_id,
            "outcome": e.outcome,
            "actor_role": e.actor_role,
            "actor_institution": e.actor_institution,
            "deadline_status": e.deadline_status,
        }
        for e in entries
    ]


async def assemble_parts(
    keyring: Keyring,
    sessions: async_sessionmaker[AsyncSession],
    evidence: EvidenceStore,
    case_id: str,
    handoff_id: str,
    contents: Contents,
) -> list[Part]:
    vault = Vault(keyring, sessions)
    statements: dict[str, Any] = {}
    for field in contents.statements:
        try:
            statements[field] = await vault.get(case_id, field)
        except KeyError:
            raise HandoffError(
                "statement_missing",
                (f"El caso no tiene el campo {field}.", f"The case has no field {field}."),
                status=422,
            ) from None
    parts = [
        json_part("facts", contents.facts),
        json_part("statements", statements),
        json_part("timeline", _timeline(await ledger.entries(sessions, case_id=case_id))),
    ]
    infos = await evidence.list(case_id)
    if contents.evidence_ids is not None:
        wanted = set(contents.evidence_ids)
        infos = [i for i in infos if i.evidence_id in wanted]
        if len(infos) != len(wanted):
            raise HandoffError(
                "evidence_missing",
                ("Falta evidencia en el caso.", "Evidence is missing from the case."),
                status=422,
            )
    custody_log: list[dict[str, Any]] = []
    files: list[Part] = []
    for info in infos:
        _, data = await evidence.read(info.evidence_id)  # checked against the arrival hash
        entry = info.custody()
        entry["events"].append({"event": "included", "package_id": handoff_id})
        custody_log.append(entry)
        files.append(Part(f"evidence/{info.evidence_id}", data, info.media_type))
    return [*parts, json_part("custody", custody_log), *files]


async def seal_handoff(
    sessions: async_sessionmaker[AsyncSession],
    handoff_id: str,
    parts: list[Part],
    case: CaseRef,
    sender_institution: str,
    sender_key: InstitutionPrivateKey,
) -> Verified:
    async with sessions() as session:
        row = await session.get(Handoff, handoff_id)
    assert row is not None
    to = await recipient(sessions, row.recipient_institution)
    package = seal_package(
        parts=parts,
        case=case,
        purpose=row.purpose,
        legal_basis=LegalBasis(row.legal_basis),
        sender_institution=sender_institution,
        sender_key=sender_key,
        recipient=to.key,
        recipient_institution=row.recipient_institution,
        package_id=handoff_id,
    )
    verified = verify_package(package, [sender_key.public()])
    async with sessions.begin() as session:
        row = await session.get(Handoff, handoff_id)
        assert row is not None
        if row.package is None:
            row.package = package
            row.package_sha256 = verified.package_sha256
            row.header_sha256 = verified.header_sha256
            row.status = "sealed"
        else:  # a retried activity: keep the first package
            verified = verify_package(row.package, [sender_key.public()])
    return verified


# --- recipient side ----------------------------------------------------------------------------


async def receive(
    sessions: async_sessionmaker[AsyncSession],
    package: bytes,
    trusted: list[InstitutionPublicKey],
    *,
    recipient_institution: str,
    reply_to: str | None,
) -> HandoffInbox:
    """Verify a package (signature by a trusted sender, every section) and put it in the
    inbox. Idempotent per package id; a different package under a known id is refused."""
    verified = verify_package(package, trusted)
    async with sessions.begin() as session:
        existing = await session.get(HandoffInbox, verified.package_id)
        if existing is not None:
            if existing.package_sha256 != verified.package_sha256:
                raise HandoffError(
                    "package_conflict",
                    (
                        "Ya se recibió otro paquete con ese identificador.",
                        "Another package with that id was already received.",
                    ),
                )
            session.expunge(existing)
            return existing
        row = HandoffInbox(
            handoff_id=verified.package_id,
            recipient_institution=recipient_institution,
            recipient_key_id=verified.recipient_key_id,
            sender_institution=verified.sender_institution,
            sender_key_id=verified.sender_key.key_id,
            package=package,
            package_sha256=verified.package_sha256,
            header_sha256=verified.header_sha256,
            status="delivered",
            reply_to=reply_to,
            received_at=now(),
        )
        session.add(row)
    return row


async def inbox_row(sessions: async_sessionmaker[AsyncSession], handoff_id: str) -> HandoffInbox:
    async with sessions() as session:
        row = await session.get(HandoffInbox, handoff_id)
    if row is None:
        raise HandoffError("not_found", ("No existe esa entrega.", "No such handoff."), 404)
    return row


async def mark_inbox(
    sessions: async_sessionmaker[AsyncSession], handoff_id: str, **values: Any
) -> HandoffInbox:
    async with sessions.begin() as session:
        row = await session.get(HandoffInbox, handoff_id)
        if row is None:
            raise HandoffError("not_found", ("No existe esa entrega.", "No such handoff."), 404)
        for key, value in values.items():
            setattr(row, key, value)
    return row


async def record_answer(sessions: async_sessionmaker[AsyncSession], notice: Notice) -> Handoff:
    """Sender side: store a verified ack or rejection on the handoff (first answer wins)."""
    async with sessions.begin() as session:
        row = await session.get(Handoff, notice.package_id)
        if row is None:
            raise HandoffError("not_found", ("No existe esa entrega.", "No such handoff."), 404)
        if row.header_sha256 != notice.header_sha256:
            raise HandoffError(
                "notice_mismatch",
                ("El acuse no corresponde al paquete.", "The notice is not about this package."),
                422,
            )
        if row.status == "recalled":
            raise HandoffError(
                "recalled", ("La entrega fue retirada.", "The handoff was recalled."), 409
            )
        if row.notice is None:
            row.notice = notice.raw
            row.status = notice.status
            row.answered_at = notice.at
    await custody(
        sessions,
        notice.package_id,
        notice.status,
        case_id=row.case_id,
        who=Who(role="recipient", institution=notice.institution),
        outcome=Outcome.OK if notice.status == "acknowledged" else Outcome.REJECTED,
        detail={"reason": notice.reason, "signer": notice.signer_key_id},
    )
    return row
