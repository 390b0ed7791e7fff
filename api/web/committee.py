"""The dashboard page of coordinators and committee members (figures: :mod:`api.dashboard`).

``GET /web/dashboard`` (filters ``protocol`` and ``months`` in the query: codes and a number,
never a person), the latest checkpoint as a file, and, for committee members, the audit export
that ``eri audit verify`` checks offline. No victim data on any of them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response
from starlette.background import BackgroundTask

from api import dashboard
from api.problems import Problem
from api.web import i18n, render
from api.web.session import WebPrincipal, page_router

router = page_router(tags=["web: dashboard"])

WORDS: dict[str, tuple[str, str]] = {
    "dash.title": ("Panel de seguimiento", "Dashboard"),
    "dash.protocol": ("Protocolo", "Protocol"),
    "dash.every_protocol": ("Todos", "All"),
    "dash.months": ("Meses", "Months"),
    "dash.show": ("Mostrar", "Show"),
    "dash.suppression": (
        "Las cifras menores que k = {k} se suprimen, y otras con ellas para que no se puedan "
        "deducir restando (la misma regla que los informes del comité).",
        "Figures below k = {k} are suppressed, and others with them so they cannot be "
        "worked out by subtraction (the same rule as the committee reports).",
    ),
    "dash.live_raw": (
        "Las cifras de ahora no se suprimen para la coordinación: son casos y tareas que ya "
        "puede ver.",
        "Current figures are not suppressed for coordinators: these are cases and tasks "
        "you can already see.",
    ),
    "dash.now": ("Ahora", "Now"),
    "dash.institution": ("Institución", "Institution"),
    "dash.open_cases": ("Casos abiertos", "Open cases"),
    "dash.overdue": ("Vencidas", "Overdue"),
    "dash.escalated": ("Escaladas", "Escalated"),
    "dash.attribution": (
        "Vencidas: tareas abiertas con el plazo vencido; escaladas: con al menos un "
        "escalamiento. Casos por la institución que los abrió; tareas por la primera "
        "institución responsable del paso.",
        "Overdue: open tasks past their deadline; escalated: with at least one escalation. "
        "Cases by the institution that opened them; tasks by the step's first responsible "
        "institution.",
    ),
    "dash.quiet": ("Nada abierto", "Nothing open"),
    "dash.suppressed": ("suprimido", "suppressed"),
    "dash.compliance": ("Cumplimiento de plazos", "Deadlines met"),
    "dash.compliance_hint": (
        "Parte de las tareas completadas dentro del plazo, por institución que las completó "
        "y por mes (UTC). Un hueco en la línea es un mes suprimido o sin tareas con plazo.",
        "Share of tasks completed within the deadline, by the institution that completed "
        "them and by month (UTC). A gap in a line is a suppressed month, or one without "
        "tasks with a deadline.",
    ),
    "dash.figures": ("Cifras del gráfico", "The chart's figures"),
    "dash.tasks_n": ("tareas", "tasks"),
    "dash.no_deadline": ("sin plazo", "no deadline"),
    "dash.checkpoint": ("Último checkpoint firmado", "Latest signed checkpoint"),
    "dash.no_checkpoint": (
        "Aún no hay checkpoint firmado.",
        "There is no signed checkpoint yet.",
    ),
    "dash.size": ("Entradas", "Entries"),
    "dash.root": ("Raíz", "Root hash"),
    "dash.signed_at": ("Firmado", "Signed"),
    "dash.witnesses": ("Testigos", "Witnesses"),
    "dash.cosigned": ("cofirmó", "cosigned"),
    "dash.not_cosigned": ("sin cofirma", "not cosigned"),
    "dash.no_witnesses": ("No hay testigos configurados.", "No witnesses are configured."),
    "dash.download_checkpoint": ("Descargar el checkpoint", "Download the checkpoint"),
    "dash.download_export": ("Descargar la exportación", "Download the export"),
    "dash.verify": ("Verificarlo sin conexión", "Verify it offline"),
    "dash.verify_key": (
        "Compare la clave del registro con la que el operador le entregó (eri audit key); "
        "no la acepte solo porque aparece en esta página:",
        "Compare the log's key with the one the operator gave you (eri audit key); do not "
        "trust it only because this page shows it:",
    ),
    "dash.verify_export": (
        "Verifique la exportación (firmas, cada entrada, raíces y pruebas); debe terminar "
        "con este checkpoint:",
        "Verify the export (signatures, every entry, roots and proofs); it must end with "
        "this checkpoint:",
    ),
    "dash.verify_export_operator": (
        "Pida la exportación al operador (eri audit export eri-audit-export.jsonl) y "
        "verifíquela (firmas, cada entrada, raíces y pruebas):",
        "Ask the operator for the export (eri audit export eri-audit-export.jsonl) and "
        "verify it (signatures, every entry, roots and proofs):",
    ),
    "dash.cosign": (
        "Si es testigo, cofirme el checkpoint verificado con su clave y entréguelo:",
        "If you are a witness, cosign the verified checkpoint with your key and submit it:",
    ),
}
#: The navigation entry of these pages (the bar's labels are i18n messages).
i18n.MESSAGES.setdefault("nav.dashboard", ("Panel", "Dashboard"))
render.NAV.setdefault("committee", []).append(("/web/dashboard", "nav.dashboard"))
render.NAV.setdefault("coordinator", []).append(("/web/dashboard", "nav.dashboard"))
render.HOME.setdefault("committee", "/web/dashboard")


@router.get("/dashboard")
async def dashboard_page(
    request: Request,
    principal: WebPrincipal,
    protocol: Annotated[str | None, Query(pattern=r"^([a-z][a-z0-9-]{1,31})?$")] = None,
    months: Annotated[int, Query(ge=1, le=dashboard.MAX_MONTHS)] = dashboard.DEFAULT_MONTHS,
) -> Response:
    services = request.app.state.services
    lang = i18n.lang(request)
    view = await dashboard.build(
        services, principal, protocol_id=protocol or None, month_count=months, lang=lang
    )
    return render.render(
        request,
        "dashboard.html",
        words=WORDS,
        view=view,
        months=months,
        month_choices=(3, 6, 12, 24),
        base_url=str(request.base_url),
        suppression=i18n.pick(WORDS["dash.suppression"], lang).format(k=view.k),
    )


@router.get("/dashboard/checkpoint.txt")
async def checkpoint_file(request: Request, principal: WebPrincipal) -> Response:
    note = await dashboard.checkpoint_note(request.app.state.services, principal)
    if note is None:
        raise Problem(404, "not-found", ("Aún no hay checkpoint.", "No checkpoint yet."))
    return PlainTextResponse(
        note,
        headers={
            "Content-Disposition": f'attachment; filename="{dashboard.CHECKPOINT_FILE}"',
        },
    )


@router.get("/dashboard/audit-export.jsonl")
async def export_file(request: Request, principal: WebPrincipal) -> Response:
    path = await dashboard.audit_export(request.app.state.services, principal)
    return FileResponse(
        path,
        media_type="application/jsonl",
        filename=dashboard.EXPORT_FILE,
        background=BackgroundTask(path.unlink),
    )
