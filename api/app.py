"""The FastAPI application: ``create_app()`` builds it; ``eri api`` serves it with uvicorn."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware

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

    @app.middleware("http")
    async def body_limit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # JSON bodies are small; evidence uploads (their own route) stream with their own limit.
        declared = request.headers.get("content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > settings.max_body_bytes
            and not request.url.path.endswith("/evidence")
        ):
            return problems.problem_response(
                request,
                413,
                "payload-too-large",
                (
                    f"El cuerpo supera {settings.max_body_bytes} bytes.",
                    f"The body exceeds {settings.max_body_bytes} bytes.",
                ),
            )
        return await call_next(request)

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = "req_" + uuid.uuid4().hex[:16]
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
        route = request.scope.get("route")
        log.info(
            "request",
            request_id=request_id,
            method=request.method,
            route=getattr(route, "path", "unmatched"),
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        response.headers["X-Request-Id"] = request_id
        return response

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
