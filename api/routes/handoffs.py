"""Handoffs: start, recall; the recipient's inbox (list, download, acknowledge, reject, import);
and the deployment-to-deployment endpoints (inbound packages, recalls, notices).

Who may do what is decided in :func:`allowed` (one place; denials via :func:`api.authz.deny`).
A prosecutor sees only packages addressed to their own institution. The peer endpoints carry no
bearer token: a package, recall or notice is accepted only if it is signed by a registered key
of the institution it claims to come from.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from api import authz, casework
from api.auth import Authenticated
from api.deps import Services, ServicesDep
from api.idempotency import Answer, run_once
from api.problems import Problem
from api.routes.cases import IdempotencyHeader
from eri.auth import Principal, Role
from eri.db.models import Handoff, HandoffInbox
from eri.handoff import service
from eri.handoff.evidence import EvidenceStore, Uploader
from eri.handoff.keys import institution_key_from_settings, recipient_key_from_settings
from eri.handoff.notices import Notice, NoticeError, make_ack, verify_notice
from eri.handoff.package import PackageError, open_package, verify_package
from eri.handoff.policy import CROSS_BORDER_FACTS, decide
from eri.handoff.service import HandoffError, Who
from eri.ledger import Outcome
from workflows.handoff import Answer as Answered
from workflows.handoff import (
    HandoffRequest,
    HandoffWorkflow,
    Requester,
    handoff_workflow_id,
)

router = APIRouter(tags=["handoffs"])
MAX_PACKAGE = 512 * 1024 * 1024
MAX_NOTICE = 64 * 1024
PACKAGE_TYPE = "application/vnd.eri.handoff"

Permission = Literal["start", "recall", "inbox", "import"]
_ROLES: dict[Permission, frozenset[Role]] = {
    "start": frozenset({Role.COORDINATOR, Role.RESPONDER}),
    "recall": frozenset({Role.COORDINATOR}),
    # a prosecutor's office reads its inbox; a coordinator receives from another country's ERI
    "inbox": frozenset({Role.PROSECUTOR, Role.COORDINATOR}),
    "import": frozenset({Role.COORDINATOR}),
}


def allowed(
    principal: Principal, permission: Permission, *, institution: str | None = None
) -> bool:
    """The role check of every handoff route; ``institution``: the inbox row's recipient."""
    if principal.role not in _ROLES[permission]:
        return False
    return institution is None or institution.lower() == principal.institution_code


def _problem(exc: HandoffError) -> Problem:
    types = {404: "not-found", 409: "conflict", 410: "gone", 422: "validation-error"}
    return Problem(
        exc.status, types.get(exc.status, "bad-request"), exc.message, {"code": exc.code}
    )


def _who(principal: Principal) -> Who:
    return Who(principal.actor_id, principal.role.value, principal.institution)


async def _body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise Problem(413, "payload-too-large", ("Demasiado grande.", "Too large."))
    data = bytearray()
    async for block in request.stream():
        data += block
        if len(data) > limit:
            raise Problem(413, "payload-too-large", ("Demasiado grande.", "Too large."))
    return bytes(data)


# --- sender side -------------------------------------------------------------------------------


class StartHandoff(BaseModel):
    recipient_institution: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    purpose: Literal["prosecution", "cross_border"]
    legal_basis: str = Field(default="consent", pattern=r"^[a-z][a-z0-9_]{1,63}$")
    reference: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,95}$")
    statements: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.:-]{0,95}$")]] = []
    evidence_ids: list[str] | None = None
    ack_within_hours: int = Field(default=72, ge=1, le=24 * 90)


def _handoff_id(update_id: str) -> str:
    """The handoff id of a request: derived from its idempotency key, so a retry after a crash
    finds the same workflow."""
    return "hnd_" + hashlib.sha256(update_id.encode()).hexdigest()[:24]


