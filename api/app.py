"""The FastAPI application: ``create_app()`` builds it; ``eri api`` serves it with uvicorn."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import problems, web
from api.deps import Services
from api.routes import audit as audit_routes
from api.routes import cases, codec, evidence, handoffs, health, protocols, tasks
from eri.auth import Verifier
from eri.logging import get_logger
from eri.runtime import open_runtime
from eri.settings import Settings, get_settings
from protocols.registry import load_definitions

log = get_logger("eri.api")


# The app's own middleware is plain ASGI rather than ``@app.middleware("http")``: Starlette's
# ``BaseHTTPMiddleware`` runs the rest of the app in a task of its own with memory streams,
# which cost more CPU per request than the route itself (bench/load.py, py-spy).


class _TooLarge(StarletteHTTPException):
    """Raised by :class:`BodyLimit` while a body is read: FastAPI passes an HTTPException
    through and the app's handler answers it (problem+json, api/problems.py)."""

    def __init__(self) -> None:
        super().__init__(413)


class BodyLimit:
    """413 for a body larger than ``max_bytes``: declared so (``Content-Length``, answered
    before it is read), or found so while it is read (a chunked body declares nothing).
    Evidence uploads (their own route) stream with their own limit.

    (FastAPI's own ``max_body_size`` answers a declared length in plain text, whatever the
    app's handlers say, so it is not used.)"""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].endswith("/evidence"):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            refusal = problems.problem_response(
                Request(scope), 413, "payload-too-large", problems.TOO_LARGE
            )
            await refusal(scope, receive, send)
            return
        received = 0

        async def counting() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        await self.app(scope, counting, send)


class RequestContext:
    """A request id for every request: bound to the logs while it runs, in the answer's
    ``X-Request-Id``, and one ``request`` log line when the answer starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = "req_" + uuid.uuid4().hex[:16]
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = scope.get("route")
                log.info(
                    "request",
                    request_id=request_id,
                    method=scope["method"],
                    route=getattr(route, "path", "unmatched"),
                    status=message["status"],
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                )
                MutableHeaders(scope=message)["X-Request-Id"] = request_id
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        load_definitions()
        async with open_runtime(settings) as rt:
            app.state.services = Services(
                settings, rt.engine, rt.sessions, Verifier(settings), rt.keyring
            )
            yield

    app = FastAPI(
        title="ERI",
        summary="Immediate response to human trafficking: cases, tasks, audit, handoffs",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        responses=problems.documented_errors(),
    )
    problems.install(app)
    app.add_middleware(GZipMiddleware, minimum_size=500)
    if settings.cors_origins:
        # Only the Temporal Web UI calls across origins (the codec endpoint).
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["POST"],
            allow_headers=["Authorization", "Content-Type", "X-Namespace"],
            allow_credentials=False,
            max_age=600,
        )

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContext)

    app.include_router(health.router)
    app.include_router(codec.router)
    app.include_router(protocols.router)
    app.include_router(cases.router)
    app.include_router(tasks.router)
    app.include_router(audit_routes.router)
    app.include_router(evidence.router)
    app.include_router(handoffs.router)
    web.install(app)  # the pages (api/web), after problems.install: errors under /web are pages
    return app
