"""RFC 9457 problem+json for every error, in Spanish or English.

Bodies are built only from a stable ``type``, a title and a detail that the code chose: never an
exception's text, a stack trace or the rejected input (FastAPI's default 422 body echoes the
input, which may hold victim data, so it is replaced here).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from eri.crypto.errors import KeyShreddedError
from eri.logging import get_logger

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://eri.invalid/problems/"
log = get_logger(__name__)

# Stable problem types with their titles (es, en).
TITLES: dict[str, tuple[str, str]] = {
    "bad-request": ("Solicitud inválida", "Bad request"),
    "unauthorized": ("No autenticado", "Not authenticated"),
    "forbidden": ("Acceso denegado", "Access denied"),
    "not-found": ("No encontrado", "Not found"),
    "method-not-allowed": ("Método no permitido", "Method not allowed"),
    "conflict": ("Conflicto", "Conflict"),
    "gone": ("Ya no disponible", "Gone"),
    "precondition-failed": ("Precondición fallida", "Precondition failed"),
    "payload-too-large": ("Contenido demasiado grande", "Payload too large"),
    "unsupported-media-type": ("Tipo de contenido no admitido", "Unsupported media type"),
    "validation-error": ("Datos inválidos", "Invalid data"),
    "not-ready": ("Servicio no disponible", "Service not ready"),
    "precondition-required": ("Falta una precondición", "Precondition required"),
    "idempotency-key-reused": (
        "Clave de idempotencia ya usada",
        "Idempotency key already used",
    ),
    "request-in-progress": ("Solicitud en curso", "Request in progress"),
    "claimed-by-other": ("Tarea tomada por otra persona", "Task claimed by someone else"),
    "not-assignee": ("Tarea no asignada a usted", "Task not assigned to you"),
    "not-a-candidate": ("Tarea de otro grupo", "Task of another group"),
    "not-coordinator": ("Solo coordinación", "Coordinators only"),
    "stale-task": ("La tarea cambió", "The task changed"),
    "task-not-open": ("Tarea cerrada", "Task closed"),
    "case-closed": ("Caso cerrado", "Case closed"),
    "form-invalid": ("Formulario inválido", "Invalid form"),
    "unknown-fact": ("Hecho desconocido", "Unknown fact"),
    "illegal-value": ("Valor no permitido", "Value not allowed"),
    "too-many-requests": ("Demasiadas solicitudes", "Too many requests"),
    "internal-error": ("Error interno", "Internal error"),
}
_STATUS_TYPES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    410: "gone",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    428: "precondition-required",
    503: "not-ready",
}


class ProblemBody(BaseModel):
    """RFC 9457 problem details, as every error of this API answers."""

    type: str
    title: str
    status: int
    detail: str | None = None
    code: str | None = None
    errors: list[dict[str, str]] | None = None


def documented_errors() -> dict[int | str, dict[str, Any]]:
    """The error answers every route may give, for the OpenAPI document."""
    schema: dict[str, Any] = {PROBLEM_JSON: {"schema": ProblemBody.model_json_schema()}}
    documented: dict[int | str, dict[str, Any]] = {
        status: {
            "description": TITLES[type_][1],
            "content": schema,
        }
        for status, type_ in _STATUS_TYPES.items()
    }
    documented[500] = {"description": TITLES["internal-error"][1], "content": schema}
    return documented


def language(request: Request) -> str:
    """``en`` when the client prefers English, else Spanish (the protocols' language)."""
    header = request.headers.get("accept-language", "")
    for part in header.split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("es"):
            return "es"
        if tag.startswith("en"):
            return "en"
    return "es"


@dataclass
class Problem(Exception):
    """Raise to answer with problem+json. ``detail`` is a message the code wrote (es, en)."""

    status: int
    type: str
    detail: tuple[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] | None = None


def problem_response(
    request: Request,
    status: int,
    type_: str,
    detail: tuple[str, str] | str | None = None,
    extra: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    lang = language(request)
    idx = 0 if lang == "es" else 1
    title = TITLES.get(type_, TITLES["internal-error"])[idx]
    body: dict[str, Any] = {"type": TYPE_BASE + type_, "title": title, "status": status}
    if isinstance(detail, tuple):
        body["detail"] = detail[idx]
    elif detail:
        body["detail"] = detail
    if extra:
        body.update(extra)
    hdrs = {"Content-Language": lang, **(headers or {})}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=hdrs)


_SAFE_PART = re.compile(r"[a-z_][a-z0-9_]{0,63}|[0-9]{1,6}")


def _safe_part(part: object) -> str:
    # A location part may be a key of a submitted object, i.e. data: echo identifiers only.
    text = str(part)
    return text if _SAFE_PART.fullmatch(text) else "*"


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    # Location and error code only: ``input`` and ``ctx`` can hold the submitted values.
    return [
        {
            "field": ".".join(_safe_part(p) for p in err.get("loc", ()) if p != "body") or "body",
            "code": str(err.get("type", "invalid")),
        }
        for err in exc.errors()
    ]


TOO_LARGE = (
    "El cuerpo de la solicitud supera el límite.",
    "The request body exceeds the limit.",
)


def install(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(request, exc.status, exc.type, exc.detail, exc.extra, exc.headers)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        type_ = _STATUS_TYPES.get(
            exc.status_code, "bad-request" if exc.status_code < 500 else "internal-error"
        )
        detail: str | tuple[str, str] | None = (
            exc.detail if isinstance(exc.detail, str) and exc.detail not in {"Not Found"} else None
        )
        if exc.status_code == 413:  # the body limit (api/app.py BodyLimit), found while reading
            detail = TOO_LARGE
        return problem_response(request, exc.status_code, type_, detail, headers=exc.headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(
            request,
            422,
            "validation-error",
            ("Revise los campos indicados.", "Check the fields listed."),
            extra={"errors": _field_errors(exc)},
        )

    async def on_shredded(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(
            request,
            410,
            "gone",
            ("Los datos de este caso fueron destruidos.", "This case's data was destroyed."),
        )

    async def on_busy(request: Request, exc: Exception) -> JSONResponse:
        if "locked" not in str(getattr(exc, "orig", "")):
            return await on_unhandled(request, exc)
        # The embedded database (SQLite, one writer at a time) stayed busy past every wait:
        # nothing was answered as done, so the same request with the same key may be retried.
        log.warning("database_busy", route=request.url.path)
        return problem_response(
            request,
            503,
            "not-ready",
            (
                "El sistema está ocupado; reintente con la misma Idempotency-Key.",
                "The system is busy; retry with the same Idempotency-Key.",
            ),
            headers={"Retry-After": "2"},
        )

    async def on_unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", error_type=type(exc).__name__, route=request.url.path)
        return problem_response(request, 500, "internal-error")

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(KeyShreddedError, on_shredded)
    app.add_exception_handler(OperationalError, on_busy)
    app.add_exception_handler(Exception, on_unhandled)