@router.post("/v1/cases/{case_id}/handoffs", status_code=202, summary="Hand a case off")
async def start(
    case_id: str,
    body: StartHandoff,
    request: Request,
    principal: Authenticated,
    services: ServicesDep,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    async def go(update_id: str) -> Answer:
        return await _start(case_id, body, principal, services, update_id)

    return await run_once(services.sessions, principal, request, body.model_dump(mode="json"), go)


async def _start(
    case_id: str, body: StartHandoff, principal: Principal, services: Services, update_id: str
) -> Answer:
    await casework.case_access(services, principal, case_id, "handoff.start")
    if not allowed(principal, "start"):
        raise await authz.deny(
            services.sessions, principal, what="handoff.start", case_ids=frozenset({case_id})
        )
    handoff_id = _handoff_id(update_id)
    # Pre-flight consent check for a clear, immediate answer; the workflow checks again.
    state = await casework.case_state(services, case_id)
    decision = decide(state.protocol_id, state.facts, body.legal_basis, body.reference)
    if not decision.allowed:
        await service.custody(
            services.sessions,
            handoff_id,
            f"refused:{decision.reason}",
            case_id=case_id,
            who=_who(principal),
            outcome=Outcome.REJECTED,
            detail={"basis": decision.basis, "recipient": body.recipient_institution},
        )
        assert decision.message is not None
        raise Problem(
            422,
            "validation-error",
            decision.message,
            {"code": decision.reason, "basis": decision.basis},
        )
    try:
        await service.recipient(services.sessions, body.recipient_institution)
    except HandoffError as exc:
        raise _problem(exc) from None
    start_request = HandoffRequest(
        handoff_id=handoff_id,
        case_id=case_id,
        requested_by=Requester(
            actor_id=principal.actor_id,
            role=principal.role.value,
            institution=principal.institution,
        ),
        **body.model_dump(),
    )
    client = await services.temporal_client()
    await client.start_workflow(
        HandoffWorkflow.run,
        start_request,
        id=handoff_workflow_id(case_id, handoff_id),
        task_queue=services.settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return Answer(202, {"handoff_id": handoff_id, "case_id": case_id, "basis": decision.basis})


@router.get("/v1/cases/{case_id}/handoffs/{handoff_id}", summary="A handoff's status")
async def status(
    case_id: str, handoff_id: str, principal: Authenticated, services: ServicesDep
) -> JSONResponse:
    await casework.case_access(services, principal, case_id, "handoff.status")
    async with services.sessions() as session:
        row = await session.get(Handoff, handoff_id)
    if row is None or row.case_id != case_id:
        raise Problem(404, "not-found", ("No existe esa entrega.", "No such handoff."))
    return JSONResponse(
        {
            "handoff_id": row.handoff_id,
            "status": row.status,
            "recipient_institution": row.recipient_institution,
            "legal_basis": row.legal_basis,
            "package_sha256": row.package_sha256,
            "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None,
            "answered_at": row.answered_at.isoformat() if row.answered_at else None,
        }
    )


@router.post("/v1/cases/{case_id}/handoffs/{handoff_id}/recall", summary="Recall a package")
async def recall(
    case_id: str,
    handoff_id: str,
    request: Request,
    principal: Authenticated,
    services: ServicesDep,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    async def go(update_id: str) -> Answer:
        return await _recall(case_id, handoff_id, principal, services, update_id)

    return await run_once(services.sessions, principal, request, {}, go)


async def _recall(
    case_id: str, handoff_id: str, principal: Principal, services: Services, update_id: str
) -> Answer:
    await casework.case_access(services, principal, case_id, "handoff.recall")
    if not allowed(principal, "recall"):
        raise await authz.deny(
            services.sessions, principal, what="handoff.recall", case_ids=frozenset({case_id})
        )
    async with services.sessions() as session:
        row = await session.get(Handoff, handoff_id)
    if row is None or row.case_id != case_id:
        raise Problem(404, "not-found", ("No existe esa entrega.", "No such handoff."))
    if row.status not in ("created", "sealed", "delivered"):
        raise Problem(
            409,
            "conflict",
            (
                "No se puede retirar: el paquete ya fue abierto, respondido o retirado.",
                "Cannot recall: the package was already opened, answered or recalled.",
            ),
            {"code": "not_recallable", "status": row.status},
        )
    client = await services.temporal_client()
    handle = client.get_workflow_handle(handoff_workflow_id(case_id, handoff_id))
    by = Requester(
        actor_id=principal.actor_id, role=principal.role.value, institution=principal.institution
    )
    try:
        await handle.execute_update(HandoffWorkflow.recall, by, id=update_id)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        code = cause.message if isinstance(cause, ApplicationError) else "recall_failed"
        raise Problem(
            409,
            "conflict",
            (
                "No se puede retirar: el paquete ya fue abierto o respondido.",
                "Cannot recall: the package was already opened or answered.",
            ),
            {"code": code},
        ) from None
    except RPCError:
        raise Problem(404, "not-found", ("No existe esa entrega.", "No such handoff.")) from None
    return Answer(200, {"handoff_id": handoff_id, "status": "recalled"})


async def _answer_sender(services: Services, notice: Notice) -> None:
    """Sender side: record a verified answer and tell the waiting workflow."""
    try:
        row = await service.record_answer(services.sessions, notice)
    except HandoffError as exc:
        raise _problem(exc) from None
    client = await services.temporal_client()
    handle = client.get_workflow_handle(handoff_workflow_id(row.case_id, row.handoff_id))
    status: Literal["acknowledged", "rejected"] = (
        "acknowledged" if notice.status == "acknowledged" else "rejected"
    )
    await handle.signal(
        HandoffWorkflow.answered, Answered(status=status, at=notice.at, reason=notice.reason)
    )


@router.post("/v1/handoffs/{handoff_id}/notices", status_code=202, summary="Peer: an answer")
async def peer_notice(handoff_id: str, request: Request, services: ServicesDep) -> JSONResponse:
    """Another ERI's signed ack or rejection of a package we sent."""
    raw = await _body(request, MAX_NOTICE)
    async with services.sessions() as session:
        row = await session.get(Handoff, handoff_id)
    if row is None:
        raise Problem(404, "not-found", ("No existe esa entrega.", "No such handoff."))
    trusted = await service.trusted_keys(services.sessions, row.recipient_institution)
    try:
        notice = verify_notice(raw, trusted, package_id=handoff_id, header_sha256=row.header_sha256)
    except NoticeError:
        raise Problem(
            422,
            "validation-error",
            ("El acuse no es válido.", "The notice does not verify."),
            {"code": "bad_notice"},
        ) from None
    if notice.kind != "ack":
        raise Problem(422, "validation-error", ("Se espera un acuse.", "Expected an ack."))
    await _answer_sender(services, notice)
    return JSONResponse({"handoff_id": handoff_id, "status": notice.status}, status_code=202)


# --- recipient side: the inbox -------------------------------------------------------------


def inbox_view(row: HandoffInbox) -> dict[str, Any]:
    return {
        "handoff_id": row.handoff_id,
        "status": row.status,
        "sender_institution": row.sender_institution,
        "sender_key_id": row.sender_key_id,
        "recipient_key_id": row.recipient_key_id,
        "package_sha256": row.package_sha256,
        "size": len(row.package),
        "received_at": row.received_at.isoformat(),
        "reason": row.reason,
        "local_case_id": row.local_case_id,
    }


async def inbox_entry(services: Services, principal: Principal, handoff_id: str) -> HandoffInbox:
    try:
        row = await service.inbox_row(services.sessions, handoff_id)
    except HandoffError:
        row = None
    if row is None or not allowed(principal, "inbox", institution=row.recipient_institution):
        # Not addressed to this institution: it does not exist for them.
        raise await authz.deny(services.sessions, principal, what="handoff.inbox", status=404)
    return row


async def _sender_case(services: Services, handoff_id: str) -> str | None:
    async with services.sessions() as session:
        row = await session.get(Handoff, handoff_id)
    return row.case_id if row is not None else None


async def inbox_items(services: Services, principal: Principal) -> list[dict[str, Any]]:
    """The packages addressed to the principal's institution, newest first (the JSON inbox
    and the prosecutor's page)."""
    if not allowed(principal, "inbox"):
        raise await authz.deny(services.sessions, principal, what="handoff.inbox")
    async with services.sessions() as session:
        rows = (
            await session.execute(
                select(HandoffInbox)
                .where(func.lower(HandoffInbox.recipient_institution) == principal.institution_code)
                .order_by(HandoffInbox.received_at.desc())
            )
        ).scalars()
        return [inbox_view(r) for r in rows]


@router.get("/v1/handoffs/inbox", summary="Packages handed to my institution")
async def inbox(principal: Authenticated, services: ServicesDep) -> JSONResponse:
    return JSONResponse({"items": await inbox_items(services, principal)})


@router.get("/v1/handoffs/inbox/{handoff_id}/package", summary="Download a package")
async def download(handoff_id: str, principal: Authenticated, services: ServicesDep) -> Response:
    row = await inbox_entry(services, principal, handoff_id)
    if row.status == "recalled":
        raise Problem(
            410, "gone", ("El remitente retiró este paquete.", "The sender recalled this package.")
        )
    if row.status == "delivered":
        await service.mark_inbox(
            services.sessions, handoff_id, status="downloaded", downloaded_at=service.now()
        )
    await service.custody(
        services.sessions,
        handoff_id,
        "downloaded",
        case_id=await _sender_case(services, handoff_id) or row.local_case_id,
        who=_who(principal),
        key_suffix=":" + uuid.uuid4().hex[:12],
    )
    return Response(
        row.package,
        media_type=PACKAGE_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{handoff_id}.erih"',
            "Digest": f"sha-256={row.package_sha256}",
            "Cache-Control": "no-store",
        },
    )


def _answerable(row: HandoffInbox) -> None:
    if row.status == "recalled":
        raise Problem(410, "gone", ("El remitente retiró este paquete.", "The sender recalled it."))
    if row.status in ("acknowledged", "rejected"):
        raise Problem(
            409, "conflict", ("Ya fue respondido.", "Already answered."), {"status": row.status}
        )


@router.post("/v1/handoffs/inbox/{handoff_id}/ack", summary="Acknowledge (signed)")
async def acknowledge(
    handoff_id: str,
    request: Request,
    principal: Authenticated,
    services: ServicesDep,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    """Body: the notice written by ``eri handoff ack`` (acknowledgement or rejection), signed
    by a registered key of the principal's institution."""
    raw = await _body(request, MAX_NOTICE)

    async def go(update_id: str) -> Answer:
        return await acknowledge_notice(handoff_id, raw, principal, services)

    payload = {"notice_sha256": hashlib.sha256(raw).hexdigest()}
    return await run_once(services.sessions, principal, request, payload, go)


async def acknowledge_notice(
    handoff_id: str, raw: bytes, principal: Principal, services: Services
) -> Answer:
    row = await inbox_entry(services, principal, handoff_id)
    _answerable(row)
    trusted = await service.trusted_keys(services.sessions, principal.institution)
    try:
        notice = verify_notice(raw, trusted, package_id=handoff_id, header_sha256=row.header_sha256)
    except NoticeError:
        raise Problem(
            422,
            "validation-error",
            (
                "El acuse no es válido: debe estar firmado con una clave registrada de su "
                "institución y referirse a este paquete.",
                "The acknowledgement does not verify: it must be signed by a registered key of "
                "your institution and be about this package.",
            ),
            {"code": "bad_notice"},
        ) from None
    if notice.kind != "ack" or notice.institution.lower() != principal.institution_code:
        raise Problem(422, "validation-error", ("Acuse inválido.", "Invalid acknowledgement."))
    await _finish_inbox(services, row, notice, principal)
    return Answer(200, {"handoff_id": handoff_id, "status": notice.status})


class Rejection(BaseModel):
    reason: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")


@router.post("/v1/handoffs/inbox/{handoff_id}/reject", summary="Reject with a reason")
async def reject(
    handoff_id: str,
    body: Annotated[Rejection, Body()],
    request: Request,
    principal: Authenticated,
    services: ServicesDep,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    """Reject a package (reason code). Signed by this deployment's institution key on the
    recipient's behalf; the bearer token says who decided."""

    async def go(update_id: str) -> Answer:
        return await reject_package(handoff_id, body, principal, services)

    return await run_once(services.sessions, principal, request, body.model_dump(), go)


async def reject_package(
    handoff_id: str, body: Rejection, principal: Principal, services: Services
) -> Answer:
    row = await inbox_entry(services, principal, handoff_id)
    _answerable(row)
    verified = verify_package(row.package)
    raw = make_ack(
        verified,
        institution_key_from_settings(services.settings),
        principal.institution,
        status="rejected",
        reason=body.reason,
    )
    notice = Notice(
        "ack",
        handoff_id,
        row.header_sha256,
        "rejected",
        body.reason,
        service.now(),
        principal.institution,
        "deployment",
        raw,
    )
    await _finish_inbox(services, row, notice, principal)
    return Answer(200, {"handoff_id": handoff_id, "status": "rejected", "reason": body.reason})


async def _finish_inbox(
    services: Services, row: HandoffInbox, notice: Notice, principal: Principal
) -> None:
    await service.mark_inbox(
        services.sessions,
        row.handoff_id,
        status=notice.status,
        reason=notice.reason,
        notice=notice.raw,
        answered_at=service.now(),
    )
    sender_case = await _sender_case(services, row.handoff_id)
    if sender_case is not None:  # sent by this deployment: answer the workflow directly
        await _answer_sender(services, notice)
        return
    await service.custody(
        services.sessions,
        row.handoff_id,
        notice.status,
        case_id=row.local_case_id,
        who=_who(principal),
        outcome=Outcome.OK if notice.status == "acknowledged" else Outcome.REJECTED,
    )
    await _send_to_peer(services, row, notice.raw)


async def _send_to_peer(services: Services, row: HandoffInbox, raw: bytes) -> None:
    endpoint = await service.peer_endpoint(services.sessions, row.sender_institution)
    if endpoint is None:
        return
    async with httpx.AsyncClient(transport=services.peer_transport, timeout=30.0) as client:
        response = await client.post(
            endpoint.rstrip("/") + f"/v1/handoffs/{row.handoff_id}/notices",
            content=raw,
            headers={"Content-Type": "application/json"},
        )
    if response.status_code >= 300:
        raise Problem(
            502 if response.status_code >= 500 else 409,
            "conflict",
            ("El remitente no aceptó el acuse.", "The sender did not accept the notice."),
            {"peer_status": response.status_code},
        )


# --- another ERI deployment: inbound packages, recalls, import -------------------------------


@router.post("/v1/handoffs/inbound", status_code=202, summary="Peer: deliver a package")
async def inbound(request: Request, services: ServicesDep) -> JSONResponse:
    data = await _body(request, MAX_PACKAGE)
    own = recipient_key_from_settings(services.settings)
    trusted = await service.trusted_keys(services.sessions)
    try:
        verified = verify_package(data, trusted)
    except PackageError as exc:
        raise Problem(
            422,
            "validation-error",
            (f"Paquete rechazado: {exc.part} ({exc.code}).", f"Package refused: {exc}"),
            {"code": exc.code, "part": exc.part},
        ) from None
    if verified.recipient_key_id != own.key_id:
        raise Problem(
            422,
            "validation-error",
            ("El paquete es para otro destinatario.", "The package is for another recipient."),
            {"code": "wrong_recipient"},
        )
    if await service.peer_endpoint(services.sessions, verified.sender_institution) is None:
        raise Problem(
            422,
            "validation-error",
            ("El remitente no es un ERI registrado.", "The sender is not a registered ERI."),
            {"code": "unknown_peer"},
        )
    try:
        row = await service.receive(
            services.sessions,
            data,
            trusted,
            recipient_institution=services.settings.institution,
            reply_to=None,
        )
    except HandoffError as exc:
        raise _problem(exc) from None
    await service.custody(
        services.sessions,
        row.handoff_id,
        "received",
        case_id=None,
        who=Who(institution=verified.sender_institution),
    )
    return JSONResponse({"handoff_id": row.handoff_id, "status": row.status}, status_code=202)


@router.post("/v1/handoffs/inbound/{handoff_id}/recall", summary="Peer: recall a package")
async def inbound_recall(handoff_id: str, request: Request, services: ServicesDep) -> JSONResponse:
    raw = await _body(request, MAX_NOTICE)
    try:
        row = await service.inbox_row(services.sessions, handoff_id)
    except HandoffError as exc:
        raise _problem(exc) from None
    trusted = await service.trusted_keys(services.sessions, row.sender_institution)
    try:
        notice = verify_notice(raw, trusted, package_id=handoff_id, header_sha256=row.header_sha256)
    except NoticeError:
        raise Problem(
            422, "validation-error", ("Aviso inválido.", "Invalid recall notice.")
        ) from None
    if notice.kind != "recall":
        raise Problem(422, "validation-error", ("Se espera un retiro.", "Expected a recall."))
    if row.status not in ("delivered", "downloaded", "recalled"):
        raise Problem(
            409, "conflict", ("Ya fue abierto.", "Already opened."), {"status": row.status}
        )
    await service.mark_inbox(
        services.sessions, handoff_id, status="recalled", recalled_at=service.now()
    )
    await service.custody(
        services.sessions,
        handoff_id,
        "recalled",
        case_id=None,
        who=Who(institution=row.sender_institution),
    )
    return JSONResponse({"handoff_id": handoff_id, "status": "recalled"})


class Import(BaseModel):
    protocol_id: str = Field(pattern=r"^[a-z][a-z0-9-]{1,31}$")
    protocol_version: str | None = None


@router.post("/v1/handoffs/inbox/{handoff_id}/import", status_code=201, summary="Open as a case")
async def import_case(
    handoff_id: str,
    body: Import,
    request: Request,
    principal: Authenticated,
    services: ServicesDep,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    """Open a received package with this deployment's key, open a case under our own
    protocol linked to the origin by pseudonym only, and acknowledge back (signed)."""

    async def go(update_id: str) -> Answer:
        return await _import(handoff_id, body, principal, services)

    return await run_once(services.sessions, principal, request, body.model_dump(), go)


async def _import(
    handoff_id: str, body: Import, principal: Principal, services: Services
) -> Answer:
    row = await inbox_entry(services, principal, handoff_id)
    if not allowed(principal, "import", institution=row.recipient_institution):
        raise await authz.deny(services.sessions, principal, what="handoff.import")
    _answerable(row)
    trusted = await service.trusted_keys(services.sessions, row.sender_institution)
    try:
        opened = open_package(row.package, recipient_key_from_settings(services.settings), trusted)
    except PackageError as exc:
        raise Problem(
            422,
            "validation-error",
            (f"Paquete rechazado: {exc.part} ({exc.code}).", f"Package refused: {exc}"),
            {"code": exc.code, "part": exc.part},
        ) from None
    chosen = casework.protocol(body.protocol_id, body.protocol_version)
    known = {f.id for f in chosen.facts}
    origin_facts = opened.json("facts")
    facts = {k: v for k, v in origin_facts.items() if k in known and k in CROSS_BORDER_FACTS}
    if "returned_from_abroad" in known:
        facts["returned_from_abroad"] = True
    pseudonym = opened.manifest["case"]["pseudonym"]
    view = await casework.open_case(
        services,
        principal,
        protocol_id=chosen.id,
        version=chosen.version,
        facts=facts,
        intake={"origin_pseudonym": pseudonym, "statements": opened.json("statements")},
        update_id=f"import-{handoff_id}",
    )
    case_id = view.case_id
    store = EvidenceStore(
        services.keyring, services.sessions, max_bytes=services.settings.evidence_max_bytes
    )
    media = {p["name"]: p["media_type"] for p in opened.manifest["parts"]}
    for name, data in opened.parts.items():
        if name.startswith("evidence/"):

            async def one(blob: bytes = data) -> AsyncIterator[bytes]:
                yield blob

            await store.put(
                case_id,
                one(),
                media_type=media[name],
                uploader=Uploader(principal.actor_id, principal.role.value, principal.institution),
                meta={"origin_evidence": name.removeprefix("evidence/")},
            )
    who = _who(principal)
    await service.mark_inbox(services.sessions, handoff_id, status="opened", local_case_id=case_id)
    await service.custody(services.sessions, handoff_id, "opened", case_id=case_id, who=who)
    await service.custody(
        services.sessions,
        handoff_id,
        "imported",
        case_id=case_id,
        who=who,
        detail={"protocol": chosen.id, "pseudonym": pseudonym},
    )
    raw = make_ack(
        opened.verified, institution_key_from_settings(services.settings), principal.institution
    )
    await service.mark_inbox(
        services.sessions,
        handoff_id,
        status="acknowledged",
        notice=raw,
        answered_at=service.now(),
    )
    await service.custody(services.sessions, handoff_id, "acknowledged", case_id=case_id, who=who)
    await _send_to_peer(services, row, raw)
    return Answer(
        201,
        {
            "handoff_id": handoff_id,
            "case_id": case_id,
            "origin_pseudonym": pseudonym,
            "protocol_id": chosen.id,
            "evidence": sum(1 for n in opened.parts if n.startswith("evidence/")),
        },
    )
