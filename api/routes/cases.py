"""Cases: open one under a protocol, read it (recorded), its timeline, facts and consent."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api import casework
from api.auth import Authenticated
from api.deps import ServicesDep
from api.idempotency import Answer, run_once
from api.problems import language
from protocols.model import Protocol
from workflows.case import CaseView

router = APIRouter(prefix="/v1/cases", tags=["cases"])

Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
FactValue = bool | Annotated[str, StringConstraints(max_length=64)]
IntakeValue = bool | int | None | Annotated[str, StringConstraints(max_length=20_000)]
IdempotencyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="A unique value per action (the same one when retrying)",
    ),
]


class OpenCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protocol_id: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,31}$")]
    version: Annotated[str, StringConstraints(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")] | None = None
    facts: dict[Code, FactValue] = Field(default_factory=dict, max_length=64)
    intake: dict[Code, IntakeValue] = Field(
        default_factory=dict,
        max_length=64,
        description="What the team knows at detection; stored encrypted, never logged",
    )


class FactChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fact: Code
    value: FactValue


class ConsentDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["given", "refused"]


def view_body(view: CaseView, p: Protocol, lang: str) -> dict[str, Any]:
    return {
        "case_id": view.case_id,
        "revision": view.revision,
        "closed": view.closed,
        "open_tasks": [
            {
                "task_id": t.task_id,
                "step_id": t.step_id,
                "title": p.step(t.step_id).title.get(lang),
                "candidate_groups": t.candidate_groups,
                "assignee": t.assignee,
                "due_at": t.due_at.isoformat() if t.due_at else None,
                "overdue": t.deadline_missed,
                "revision": t.revision,
            }
            for t in view.open_tasks
        ],
    }


@router.post(
    "",
    status_code=201,
    summary="Open a case under a protocol; answers with its first open tasks",
    responses={201: {"description": "The case is open"}},
)
async def open_case(
    request: Request,
    body: OpenCase,
    services: ServicesDep,
    principal: Authenticated,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    lang = language(request)

    async def go(update_id: str) -> Answer:
        p = casework.protocol(body.protocol_id, body.version)
        view = await casework.open_case(
            services,
            principal,
            protocol_id=p.id,
            version=p.version,
            facts=dict(body.facts),
            intake=dict(body.intake),
            update_id=update_id,
        )
        return Answer(201, view_body(view, p, lang))

    response = await run_once(
        services.sessions, principal, request, body.model_dump(mode="json"), go
    )
    return response


@router.get("/{case_id}", summary="The decrypted case (every read is recorded)")
async def read_case(
    case_id: str,
    services: ServicesDep,
    principal: Authenticated,
    reason: Annotated[str | None, Header(alias="X-Reason", max_length=200)] = None,
) -> dict[str, Any]:
    return await casework.read_case(services, principal, case_id, reason)


@router.get("/{case_id}/timeline", summary="What happened, when and by whom (no victim data)")
async def case_timeline(
    case_id: str, services: ServicesDep, principal: Authenticated
) -> dict[str, Any]:
    return {"items": await casework.timeline(services, principal, case_id)}


async def _fact(
    request: Request,
    services: ServicesDep,
    principal: Authenticated,
    case_id: str,
    fact: str,
    value: Any,
    payload: Any,
) -> Response:
    lang = language(request)

    async def go(update_id: str) -> Answer:
        view = await casework.set_fact(services, principal, case_id, fact, value, update_id)
        access = await casework.case_access(services, principal, case_id, "cases.facts")
        return Answer(200, view_body(view, access.protocol, lang))

    return await run_once(services.sessions, principal, request, payload, go)


@router.post("/{case_id}/facts", summary="Add or correct a case fact")
async def change_fact(
    request: Request,
    case_id: str,
    body: FactChange,
    services: ServicesDep,
    principal: Authenticated,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    return await _fact(
        request, services, principal, case_id, body.fact, body.value, body.model_dump()
    )


@router.post("/{case_id}/consent", summary="Record the person's informed decision")
async def record_consent(
    request: Request,
    case_id: str,
    body: ConsentDecision,
    services: ServicesDep,
    principal: Authenticated,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    return await _fact(
        request, services, principal, case_id, "consent", body.decision, body.model_dump()
    )


@router.post("/{case_id}/consent/revoke", summary="The person revokes their consent")
async def revoke_consent(
    request: Request,
    case_id: str,
    services: ServicesDep,
    principal: Authenticated,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    return await _fact(request, services, principal, case_id, "consent", "revoked", {})
