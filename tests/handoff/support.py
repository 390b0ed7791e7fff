"""Helpers of the handoff tests: open a real gt-eri case, keys of a synthetic prosecutor."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from api.app import create_app
from api.deps import Services
from eri.runtime import Runtime
from eri.settings import Settings
from protocols.loader import load_protocol
from protocols.registry import register
from tests.conftest import worker_on_new_queue
from workflows.case import CaseInput, CaseWorkflow
from workflows.interpreter import Actor, Opened, SetFact

COORD = Actor(
    actor_id="usr_coord001", role="coordinator", institution="SVET", groups=["svet:coordinator"]
)


async def open_gt_case(client: Client, queue: str, facts: dict[str, Any]) -> str:
    protocol = load_protocol("gt-eri")
    digest = register(protocol)
    case_id = "case_" + uuid.uuid4().hex[:20]
    start = WithStartWorkflowOperation(
        CaseWorkflow.run,
        CaseInput(
            case_id=case_id,
            protocol_id=protocol.id,
            protocol_version=protocol.version,
            protocol_hash=digest,
            opened=Opened(at=datetime.now(UTC), actor=COORD, facts=facts),
        ),
        id=case_id,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        task_queue=queue,
    )
    await client.execute_update_with_start_workflow(
        CaseWorkflow.opened, start_workflow_operation=start
    )
    return case_id


async def set_fact(client: Client, case_id: str, fact: str, value: Any) -> None:
    handle = client.get_workflow_handle_for(CaseWorkflow.run, case_id)
    await handle.execute_update(
        CaseWorkflow.set_fact, SetFact(at=datetime.now(UTC), actor=COORD, fact=fact, value=value)
    )


async def idempotency_key(request: httpx.Request) -> None:
    """httpx request hook: a fresh Idempotency-Key on every POST that has none (one action
    per call, as a client that retries would send the same key again)."""
    if request.method == "POST" and "idempotency-key" not in request.headers:
        request.headers["Idempotency-Key"] = uuid.uuid4().hex


@dataclass
class Served:
    http: httpx.AsyncClient
    transport: httpx.ASGITransport
    settings: Settings
    services: Services
    queue: str


@asynccontextmanager
async def serving(client: Client, runtime: Runtime) -> AsyncIterator[Served]:
    """ERI's API and production worker (a task queue of its own) on the session's platform;
    ``http`` sends an Idempotency-Key with every change."""
    worker, queue = worker_on_new_queue(client, runtime)
    settings = runtime.settings.model_copy(
        update={
            "temporal_task_queue": queue,
            "temporal_address": client.service_client.config.target_host,
        }
    )
    app = create_app(settings)
    async with worker, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://eri.test",
            event_hooks={"request": [idempotency_key]},
        ) as http:
            yield Served(http, transport, settings, app.state.services, queue)
