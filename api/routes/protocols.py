"""The protocols a deployment runs: readable by every signed-in user."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api import casework
from api.auth import Authenticated
from api.problems import language

router = APIRouter(prefix="/v1/protocols", tags=["protocols"])


def _summary(p: Any, lang: str) -> dict[str, Any]:
    return {
        "id": p.id,
        "version": p.version,
        "country": p.country,
        "timezone": p.timezone,
        "title": p.title.get(lang),
        "summary": p.summary.get(lang),
    }


@router.get("", summary="Every protocol version this deployment runs")
async def list_protocols(request: Request, principal: Authenticated) -> dict[str, Any]:
    lang = language(request)
    return {"items": [_summary(p, lang) for p in casework.protocols()]}


@router.get("/{protocol_id}", summary="A protocol (newest version unless ?version=)")
async def get_protocol(
    request: Request, principal: Authenticated, protocol_id: str, version: str | None = None
) -> dict[str, Any]:
    lang = language(request)
    p = casework.protocol(protocol_id, version)
    body = _summary(p, lang)
    body["facts"] = [
        {"id": f.id, "type": f.type, "values": f.domain(), "label": f.label.get(lang)}
        for f in p.facts
    ]
    body["institutions"] = [
        {
            "id": i.id,
            "acronym": i.acronym,
            "name": i.name.get(lang),
            "roles": [{"id": r.id, "label": r.label.get(lang)} for r in i.roles],
        }
        for i in p.institutions
    ]
    body["steps"] = [
        {
            "id": s.id,
            "phase": s.phase,
            "title": s.title.get(lang),
            "responsible": s.responsible,
            "deadline": (
                {
                    "duration": s.deadline.duration,
                    "clock": s.deadline.clock,
                    "basis": s.deadline.basis,
                }
                if s.deadline
                else None
            ),
            "form": casework.form_schema(s, lang),
        }
        for s in p.steps
    ]
    return body
