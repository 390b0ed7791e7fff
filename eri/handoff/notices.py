"""Signed notices about a package: the recipient's acknowledgement (or rejection) and the
sender's recall. A notice file is JSON ``{"statement": {...}, "signature": {...}}``; the
signature (Ed25519 + ML-DSA-65) covers the canonical JSON of the statement, and the statement
names the package by id and by the SHA-256 of its signed header, so a notice applies to exactly
one package.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from eri.handoff.keys import (
    InstitutionPrivateKey,
    InstitutionPublicKey,
    KeyFormatError,
    Signature,
    key_from_json,
)
from eri.handoff.package import Verified, canonical_json

ACK_FORMAT: Final = "eri-handoff-ack"
RECALL_FORMAT: Final = "eri-handoff-recall"
NOTICE_VERSION: Final = 1
ACK_CONTEXT: Final = b"eri-handoff/v1 ack"
RECALL_CONTEXT: Final = b"eri-handoff/v1 recall"
REASON: Final = re.compile(r"[a-z][a-z0-9_]{1,63}")
AckStatus = Literal["acknowledged", "rejected"]


class NoticeError(Exception):
    """A notice that must not be believed; the message says why (never any content)."""


@dataclass(frozen=True)
class Notice:
    kind: Literal["ack", "recall"]
    package_id: str
    header_sha256: str
    status: str  # acknowledged | rejected | recalled
    reason: str | None
    at: datetime
    institution: str
    signer_key_id: str
    raw: bytes


def _sign(
    fmt: str,
    context: bytes,
    package: Verified,
    status: str,
    reason: str | None,
    institution: str,
    key: InstitutionPrivateKey,
    at: datetime | None,
) -> bytes:
    if reason is not None and REASON.fullmatch(reason) is None:
        raise ValueError("reason must be a code: lowercase letters, digits and _")
    statement = {
        "format": fmt,
        "version": NOTICE_VERSION,
        "package_id": package.package_id,
        "header_sha256": package.header_sha256,
        "status": status,
        "reason": reason,
        "at": (at or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "signer": {
            "institution": institution,
            "key_id": key.key_id,
            "public_key": key.public().to_json(),
        },
    }
    signature = key.sign(canonical_json(statement), context)
    return json.dumps({"statement": statement, "signature": signature.to_json()}, indent=2).encode()


def make_ack(
    package: Verified,
    key: InstitutionPrivateKey,
    institution: str,
    *,
    status: AckStatus = "acknowledged",
    reason: str | None = None,
    at: datetime | None = None,
) -> bytes:
    """The recipient's signed acknowledgement (or rejection, with a reason code)."""
    if status == "rejected" and reason is None:
        raise ValueError("a rejection needs a reason code")
    return _sign(ACK_FORMAT, ACK_CONTEXT, package, status, reason, institution, key, at)


def make_recall(
    package: Verified,
    key: InstitutionPrivateKey,
    institution: str,
    *,
    reason: str = "recalled_by_sender",
    at: datetime | None = None,
) -> bytes:
    """The sender's signed recall of a package not yet opened."""
    return _sign(RECALL_FORMAT, RECALL_CONTEXT, package, "recalled", reason, institution, key, at)


def verify_notice(
    raw: bytes,
    trusted: Iterable[InstitutionPublicKey],
    *,
    package_id: str | None = None,
    header_sha256: str | None = None,
) -> Notice:
    """Verify a notice against the trusted keys (and the package it must be about)."""
    try:
        doc = json.loads(raw)
        statement, sig = doc["statement"], Signature.from_json(doc["signature"])
        if not isinstance(statement, dict):
            raise ValueError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, KeyFormatError):
        raise NoticeError("not a signed ERI handoff notice") from None
    fmt = statement.get("format")
    if fmt == ACK_FORMAT:
        kind: Literal["ack", "recall"] = "ack"
        context = ACK_CONTEXT
        allowed = {"acknowledged", "rejected"}
    elif fmt == RECALL_FORMAT:
        kind, context, allowed = "recall", RECALL_CONTEXT, {"recalled"}
    else:
        raise NoticeError("unknown notice format")
    known = {k.key_id: k for k in trusted}
    signer = known.get(sig.key_id)
    if signer is None:
        raise NoticeError(f"signed by {sig.key_id}, which is not a trusted key")
    if not signer.verify(sig, canonical_json(statement), context):
        raise NoticeError("the notice's signature does not verify")
    if statement.get("version") != NOTICE_VERSION or statement.get("status") not in allowed:
        raise NoticeError("unsupported notice version or status")
    if package_id is not None and statement.get("package_id") != package_id:
        raise NoticeError("the notice is about another package")
    if header_sha256 is not None and statement.get("header_sha256") != header_sha256:
        raise NoticeError("the notice is about another version of the package")
    signer_info: Any = statement.get("signer")
    try:
        embedded = key_from_json(signer_info.get("public_key"))
        at = datetime.fromisoformat(str(statement["at"]).replace("Z", "+00:00"))
    except (AttributeError, KeyFormatError, ValueError, KeyError):
        raise NoticeError("the notice is malformed") from None
    if embedded != signer:
        raise NoticeError("the notice's embedded key differs from its signer")
    reason = statement.get("reason")
    return Notice(
        kind=kind,
        package_id=str(statement.get("package_id")),
        header_sha256=str(statement.get("header_sha256")),
        status=str(statement["status"]),
        reason=reason if isinstance(reason, str) else None,
        at=at,
        institution=str(signer_info.get("institution")),
        signer_key_id=sig.key_id,
        raw=bytes(raw),
    )
