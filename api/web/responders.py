"""The responders' pages: inbox, task (claim, unclaim, draft, complete), open a case, case.

Each page calls :mod:`api.casework` (the functions the JSON routes call) with the session's
principal, so authorization, ledger entries and validation are the API's. State changes go
through :func:`api.idempotency.run_once_answer` with the form's hidden ``idem`` key, so a double
tap replays the first answer instead of acting twice. Only ids appear in URLs and titles.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Query, Request, Response
from starlette.datastructures import FormData

from api import casework
from api.deps import Services, ServicesDep
from api.idempotency import Answer, run_once_answer
from api.problems import Problem
from api.routes.cases import view_body
from api.web import i18n, render, session
from eri.auth import Principal
from protocols.model import FormField, Protocol, Step, Text

router = session.page_router(tags=["web"])

#: What the opening responder may note about the person at intake (stored encrypted in the
#: case's vault as ``intake``, like the API's ``intake`` object).
INTAKE_FIELDS = [
    FormField(
        id="alias",
        type="text",
        pii=True,
        label=Text(es="Nombre o alias de referencia", en="Name or alias for reference"),
    ),
    FormField(
        id="summary",
        type="text",
        pii=True,
        label=Text(es="Qué se sabe (breve)", en="What is known (briefly)"),
    ),
]
INTEGER = re.compile(r"-?[0-9]{1,12}")
STALE_CODES = frozenset({"stale_task", "claimed_by_other", "not_assignee", "task_not_open"})
IN_PROGRESS_WAIT = 0.25
IN_PROGRESS_TRIES = 40


# --- form values ----------------------------------------------------------------------------


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def parse_fields(fields: list[FormField], form: FormData, timezone: str) -> dict[str, Any]:
    """Browser form values as the API's JSON would carry them (validated by the workflow).

    Empty answers are left out (the workflow's ``required`` check names them); a value that
    does not parse is passed on as text, so the same 422 codes name it."""
    values: dict[str, Any] = {}
    for f in fields:
        raw = _text(form, f"f.{f.id}")
        if raw == "":
            continue
        if f.type == "boolean":
            values[f.id] = {"true": True, "false": False}.get(raw, raw)
        elif f.type == "integer":
            values[f.id] = int(raw) if INTEGER.fullmatch(raw) else raw
        elif f.type == "datetime":
            values[f.id] = _local_datetime(raw, timezone)
        else:
            values[f.id] = raw
    return values


def _local_datetime(raw: str, timezone: str) -> str:
    """``datetime-local`` (no zone) is the team's local time: give it the protocol's zone."""
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return raw
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(timezone))
    return parsed.isoformat()


def field_views(
    fields: list[FormField],
    values: dict[str, Any],
    errors: dict[str, str],
    lang: str,
    timezone: str,
    p: Protocol | None = None,
) -> list[dict[str, Any]]:
    """What the template needs per field: label, input kind, options, value, error sentence.

    An ``enum`` offers its codes; an ``institution`` offers the protocol's institutions."""
    institutions = [
        (i.id, f"{i.acronym} · {i.name.get(lang)}") for i in (p.institutions if p else [])
    ]
    views = []
    for f in fields:
        if f.type == "enum":
            options = [(v, v.replace("_", " ")) for v in f.values or []]
        elif f.type == "institution" and institutions:
            options = institutions
        else:
            options = []
        value = values.get(f.id)
        if f.type == "datetime" and isinstance(value, str):
            with contextlib.suppress(ValueError):
                local = datetime.fromisoformat(value).astimezone(ZoneInfo(timezone))
                value = local.strftime("%Y-%m-%dT%H:%M")
        views.append(
            {
                "id": f.id,
                "name": f"f.{f.id}",
                "type": f.type,
                "label": f.label.get(lang),
                "required": f.required,
                "sets_fact": f.sets_fact,
                "options": options,
                "value": value,
                "error": i18n.field_error(errors[f.id], lang) if f.id in errors else None,
            }
        )
    return views


def _errors(body: dict[str, Any]) -> dict[str, str]:
    return {str(e.get("field")): str(e.get("code")) for e in body.get("errors") or []}


def _detail(body: dict[str, Any]) -> str:
    return str(body.get("detail") or body.get("title") or "")


async def _once(
    services: Services,
    principal: Principal,
    request: Request,
    payload: Any,
    action: Any,
    key: str,
) -> Answer:
    """run_once_answer, waiting out a double tap's first request still in flight."""
    for _ in range(IN_PROGRESS_TRIES):
        try:
            answer, _replayed = await run_once_answer(
                services.sessions, principal, request, payload, action, key=key
            )
            return answer
        except Problem as problem:
            if problem.type != "request-in-progress":
                raise
            await asyncio.sleep(IN_PROGRESS_WAIT)
    raise Problem(
        409,
        "request-in-progress",
        (
            "La primera solicitud aún está en curso; recargue la página.",
            "The first request is still running; reload the page.",
        ),
    )


# --- the inbox ------------------------------------------------------------------------------


def _due(item: dict[str, Any], p: Protocol, lang: str, now: datetime) -> dict[str, Any]:
    due: datetime | None = item["due_at"]
    if due is None:
        return {"due_local": None, "due_relative": None, "late": False, "due_iso": None}
    return {
        "due_local": i18n.local_time(due, p.timezone, lang),
        "due_relative": i18n.relative(due, now, lang),
        "late": due < now or bool(item["overdue"]),
        "due_iso": due.isoformat(),
    }


def _inbox_items(items: list[dict[str, Any]], lang: str, now: datetime) -> list[dict[str, Any]]:
    by_key = {p.key: p for p in casework.protocols()}
    out = []
    for item in items:
        p = by_key[f"{item['protocol']['id']}@{item['protocol']['version']}"]
        out.append({**item, **_due(item, p, lang, now), "protocol_title": p.title.get(lang)})
    return out


@router.get("/inbox")
async def inbox(
    request: Request,
    services: ServicesDep,
    signed: session.SignedIn,
    mine_cursor: Annotated[str | None, Query(max_length=512)] = None,
    groups_cursor: Annotated[str | None, Query(max_length=512)] = None,
    done: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    principal = signed.principal
    lang = i18n.lang(request)
    now = datetime.now(UTC)
    mine = await casework.inbox(
        services,
        principal,
        casework.InboxQuery(assignee="me", limit=25, cursor=mine_cursor),
        lang,
    )
    groups = await casework.inbox(
        services,
        principal,
        casework.InboxQuery(assignee="none", limit=25, cursor=groups_cursor),
        lang,
    )
    return render.render(
        request,
        "inbox.html",
        mine=_inbox_items(mine["items"], lang, now),
        mine_next=mine["next_cursor"],
        groups=_inbox_items(groups["items"], lang, now),
        groups_next=groups["next_cursor"],
        done=done in {"completed", "opened"} and done,
        words=WORDS,
    )


WORDS: dict[str, tuple[str, str]] = {
    "inbox.title": ("Mis tareas", "My tasks"),
    "inbox.mine": ("Asignadas a mí", "Assigned to me"),
    "inbox.groups": ("Sin asignar, de mis grupos", "Unassigned, for my groups"),
    "inbox.empty": ("Nada por ahora.", "Nothing for now."),
    "inbox.more": ("Ver más", "Show more"),
    "inbox.due": ("Vence", "Due"),
    "inbox.no_due": ("Sin plazo", "No deadline"),
    "inbox.late": ("Vencida", "Overdue"),
    "inbox.completed": ("Tarea completada.", "Task completed."),
    "inbox.opened": ("Caso abierto.", "Case opened."),
    "case": ("Caso", "Case"),
    "task": ("Tarea", "Task"),
    "task.status": ("Estado", "Status"),
    "task.assignee": ("Asignada a", "Assigned to"),
    "task.you": ("usted", "you"),
    "task.someone": ("otra persona", "someone else"),
    "task.nobody": ("nadie (puede tomarla)", "nobody (you can claim it)"),
    "task.instructions": ("Instrucciones", "Instructions"),
    "task.claim": ("Tomar la tarea", "Claim the task"),
    "task.unclaim": ("Devolver al grupo", "Give back to the group"),
    "task.save": ("Guardar borrador", "Save draft"),
    "task.complete": ("Completar", "Complete"),
    "task.saved": ("Borrador guardado.", "Draft saved."),
    "task.claimed": ("Tarea tomada: ahora es suya.", "Task claimed: it is yours now."),
    "task.unclaimed": ("Tarea devuelta al grupo.", "Task given back to the group."),
    "task.claim_first": (
        "Tome la tarea para completarla.",
        "Claim the task to complete it.",
    ),
    "task.stale": (
        "Otra persona cambió esta tarea mientras usted la veía. Revise su estado actual; "
        "sus respuestas siguen en el formulario.",
        "Someone else changed this task while you were looking at it. Check its current "
        "state; your answers are still in the form.",
    ),
    "task.invalid": ("Revise los campos marcados.", "Check the fields marked."),
    "task.closed": ("Esta tarea ya no está abierta.", "This task is no longer open."),
    "task.open_case": ("Ver el caso", "View the case"),
    "status.open": ("abierta", "open"),
    "status.completed": ("completada", "completed"),
    "status.cancelled": ("cancelada", "cancelled"),
    "new.title": ("Abrir un caso", "Open a case"),
    "new.choose": ("Elija el protocolo", "Choose the protocol"),
    "new.facts": ("Lo que se sabe ahora", "What is known now"),
    "new.intake": ("Datos de referencia (cifrados)", "Reference data (encrypted)"),
    "new.submit": ("Abrir el caso", "Open the case"),
    "case.facts": ("Hechos", "Facts"),
    "case.data": ("Datos (cifrados en reposo)", "Data (encrypted at rest)"),
    "case.open_tasks": ("Tareas abiertas", "Open tasks"),
    "case.timeline": ("Historial", "Timeline"),
    "case.opened": ("Abierto", "Opened"),
    "case.closed": ("Cerrado", "Closed"),
    "case.status.open": ("abierto", "open"),
    "case.status.closed": ("cerrado", "closed"),
    "case.status.shredded": ("datos destruidos", "data destroyed"),
    "case.status": ("Estado", "Status"),
    "case.none": ("Ninguna.", "None."),
    "case.intake": ("Al abrir el caso", "When the case was opened"),
}


# --- a task ---------------------------------------------------------------------------------


def _form_fields(step: Step) -> list[FormField]:
    return list(step.form.fields) if step.form else []


async def _task_page(
    request: Request,
    services: Services,
    signed: session.SignedInSession,
    task_id: str,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    alert: str | None = None,
    status: int = 200,
) -> Response:
    principal = signed.principal
    lang = i18n.lang(request)
    detail, _etag = await casework.get_task(services, principal, task_id, lang)
    access = await casework.task_access(services, principal, task_id, "tasks.read")
    p = access.case.protocol
    step = access.step
    now = datetime.now(UTC)
    shown = values if values is not None else (detail.get("draft") or {})
    assignee = detail["assignee"]
    mine = assignee == principal.actor_id
    may_complete = detail["status"] == "open" and (mine or principal.role.value == "coordinator")
    return render.render(
        request,
        "task.html",
        status=status,
        task=detail,
        due=_due(detail, p, lang, now),
        protocol_title=p.title.get(lang),
        fields=field_views(_form_fields(step), shown, errors or {}, lang, p.timezone, p),
        form_title=step.form.title.get(lang) if step.form else None,
        mine=mine,
        assigned_other=assignee is not None and not mine,
        may_complete=may_complete,
        idem=render.new_idempotency_key(),
        notice=notice,
        alert=alert,
        words=WORDS,
    )


@router.get("/tasks/{task_id}")
async def task_page(
    request: Request,
    task_id: str,
    services: ServicesDep,
    signed: session.SignedIn,
    saved: bool = False,
    claimed: bool = False,
    unclaimed: bool = False,
) -> Response:
    lang = i18n.lang(request)
    notice = None
    if saved:
        notice = i18n.pick(WORDS["task.saved"], lang)
    elif claimed:
        notice = i18n.pick(WORDS["task.claimed"], lang)
    elif unclaimed:
        notice = i18n.pick(WORDS["task.unclaimed"], lang)
    return await _task_page(request, services, signed, task_id, notice=notice)


def _revision(form: FormData) -> str | None:
    raw = _text(form, "revision")
    return f'"{raw}"' if raw.isdigit() else None


async def _command(
    request: Request,
    services: Services,
    signed: session.SignedInSession,
    task_id: str,
    command: str,
    form: FormData,
    values: dict[str, Any] | None = None,
) -> Answer:
    principal = signed.principal
    if_match = _revision(form)

    async def go(update_id: str) -> Answer:
        done = await casework.task_command(
            services,
            principal,
            task_id,
            command,
            update_id=update_id,
            if_match=if_match,
            form=values,
        )
        return Answer(200, view_body(done.view, done.access.case.protocol, "es"))

    payload = {"form": values or {}, "if_match": if_match}
    return await _once(services, principal, request, payload, go, _text(form, "idem"))


async def _after_refusal(
    request: Request,
    services: Services,
    signed: session.SignedInSession,
    task_id: str,
    answer: Answer,
    values: dict[str, Any] | None,
) -> Response:
    lang = i18n.lang(request)
    code = str(answer.body.get("code", ""))
    if code == "form_invalid":
        return await _task_page(
            request,
            services,
            signed,
            task_id,
            values=values,
            errors=_errors(answer.body),
            alert=i18n.pick(WORDS["task.invalid"], lang),
            status=422,
        )
    if code in STALE_CODES or answer.status in (409, 412):
        message = WORDS["task.stale"] if code != "task_not_open" else WORDS["task.closed"]
        return await _task_page(
            request,
            services,
            signed,
            task_id,
            values=values,
            alert=i18n.pick(message, lang),
            status=409,
        )
    raise Problem(
        answer.status,
        str(answer.body.get("type", "")).rsplit("/", 1)[-1] or "conflict",
        (_detail(answer.body), _detail(answer.body)),
    )


@router.post("/tasks/{task_id}/claim")
async def claim(
    request: Request, task_id: str, services: ServicesDep, signed: session.SignedIn
) -> Response:
    form = await request.form()
    answer = await _command(request, services, signed, task_id, "claim", form)
    if answer.status >= 400:
        return await _after_refusal(request, services, signed, task_id, answer, None)
    return render.redirect(request, f"/web/tasks/{task_id}?claimed=1")


@router.post("/tasks/{task_id}/unclaim")
async def unclaim(
    request: Request, task_id: str, services: ServicesDep, signed: session.SignedIn
) -> Response:
    form = await request.form()
    answer = await _command(request, services, signed, task_id, "unclaim", form)
    if answer.status >= 400:
        return await _after_refusal(request, services, signed, task_id, answer, None)
    return render.redirect(request, f"/web/tasks/{task_id}?unclaimed=1")


async def _submitted(
    services: Services, signed: session.SignedInSession, task_id: str, form: FormData
) -> dict[str, Any]:
    access = await casework.task_access(services, signed.principal, task_id, "tasks.read")
    return parse_fields(_form_fields(access.step), form, access.case.protocol.timezone)


@router.post("/tasks/{task_id}/draft")
async def save_draft(
    request: Request, task_id: str, services: ServicesDep, signed: session.SignedIn
) -> Response:
    form = await request.form()
    values = await _submitted(services, signed, task_id, form)
    await casework.save_draft(services, signed.principal, task_id, values)
    return render.redirect(request, f"/web/tasks/{task_id}?saved=1")


@router.post("/tasks/{task_id}/complete")
async def complete(
    request: Request, task_id: str, services: ServicesDep, signed: session.SignedIn
) -> Response:
    form = await request.form()
    if _text(form, "action") == "draft":  # the form's second button
        return await save_draft(request, task_id, services, signed)
    values = await _submitted(services, signed, task_id, form)
    answer = await _command(request, services, signed, task_id, "complete", form, values)
    if answer.status >= 400:
        return await _after_refusal(request, services, signed, task_id, answer, values)
    # Back to the inbox, where the case's next tasks for this person show up.
    return render.redirect(request, "/web/inbox?done=completed")


# --- opening a case -------------------------------------------------------------------------


def _openable(principal: Principal) -> list[Protocol]:
    latest: dict[str, Protocol] = {}
    for p in casework.protocols():
        if principal.institution_code in casework.institutions_of(p):
            latest[p.id] = p
    return list(latest.values())


def _fact_fields(p: Protocol) -> list[FormField]:
    """The protocol's facts as optional fields (boolean: yes / no / not known)."""
    return [
        FormField(id=f.id, type=f.type, label=f.label, pii=False, values=f.values) for f in p.facts
    ]


@router.get("/cases/new")
async def choose_protocol(
    request: Request, services: ServicesDep, signed: session.SignedIn
) -> Response:
    await casework.require_casework(services, signed.principal, "cases.open")
    lang = i18n.lang(request)
    choices = [(p.id, p.title.get(lang), p.country) for p in _openable(signed.principal)]
    return render.render(request, "case_new.html", choices=choices, words=WORDS)


async def _intake_page(
    request: Request,
    signed: session.SignedInSession,
    p: Protocol,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    alert: str | None = None,
    status: int = 200,
) -> Response:
    lang = i18n.lang(request)
    values = values or {}
    return render.render(
        request,
        "case_intake.html",
        status=status,
        protocol_id=p.id,
        protocol_title=p.title.get(lang),
        summary=p.summary.get(lang),
        facts=field_views(_fact_fields(p), values, errors or {}, lang, p.timezone),
        intake=field_views(INTAKE_FIELDS, values, {}, lang, p.timezone),
        idem=render.new_idempotency_key(),
        alert=alert,
        words=WORDS,
    )


@router.get("/cases/new/{protocol_id}")
async def intake_form(
    request: Request, protocol_id: str, services: ServicesDep, signed: session.SignedIn
) -> Response:
    await casework.require_casework(services, signed.principal, "cases.open")
    p = casework.protocol(protocol_id)
    return await _intake_page(request, signed, p)


@router.post("/cases/new/{protocol_id}")
async def open_case(
    request: Request, protocol_id: str, services: ServicesDep, signed: session.SignedIn
) -> Response:
    principal = signed.principal
    lang = i18n.lang(request)
    p = casework.protocol(protocol_id)
    form = await request.form()
    facts = parse_fields(_fact_fields(p), form, p.timezone)
    intake = parse_fields(INTAKE_FIELDS, form, p.timezone)

    async def go(update_id: str) -> Answer:
        view = await casework.open_case(
            services,
            principal,
            protocol_id=p.id,
            version=p.version,
            facts=facts,
            intake=intake,
            update_id=update_id,
        )
        return Answer(201, view_body(view, p, "es"))

    answer = await _once(
        services, principal, request, {"facts": facts, "intake": intake}, go, _text(form, "idem")
    )
    if answer.status >= 400:
        if answer.status == 422:
            errors = {k: "not_an_option" for k in _errors(answer.body) if k in facts}
            return await _intake_page(
                request,
                signed,
                p,
                values={**facts, **intake},
                errors=errors,
                alert=_detail(answer.body) or i18n.pick(WORDS["task.invalid"], lang),
                status=422,
            )
        raise Problem(answer.status, "conflict", (_detail(answer.body), _detail(answer.body)))
    return render.redirect(request, f"/web/cases/{answer.body['case_id']}?done=opened")


# --- a case ---------------------------------------------------------------------------------


@router.get("/cases/{case_id}")
async def case_page(
    request: Request,
    case_id: str,
    services: ServicesDep,
    signed: session.SignedIn,
    done: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    principal = signed.principal
    lang = i18n.lang(request)
    case = await casework.read_case(services, principal, case_id, reason=None)
    access = await casework.case_access(services, principal, case_id, "cases.read")
    p = access.protocol
    entries = await casework.timeline(services, principal, case_id)
    now = datetime.now(UTC)
    facts = []
    for f in p.facts:
        if f.id in case["facts"]:
            facts.append((f.label.get(lang), _fact_value(case["facts"][f.id], lang)))
    data = _case_data(case["data"], p, lang)
    open_tasks = []
    for t in case["tasks"]:
        if t["status"] != "open":
            continue
        due = datetime.fromisoformat(t["due_at"]) if t.get("due_at") else None
        item = {
            "task_id": t["task_id"],
            "title": p.step(t["step_id"]).title.get(lang),
            "due_at": due,
            "overdue": t.get("deadline_missed", False),
        }
        open_tasks.append({**item, **_due(item, p, lang, now)})
    timeline = [
        {
            "at": i18n.local_time(e["at"], p.timezone, lang),
            "action": i18n.pick(ACTIONS.get(e["action"]), lang) or e["action"],
            "step": p.step(e["step_id"]).title.get(lang)
            if e["step_id"] and _has_step(p, e["step_id"])
            else (e["step_id"] or ""),
            "actor_institution": e["actor_institution"] or "",
            "outcome": e["outcome"],
        }
        for e in entries
    ]
    return render.render(
        request,
        "case.html",
        case_id=case_id,
        protocol_title=p.title.get(lang),
        case_status=case["status"],
        opened=i18n.local_time(case["opened_at"], p.timezone, lang),
        facts=facts,
        data=data,
        open_tasks=open_tasks,
        timeline=timeline,
        done=done in {"completed", "opened"} and done,
        words=WORDS,
    )


#: The ledger's actions (eri.ledger.Action) as the timeline names them.
ACTIONS: dict[str, tuple[str, str]] = {
    "case.opened": ("Caso abierto", "Case opened"),
    "case.viewed": ("Caso consultado", "Case viewed"),
    "case.closed": ("Caso cerrado", "Case closed"),
    "task.opened": ("Tarea abierta", "Task opened"),
    "task.claimed": ("Tarea tomada", "Task claimed"),
    "task.unclaimed": ("Tarea devuelta", "Task given back"),
    "task.completed": ("Tarea completada", "Task completed"),
    "task.reassigned": ("Tarea reasignada", "Task reassigned"),
    "task.cancelled": ("Tarea cancelada", "Task cancelled"),
    "deadline.met": ("Plazo cumplido", "Deadline met"),
    "deadline.missed": ("Plazo vencido", "Deadline missed"),
    "escalation.rung": ("Escalamiento", "Escalation"),
    "consent.recorded": ("Consentimiento registrado", "Consent recorded"),
    "consent.revoked": ("Consentimiento revocado", "Consent revoked"),
    "fact.changed": ("Hecho cambiado", "Fact changed"),
    "access.denied": ("Acceso denegado", "Access denied"),
    "handoff.custody": ("Entrega (cadena de custodia)", "Handoff (custody)"),
}


def _has_step(p: Protocol, step_id: str) -> bool:
    return any(s.id == step_id for s in p.steps)


def _fact_value(value: Any, lang: str) -> str:
    if value is True:
        return i18n.t("yes", lang)
    if value is False:
        return i18n.t("no", lang)
    return str(value)


def _case_data(
    data: dict[str, Any], p: Protocol, lang: str
) -> list[tuple[str, list[tuple[str, str]]]]:
    """The case's decrypted values, by step in protocol order, with the protocol's labels
    (vault fields ``intake``, ``form.<step>`` and ``form.<step>.<field>``; drafts left out)."""
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    intake = data.get("intake")
    if isinstance(intake, dict) and intake:
        labels = {f.id: f.label.get(lang) for f in INTAKE_FIELDS}
        rows = [(labels.get(k) or k, _fact_value(v, lang)) for k, v in intake.items()]
        sections.append((i18n.pick(WORDS["case.intake"], lang), rows))
    for step in p.steps:
        answers: dict[str, Any] = {}
        plain = data.get(f"form.{step.id}")
        if isinstance(plain, dict):
            answers.update(plain)
        prefix = f"form.{step.id}."
        for key, value in data.items():
            if key.startswith(prefix):
                answers[key[len(prefix) :]] = value
        if not answers:
            continue
        rows = [
            (f.label.get(lang), _fact_value(answers[f.id], lang))
            for f in _form_fields(step)
            if f.id in answers
        ]
        sections.append((step.title.get(lang), rows))
    return sections
