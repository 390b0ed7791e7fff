"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

from api.deps import ServicesDep
from api.problems import problem_response

router = APIRouter(tags=["health"])
CHECK_TIMEOUT = 3.0


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _check_database(services: ServicesDep) -> None:
    async with services.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check_temporal(services: ServicesDep) -> None:
    client = await services.temporal_client(timeout=CHECK_TIMEOUT)
    await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=services.settings.temporal_namespace),
        timeout=timedelta(seconds=CHECK_TIMEOUT),
    )


@router.get(
    "/readyz",
    summary="Temporal and the database are reachable",
    responses={503: {"description": "A dependency is not reachable (problem+json names which)"}},
)
async def readyz(request: Request, services: ServicesDep) -> JSONResponse:
    checks = {"database": _check_database, "temporal": _check_temporal}
    results = await asyncio.gather(
        *(asyncio.wait_for(check(services), CHECK_TIMEOUT) for check in checks.values()),
        return_exceptions=True,
    )
    down = [
        name for name, res in zip(checks, results, strict=True) if isinstance(res, BaseException)
    ]
    if down:
        names = ", ".join(down)
        return problem_response(
            request,
            503,
            "not-ready",
            (f"Sin conexión con: {names}", f"Not reachable: {names}"),
            extra={"unavailable": down},
        )
    return JSONResponse({"status": "ready", "checks": {name: "ok" for name in checks}})
