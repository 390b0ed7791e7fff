"""SQLAlchemy models. Every table is created by an Alembic migration, never by ``create_all``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: ERI stores timezone-aware UTC timestamps only")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class DataKey(Base):
    """A per-case (or system) data key, stored only wrapped by the key-encryption key."""

    __tablename__ = "data_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    kek_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    rewrapped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    shredded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LedgerHead(Base):
    """One row: the size of the ledger. Appenders lock it, so indices are dense and ordered."""

    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)


class LedgerEntry(Base):
    """An append-only, PII-free record of one case action or denied access.

    Only opaque ids and coded values: the details of an action live encrypted in the vault (or
    nowhere); the ledger keeps the SHA-256 of their canonical form.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_ledger_entries_idempotency_key"),
        UniqueConstraint("case_id", "case_seq", name="uq_ledger_entries_case_seq"),
        Index("ix_ledger_entries_recorded_at", "recorded_at"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    idempotency_key: Mapped[str] = mapped_column(String(160), nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    case_id: Mapped[str | None] = mapped_column(String(64))
    case_seq: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    protocol_id: Mapped[str | None] = mapped_column(String(32))
    protocol_version: Mapped[str | None] = mapped_column(String(32))
    step_id: Mapped[str | None] = mapped_column(String(96))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor_role: Mapped[str | None] = mapped_column(String(32))
    actor_institution: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    deadline_status: Mapped[str | None] = mapped_column(String(16))
    detail_hash: Mapped[str | None] = mapped_column(String(64))


class VaultRecord(Base):
    """Victim data: one encrypted value of one case field, versioned (never updated in place).

    The ciphertext is an AES-256-GCM envelope under the case's data key; its associated data
    binds case id, field and version, so a row copied into another case or field fails.
    """

    __tablename__ = "vault_records"
    __table_args__ = (
        UniqueConstraint("case_id", "field", "version", name="uq_vault_records_version"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    case_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    field: Mapped[str] = mapped_column(String(96), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class CaseRow(Base):
    """The read model of a case: opaque ids and codes only (the data lives in the vault)."""

    __tablename__ = "cases"

    case_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    protocol_id: Mapped[str] = mapped_column(String(32), nullable=False)
    protocol_version: Mapped[str] = mapped_column(String(32), nullable=False)
    protocol_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    country: Mapped[str] = mapped_column(String(2), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # open | closed | shredded
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_by_institution: Mapped[str] = mapped_column(String(64), nullable=False)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)


class TaskRow(Base):
    """The task projection the inbox reads: written by the case workflow's activity before an
    update returns, so it is never ahead of or behind an answered update."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_status_due", "status", "due_at"),
        Index("ix_tasks_assignee_status", "assignee", "status"),
    )

    task_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    protocol_id: Mapped[str] = mapped_column(String(32), nullable=False)
    protocol_version: Mapped[str] = mapped_column(String(32), nullable=False)
    step_id: Mapped[str] = mapped_column(String(96), nullable=False)
    occurrence: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    assignee: Mapped[str | None] = mapped_column(String(64))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deadline_missed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    rungs_fired: Mapped[int] = mapped_column(Integer, nullable=False)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)


class TaskGroup(Base):
    """A task's candidate groups (``institution:role``), one row each, for the inbox filter."""

    __tablename__ = "task_groups"
    __table_args__ = (Index("ix_task_groups_group", "group_name", "task_id"),)

    task_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(96), primary_key=True)


class User(Base):
    """A person who signs in to the embedded default's local issuer (staff, never victims)."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("name", name="uq_users_name"),)

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # usr_…
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    institution: Mapped[str] = mapped_column(String(64), nullable=False)
    groups: Mapped[str] = mapped_column(String(2048), nullable=False)  # space-separated
    password_hash: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class WebSession(Base):
    """A signed-in browser (api/web/session.py). The cookie holds a random token; only its
    SHA-256 is stored. The principal is copied at sign-in (local user or OIDC ID token)."""

    __tablename__ = "web_sessions"

    session_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(256), nullable=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    institution: Mapped[str] = mapped_column(String(64), nullable=False)
    groups: Mapped[str] = mapped_column(String(2048), nullable=False)  # space-separated
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class WebLoginLink(Base):
    """A one-time sign-in link printed by ``eri users link`` (only the token's hash)."""

    __tablename__ = "web_login_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdempotencyRecord(Base):
    """The first answer to a state-changing request, by (caller, Idempotency-Key).

    ``status`` is NULL while the first request is in flight. Answers of state-changing routes
    carry ids, codes and revisions only (no victim data), so they are stored as sent.
    """

    __tablename__ = "idempotency_records"

    actor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    etag: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    #: The API process running the first request (``host:pid:start``), so that a retry can
    #: tell that it died (api/idempotency.py); NULL for records written before 0009.
    owner: Mapped[str | None] = mapped_column(String(200))


class AuditNode(Base):
    """A perfect subtree of the ledger's RFC 9162 Merkle tree: level 0 holds the leaf hashes;
    node ``(level, index)`` covers leaves ``[index * 2**level, (index + 1) * 2**level)``.
    Written in the same transaction as the ledger entry that completes it."""

    __tablename__ = "audit_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)


class AuditCheckpoint(Base):
    """A signed checkpoint of the ledger (C2SP signed note, Ed25519 by the log key)."""

    __tablename__ = "audit_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    origin: Mapped[str] = mapped_column(String(128), nullable=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    note: Mapped[str] = mapped_column(String(4096), nullable=False)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class AuditCosignature(Base):
    """A witness's cosignature (C2SP tlog-cosignature v1) of one checkpoint."""

    __tablename__ = "audit_cosignatures"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    key_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(8), primary_key=True)
    line: Mapped[str] = mapped_column(String(512), nullable=False)
    cosigned_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Evidence(Base):
    """An evidence attachment of a case: hash on arrival, stored in encrypted chunks.

    ``meta`` (file name, description: may identify a person) is an AES-256-GCM envelope under
    the case key; everything else is opaque or coded.
    """

    __tablename__ = "evidence"

    evidence_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    media_type: Mapped[str] = mapped_column(String(128), nullable=False)
    chunk_size: Mapped[int] = mapped_column(Integer, nullable=False)
    chunks: Mapped[int] = mapped_column(Integer, nullable=False)
    meta: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    received_by: Mapped[str] = mapped_column(String(64), nullable=False)
    received_by_role: Mapped[str] = mapped_column(String(32), nullable=False)
    received_by_institution: Mapped[str] = mapped_column(String(64), nullable=False)


class EvidenceChunk(Base):
    """One encrypted chunk of an evidence file (AES-256-GCM envelope under the case key, bound
    to case, evidence id, index and whether it is the last)."""

    __tablename__ = "evidence_chunks"

    evidence_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class HandoffParty(Base):
    """A registered public key of a handoff party: a recipient key (packages are sealed to it)
    or an institution key (its signatures on packages and notices are trusted)."""

    __tablename__ = "handoff_parties"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # recipient | institution
    institution: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    public_key: Mapped[str] = mapped_column(String(8192), nullable=False)  # key file JSON
    endpoint: Mapped[str | None] = mapped_column(String(512))  # another ERI's API (cross-border)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Handoff(Base):
    """An outgoing handoff (sender side): status, the sealed package and the ack received."""

    __tablename__ = "handoffs"

    handoff_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    recipient_institution: Mapped[str] = mapped_column(String(64), nullable=False)
    recipient_key_id: Mapped[str] = mapped_column(String(64), nullable=False)
    legal_basis: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    package: Mapped[bytes | None] = mapped_column(LargeBinary)
    package_sha256: Mapped[str | None] = mapped_column(String(64))
    header_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    ack_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notice: Mapped[bytes | None] = mapped_column(LargeBinary)  # the signed ack or rejection


class HandoffInbox(Base):
    """A package received (recipient side): a prosecutor's inbox or another ERI's import."""

    __tablename__ = "handoff_inbox"

    handoff_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    recipient_institution: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    recipient_key_id: Mapped[str] = mapped_column(String(64), nullable=False)
    sender_institution: Mapped[str] = mapped_column(String(64), nullable=False)
    sender_key_id: Mapped[str] = mapped_column(String(64), nullable=False)
    package: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    package_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    header_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str | None] = mapped_column(String(64))
    reply_to: Mapped[str | None] = mapped_column(String(512))  # local workflow id or peer URL
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    downloaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    local_case_id: Mapped[str | None] = mapped_column(String(64))  # cross-border import
    notice: Mapped[bytes | None] = mapped_column(LargeBinary)
