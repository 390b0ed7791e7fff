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

from api import problems
from api.deps import Services
from api.routes import audit, codec, health
from eri.auth import Verifier
from eri.logging import get_logger
from eri.runtime import open_runtime
from eri.settings import Settings, get_settings

log = get_logger("eri.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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
    app.include_router(audit.router)
    return app
