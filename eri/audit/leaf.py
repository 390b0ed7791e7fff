"""The canonical serialisation of a ledger entry: the bytes its Merkle leaf hash is taken over.

Version ``eri-ledger/1`` is the compact JSON array (``separators=(",", ":")``, ASCII only,
``null`` for an absent value) of, in this order::

    ["eri-ledger/1", seq, recorded_at, idempotency_key, case_id, case_seq, action,
     protocol_id, protocol_version, step_id, actor_id, actor_role, actor_institution,
     outcome, deadline_status, detail_hash]

``seq`` and ``case_seq`` are integers; ``recorded_at`` is UTC with microseconds,
``YYYY-MM-DDTHH:MM:SS.ffffffZ``. Every column of ``ledger_entries`` is covered, so editing any
field of a row changes its leaf. The leaf hash is ``SHA-256(0x00 || bytes)`` (RFC 9162). A new
version gets a new tag; old leaves keep theirs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Protocol

VERSION = "eri-ledger/1"
FIELDS = (
    "seq",
    "recorded_at",
    "idempotency_key",
    "case_id",
    "case_seq",
    "action",
    "protocol_id",
    "protocol_version",
    "step_id",
    "actor_id",
    "actor_role",
    "actor_institution",
    "outcome",
    "deadline_status",
    "detail_hash",
)


class EntryLike(Protocol):
    seq: int
    recorded_at: datetime
    idempotency_key: str
    case_id: str | None
    case_seq: int | None
    action: str
    protocol_id: str | None
    protocol_version: str | None
    step_id: str | None
    actor_id: str | None
    actor_role: str | None
    actor_institution: str | None
    outcome: str
    deadline_status: str | None
    detail_hash: str | None


def timestamp(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("naive datetime in a ledger entry")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode(entry: EntryLike) -> bytes:
    values: list[Any] = [VERSION]
    for name in FIELDS:
        value = getattr(entry, name)
        values.append(timestamp(value) if name == "recorded_at" else value)
    return json.dumps(values, separators=(",", ":"), ensure_ascii=True).encode()


def decode(line: bytes | str) -> dict[str, Any]:
    """The fields of a serialised leaf (for readers of an export)."""
    values = json.loads(line)
    if not isinstance(values, list) or len(values) != len(FIELDS) + 1 or values[0] != VERSION:
        raise ValueError(f"not an {VERSION} leaf")
    return dict(zip(FIELDS, values[1:], strict=True))
