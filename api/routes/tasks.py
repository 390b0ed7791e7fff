"""Tasks: the inbox, a task with its form, claim/unclaim/reassign, drafts and completion."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api import casework
from api.auth import Authenticated
from api.deps import ServicesDep
from api.idempotency import Answer, run_once
from api.problems import Problem, language
from api.routes.cases import IdempotencyHeader, view_body

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

FieldName = Annotated[str, StringConstraints(max_length=64)]
FieldValue = bool | int | None | Annotated[str, StringConstraints(max_length=20_000)]
IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", description="The task's ETag as you saw it (refuses stale writes)"),
]


class FormData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    form: dict[FieldName, FieldValue] = Field(default_factory=dict, max_length=64)


class Reassignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,12}_[A-Za-z0-9_-]{4,48}$")] | None


@router.get("", summary="The inbox: tasks for me and my groups")
async def list_tasks(
    request: Request,
    services: ServicesDep,
    principal: Authenticated,
    group: Annotated[str | None, Query(max_length=96)] = None,
    assignee: Literal["me", "none"] | None = None,
    status: Literal["open", "completed", "cancelled"] = "open",
    protocol: Annotated[str | None, Query(max_length=32)] = None,
    due_before: datetime | None = None,
    due_after: datetime | None = None,
    overdue: bool | None = None,
    sort: Literal["due", "opened"] = "due",
    limit: Annotated[int, Query(ge=1, le=casework.PAGE_MAX)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    for bound in (due_before, due_after):
        if bound is not None and bound.tzinfo is None:
            raise Problem(
                422,
                "validation-error",
                (
                    "Las fechas deben llevar zona horaria (p. ej. Z).",
                    "Dates need a time zone (e.g. Z).",
                ),
            )
    query = casework.InboxQuery(
        group=group,
        assignee=assignee,
        status=status,
        protocol_id=protocol,
        due_before=due_before,
        due_after=due_after,
        overdue=overdue,
        sort=sort,
        limit=limit,
        cursor=cursor,
    )
    return await casework.inbox(services, principal, query, language(request))


@router.get("/{task_id}", summary="A task with its instructions, form and draft (ETag)")
async def get_task(
    request: Request, task_id: str, services: ServicesDep, principal: Authenticated
) -> JSONResponse:
    body, tag = await casework.get_task(services, principal, task_id, language(request))
    return JSONResponse(jsonable(body), headers={"ETag": tag})


def jsonable(body: Any) -> Any:
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder(body)


async def _command(
    request: Request,
    services: ServicesDep,
    principal: Authenticated,
    task_id: str,
    command: str,
    if_match: str | None,
    payload: Any,
    **kwargs: Any,
) -> Response:
    lang = language(request)

    async def go(update_id: str) -> Answer:
        done = await casework.task_command(
            services,
            principal,
            task_id,
            command,
            update_id=update_id,
            if_match=if_match,
            **kwargs,
        )
        body = view_body(done.view, done.access.case.protocol, lang)
        task = done.view.task
        if task is not None:
            body["task"] = jsonable(casework.task_summary_of(task, done.access, lang))
        return Answer(200, body, casework.etag(task) if task is not None else None)

    return await run_once(services.sessions, principal, request, payload, go)


@router.post("/{task_id}/claim", summary="Take a task (409 if someone else holds it)")
async def claim(
    request: Request,
    task_id: str,
    services: ServicesDep,
    principal: Authenticated,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    return await _command(request, services, principal, task_id, "claim", if_match, {})


@router.post("/{task_id}/unclaim", summary="Give a task back to its groups")
async def unclaim(
    request: Request,
    task_id: str,
    services: ServicesDep,
    principal: Authenticated,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    return await _command(request, services, principal, task_id, "unclaim", if_match, {})


@router.post("/{task_id}/reassign", summary="Coordinators: give a task to someone else")
async def reassign(
    request: Request,
    task_id: str,
    body: Reassignment,
    services: ServicesDep,
    principal: Authenticated,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    return await _command(
        request,
        services,
        principal,
        task_id,
        "reassign",
        if_match,
        body.model_dump(),
        assignee=body.assignee,
    )


@router.put("/{task_id}/draft", summary="Save a draft of the form (encrypted)")
async def save_draft(
    task_id: str, body: FormData, services: ServicesDep, principal: Authenticated
) -> JSONResponse:
    access = await casework.save_draft(services, principal, task_id, dict(body.form))
    return JSONResponse(
        {"task_id": task_id, "saved": True}, headers={"ETag": casework.etag(access.row)}
    )


@router.post("/{task_id}/complete", summary="Complete a task with its form (422 names bad fields)")
async def complete(
    request: Request,
    task_id: str,
    body: FormData,
    services: ServicesDep,
    principal: Authenticated,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    return await _command(
        request,
        services,
        principal,
        task_id,
        "complete",
        if_match,
        body.model_dump(),
        form=dict(body.form),
    )
