"""Evidence attachments: ``POST /v1/cases/{case_id}/evidence`` streams a file into the case.

The body is the file itself (``Content-Type`` its media type, at most ``ERI_EVIDENCE_MAX_BYTES``);
an optional ``X-Evidence-Name`` header (a file name, may identify a person) is stored encrypted.
The answer names the evidence id and the SHA-256 computed on arrival.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api import authz, casework
from api.auth import Authenticated
from api.deps import Services, ServicesDep
from api.idempotency import Answer, run_once
from api.problems import Problem
from api.routes.cases import IdempotencyHeader
from eri.auth import Principal, Role
from eri.handoff.evidence import EvidenceStore, EvidenceTooLargeError, Uploader

router = APIRouter(prefix="/v1/cases", tags=["evidence"])

#: Who may attach evidence to a case (case participation narrows this with central authz).
UPLOAD_ROLES = frozenset({Role.RESPONDER, Role.COORDINATOR})


def may_upload(principal: Principal) -> bool:
    return principal.role in UPLOAD_ROLES


def _too_large(limit: int) -> Problem:
    mib = limit / (1024 * 1024)
    return Problem(
        413,
        "payload-too-large",
        (
            f"El archivo supera el límite de {mib:g} MiB.",
            f"The file exceeds the {mib:g} MiB limit.",
        ),
        extra={"limit_bytes": limit},
    )


@router.post(
    "/{case_id}/evidence",
    status_code=201,
    summary="Attach an evidence file to a case (streamed, hashed, encrypted)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload(
    case_id: str,
    request: Request,
    principal: Authenticated,
    services: ServicesDep,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    """A retry with the same ``Idempotency-Key`` gets the first answer and stores nothing."""
    payload = {
        "media_type": request.headers.get("content-type"),
        "length": request.headers.get("content-length"),
    }

    async def go(update_id: str) -> Answer:
        return await _upload(case_id, request, principal, services)

    return await run_once(services.sessions, principal, request, payload, go)


async def _upload(
    case_id: str, request: Request, principal: Principal, services: Services
) -> Answer:
    access = await casework.case_access(services, principal, case_id, "evidence.upload")
    if not may_upload(principal):
        raise await authz.deny(
            services.sessions, principal, what="evidence.upload", case_ids=frozenset({case_id})
        )
    if access.row.status == "shredded":
        raise Problem(410, "gone", ("Los datos de este caso fueron destruidos.", "Case shredded."))
    limit = services.settings.evidence_max_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not media_type or "/" not in media_type:
        raise Problem(
            415,
            "unsupported-media-type",
            (
                "Indique el tipo del archivo en Content-Type (p. ej. image/jpeg).",
                "Give the file's media type in Content-Type (e.g. image/jpeg).",
            ),
        )
    meta: dict[str, Any] = {}
    if name := request.headers.get("x-evidence-name"):
        meta["name"] = unquote(name)[:255]

    async def body() -> AsyncIterator[bytes]:
        async for block in request.stream():
            if block:
                yield block

    store = EvidenceStore(services.keyring, services.sessions, max_bytes=limit)
    try:
        info = await store.put(
            case_id,
            body(),
            media_type=media_type,
            uploader=Uploader(principal.actor_id, principal.role.value, principal.institution),
            meta=meta,
        )
    except EvidenceTooLargeError:
        raise _too_large(limit) from None
    except ValueError:
        raise Problem(
            415,
            "unsupported-media-type",
            ("Tipo de contenido no válido.", "Invalid media type."),
        ) from None
    return Answer(
        201,
        {
            "evidence_id": info.evidence_id,
            "case_id": case_id,
            "sha256": info.sha256,
            "size": info.size,
            "media_type": info.media_type,
            "received_at": info.received_at.isoformat(),
        },
    )
