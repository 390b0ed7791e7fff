"""The prosecutor's inbox of handoff packages: list, download, acknowledge, reject.

The same functions as the JSON inbox (:mod:`api.routes.handoffs`): who may see a package
(only its addressee's institution; a coordinator for packages from another country's ERI), the
custody events in the ledger (``downloaded``, ``acknowledged``, ``rejected``), the signed
notices. An acknowledgement is the notice ``eri handoff ack`` writes, signed offline with the
office's institution key (the server never holds it); a rejection is signed by this
deployment on the office's behalf, with a reason code chosen from a list (never free text:
nothing a person typed reaches the ledger or the sender). Forms carry the CSRF token and an
idempotency key, so a double tap answers once. URLs and titles hold package ids only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import File, Form, Path, Request, UploadFile
from fastapi.responses import Response

from api.deps import Services
from api.idempotency import Answer, run_once_answer
from api.problems import Problem
from api.routes import handoffs
from api.web import i18n, render
from api.web.session import WebPrincipal, page_router
from eri.auth import Principal
from eri.db.models import HandoffInbox

router = page_router(tags=["web: handoffs"])

HANDOFF_ID = r"^hnd_[A-Za-z0-9]{4,60}$"
HandoffId = Annotated[str, Path(pattern=HANDOFF_ID)]
ANSWERED = ("acknowledged", "rejected")
#: Why an office refuses a package: codes (the notice and the ledger carry the code only).
REJECT_REASONS: dict[str, tuple[str, str]] = {
    "incomplete": ("Falta información o evidencia", "Information or evidence is missing"),
    "wrong_jurisdiction": ("No es de nuestra competencia", "Not within our jurisdiction"),
    "wrong_recipient": ("No va dirigido a esta fiscalía", "Not meant for this office"),
    "duplicate": ("Duplica otra entrega", "Duplicates another package"),
    "unreadable": ("No se puede abrir ni verificar", "Cannot be opened or verified"),
}
STATUS: dict[str, tuple[str, str]] = {
    "delivered": ("Nuevo", "New"),
    "downloaded": ("Descargado", "Downloaded"),
    "opened": ("Abierto", "Opened"),
    "acknowledged": ("Acusado", "Acknowledged"),
    "rejected": ("Rechazado", "Rejected"),
    "recalled": ("Retirado por el remitente", "Recalled by the sender"),
}

WORDS: dict[str, tuple[str, str]] = {
    "hnd.inbox": ("Paquetes recibidos", "Packages received"),
    "hnd.empty": ("No hay paquetes para su institución.", "No packages for your institution."),
    "hnd.package": ("Paquete", "Package"),
    "hnd.from": ("De", "From"),
    "hnd.received": ("Recibido", "Received"),
    "hnd.status": ("Estado", "Status"),
    "hnd.size": ("Tamaño", "Size"),
    "hnd.sha256": ("SHA-256 del paquete", "Package SHA-256"),
    "hnd.sender_key": ("Clave del remitente", "Sender's key"),
    "hnd.recipient_key": ("Sellado para la clave", "Sealed to key"),
    "hnd.reason": ("Motivo", "Reason"),
    "hnd.download": ("Descargar el paquete", "Download the package"),
    "hnd.offline": ("Abrirlo y acusar recibo", "Open it and acknowledge it"),
    "hnd.offline_hint": (
        "El paquete está cifrado para la clave de su fiscalía: se verifica y se abre en su "
        "equipo, no en este servidor. El acuse se firma con la clave de su institución:",
        "The package is sealed to your office's key: it is verified and opened on your "
        "computer, not on this server. The acknowledgement is signed with your "
        "institution's key:",
    ),
    "hnd.ack": ("Acusar recibo", "Acknowledge"),
    "hnd.ack_file": (
        "Acuse firmado (archivo .ack.json)",
        "Signed acknowledgement (.ack.json file)",
    ),
    "hnd.ack_submit": ("Enviar el acuse", "Send the acknowledgement"),
    "hnd.reject": ("Rechazar", "Reject"),
    "hnd.reject_hint": (
        "El rechazo lo firma este servidor en nombre de su institución y se comunica al "
        "remitente con el motivo.",
        "The rejection is signed by this server on your institution's behalf and sent to "
        "the sender with the reason.",
    ),
    "hnd.reject_submit": ("Rechazar el paquete", "Reject the package"),
    "hnd.done.acknowledged": ("Acuse registrado.", "Acknowledgement recorded."),
    "hnd.done.rejected": ("Rechazo registrado.", "Rejection recorded."),
    "hnd.answered": ("Este paquete ya fue respondido.", "This package has been answered."),
    "hnd.recalled": (
        "El remitente retiró este paquete.",
        "The sender recalled this package.",
    ),
    "hnd.bad_reason": ("Elija un motivo de la lista.", "Choose a reason from the list."),
    "hnd.no_file": ("Elija el archivo del acuse.", "Choose the acknowledgement file."),
    "hnd.form_used": (
        "Este formulario ya se envió. Vuelva a cargar la página.",
        "This form was sent already. Reload the page.",
    ),
    "hnd.back": ("Volver a los paquetes", "Back to the packages"),
}
#: The navigation entry of these pages (the bar's labels are i18n messages).
i18n.MESSAGES.setdefault("nav.handoffs", ("Paquetes recibidos", "Packages received"))
render.NAV.setdefault("prosecutor", []).append(("/web/handoffs", "nav.handoffs"))
render.HOME.setdefault("prosecutor", "/web/handoffs")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _when(at: datetime | str) -> str:
    value = datetime.fromisoformat(at) if isinstance(at, str) else at
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


@router.get("/handoffs")
async def inbox_page(request: Request, principal: WebPrincipal) -> Response:
    items = await handoffs.inbox_items(_services(request), principal)
    return render.render(
        request,
        "handoffs.html",
        words=WORDS,
        items=items,
        reasons=REJECT_REASONS,
        when=_when,
        size=_size,
        status_names=STATUS,
    )


async def _package_page(
    request: Request,
    principal: Principal,
    row: HandoffInbox,
    *,
    status: int = 200,
    error: tuple[str, str] | None = None,
) -> Response:
    view: dict[str, Any] = handoffs.inbox_view(row)
    return render.render(
        request,
        "handoff.html",
        words=WORDS,
        status=status,
        item=view,
        when=_when,
        size=_size,
        status_names=STATUS,
        reasons=REJECT_REASONS,
        answerable=row.status not in (*ANSWERED, "recalled"),
        error=error,
        institution=principal.institution,
        idem_ack=render.new_idempotency_key(),
        idem_reject=render.new_idempotency_key(),
    )


@router.get("/handoffs/{handoff_id}")
async def package_page(
    request: Request, handoff_id: HandoffId, principal: WebPrincipal
) -> Response:
    row = await handoffs.inbox_entry(_services(request), principal, handoff_id)
    return await _package_page(request, principal, row)


@router.get("/handoffs/{handoff_id}/package")
async def download(request: Request, handoff_id: HandoffId, principal: WebPrincipal) -> Response:
    """The sealed package (custody event ``downloaded``), as the JSON route answers it."""
    return await handoffs.download(handoff_id, principal, _services(request))


async def _answer(
    request: Request,
    principal: Principal,
    handoff_id: str,
    idem: str,
    payload: dict[str, Any],
    action: Callable[[], Awaitable[Answer]],
) -> Response:
    """Run ``action`` once per form (idempotency key ``idem``); a refusal the person can act
    on (bad notice, already answered, recalled) re-renders the package page with the reason
    (a repeated form gets the first answer again)."""
    services = _services(request)
    refused: list[Problem] = []

    async def go(update_id: str) -> Answer:
        try:
            return await action()
        except Problem as problem:
            refused.append(problem)
            raise

    try:
        answer, _ = await run_once_answer(
            services.sessions, principal, request, payload, go, key=idem
        )
    except Problem as problem:  # the key: reused for another form, or still running
        if problem.status not in (409, 422):
            raise
        answer = Answer(problem.status, {"detail": None})
        if problem.type == "idempotency-key-reused":  # a stale page's form, sent again
            problem = Problem(problem.status, problem.type, WORDS["hnd.form_used"])
        refused.append(problem)
    if answer.status < 400:
        return render.redirect(request, f"/web/handoffs/{handoff_id}")
    if answer.status in (403, 404):  # not theirs: the error page, as for any page
        raise refused[0] if refused else Problem(answer.status, "not-found")
    detail = str(answer.body.get("detail") or "")
    message = refused[0].detail if refused and refused[0].detail else (detail, detail)
    row = await handoffs.inbox_entry(services, principal, handoff_id)
    return await _package_page(request, principal, row, status=answer.status, error=message)


@router.post("/handoffs/{handoff_id}/ack")
async def acknowledge(
    request: Request,
    handoff_id: HandoffId,
    principal: WebPrincipal,
    idem: Annotated[str, Form()],
    notice: Annotated[UploadFile | None, File()] = None,
) -> Response:
    services = _services(request)
    raw = await notice.read(handoffs.MAX_NOTICE + 1) if notice is not None else b""
    if not raw:
        row = await handoffs.inbox_entry(services, principal, handoff_id)
        message = WORDS["hnd.no_file"]
        return await _package_page(request, principal, row, status=422, error=message)
    if len(raw) > handoffs.MAX_NOTICE:
        raise Problem(413, "payload-too-large", ("Demasiado grande.", "Too large."))

    async def action() -> Answer:
        return await handoffs.acknowledge_notice(handoff_id, raw, principal, services)

    payload = {"notice_sha256": hashlib.sha256(raw).hexdigest()}
    return await _answer(request, principal, handoff_id, idem, payload, action)


@router.post("/handoffs/{handoff_id}/reject")
async def reject(
    request: Request,
    handoff_id: HandoffId,
    principal: WebPrincipal,
    idem: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    services = _services(request)
    if reason not in REJECT_REASONS:
        row = await handoffs.inbox_entry(services, principal, handoff_id)
        message = WORDS["hnd.bad_reason"]
        return await _package_page(request, principal, row, status=422, error=message)
    body = handoffs.Rejection(reason=reason)

    async def action() -> Answer:
        return await handoffs.reject_package(handoff_id, body, principal, services)

    return await _answer(request, principal, handoff_id, idem, body.model_dump(), action)
