"""The Web UI's codec endpoint against the real dev server, worker, codec and databases."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from eri import ledger
from eri.auth import Role, mint
from eri.crypto.keys import Keyring
from eri.ledger import Action, Outcome
from eri.settings import Settings
from tests.support.canary_workflow import CanaryWorkflow, canary_echo, canary_fail

NAME = "Ximena Quetzal-Canarió"


@dataclass
class Api:
    client: httpx.AsyncClient
    settings: Settings
    services: object


@pytest.fixture
async def api(
    temporal_env: WorkflowEnvironment, keyring: Keyring, session_tmp: Path, tmp_path: Path
) -> AsyncIterator[Api]:
    # The API shares the session's key store (as ERI's processes share the database).
    settings = Settings(
        data_dir=tmp_path,
        keys_dir=session_tmp,
        database_url=f"sqlite+aiosqlite:///{session_tmp / 'keys.db'}",
        temporal_address=temporal_env.client.service_client.config.target_host,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://eri.test") as client:
            yield Api(client, settings, app.state.services)


async def _case_input_payloads(env: WorkflowEnvironment, case_id: str) -> dict[str, object]:
    """Run a case workflow to its end; return its encrypted input payloads as the UI sends them."""
    queue = "q-" + uuid.uuid4().hex
    intake = {"name": NAME, "passport": "XQ7719034C", "statement": "Relato sintético."}
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[CanaryWorkflow],
        activities=[canary_echo, canary_fail],
    ):
        handle = await env.client.start_workflow(
            CanaryWorkflow.run, intake, id=case_id, task_queue=queue
        )
        await handle.signal(CanaryWorkflow.finish)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    raw = await env.client.get_workflow_handle(case_id).fetch_history()
    started = next(
        e for e in raw.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    )
    payloads = started.workflow_execution_started_event_attributes.input
    return json_format.MessageToDict(payloads)


def _bearer(settings: Settings, role: Role, institution: str = "SVET") -> dict[str, str]:
    return {
        "Authorization": "Bearer " + mint(settings, f"usr_{role.value[:4]}0001", role, institution)
    }


async def test_coordinator_decodes_and_the_decode_is_audited(
    temporal_env: WorkflowEnvironment, api: Api
) -> None:
    case_id = "case_codec" + uuid.uuid4().hex[:12]
    body = await _case_input_payloads(temporal_env, case_id)
    assert NAME.encode() not in json.dumps(body).encode()
    r = await api.client.post(
        "/codec/decode", json=body, headers=_bearer(api.settings, Role.COORDINATOR)
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    (payload,) = r.json()["payloads"]
    assert json.loads(base64.b64decode(payload["data"]))["name"] == NAME
    entries = await ledger.entries(api.services.sessions, case_id=case_id)  # type: ignore[attr-defined]
    assert [(e.action, e.actor_role, e.outcome) for e in entries] == [
        (Action.PAYLOAD_DECODED, "coordinator", Outcome.OK)
    ]


@pytest.mark.parametrize("role", [Role.COMMITTEE, Role.PROSECUTOR, Role.RESPONDER, Role.ADMIN])
async def test_other_roles_decode_nothing_and_the_denial_is_audited(
    temporal_env: WorkflowEnvironment, api: Api, role: Role
) -> None:
    case_id = "case_codec" + uuid.uuid4().hex[:12]
    body = await _case_input_payloads(temporal_env, case_id)
    r = await api.client.post("/codec/decode", json=body, headers=_bearer(api.settings, role))
    assert r.status_code == 403
    assert NAME not in r.text
    assert "payloads" not in r.json()
    entries = await ledger.entries(api.services.sessions, case_id=case_id)  # type: ignore[attr-defined]
    assert [(e.action, e.outcome, e.actor_role) for e in entries] == [
        (Action.ACCESS_DENIED, Outcome.DENIED, role.value)
    ]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer forged.token.value"}])
async def test_unauthenticated_calls_decode_nothing(
    temporal_env: WorkflowEnvironment, api: Api, headers: dict[str, str]
) -> None:
    body = await _case_input_payloads(temporal_env, "case_codec" + uuid.uuid4().hex[:12])
    r = await api.client.post("/codec/decode", json=body, headers=headers)
    assert r.status_code == 401
    assert NAME not in r.text


async def test_shredded_case_answers_410(
    temporal_env: WorkflowEnvironment, api: Api, keyring: Keyring
) -> None:
    case_id = "case_codec" + uuid.uuid4().hex[:12]
    body = await _case_input_payloads(temporal_env, case_id)
    await api.services.keyring.shred_case(case_id)  # type: ignore[attr-defined]
    r = await api.client.post(
        "/codec/decode", json=body, headers=_bearer(api.settings, Role.COORDINATOR)
    )
    assert r.status_code == 410
    assert NAME not in r.text


async def test_admin_round_trips_system_payloads(api: Api) -> None:
    encoding, data = base64.b64encode(b"json/plain").decode(), base64.b64encode(b'"ping"').decode()
    plain = {"payloads": [{"metadata": {"encoding": encoding}, "data": data}]}
    enc = await api.client.post(
        "/codec/encode", json=plain, headers=_bearer(api.settings, Role.ADMIN)
    )
    assert enc.status_code == 200, enc.text
    assert enc.json() != plain
    dec = await api.client.post(
        "/codec/decode", json=enc.json(), headers=_bearer(api.settings, Role.ADMIN)
    )
    assert dec.status_code == 200
    assert dec.json() == plain


@pytest.mark.parametrize(
    ("content", "status"),
    [(b"{not json", 400), (b'{"payloads": "x"}', 400), (b"x" * (8 * 1024 * 1024 + 1), 413)],
)
async def test_bad_bodies_get_a_clear_4xx(api: Api, content: bytes, status: int) -> None:
    headers = {
        **_bearer(api.settings, Role.COORDINATOR),
        "content-type": "application/json",
        "Accept-Language": "en",
    }
    r = await api.client.post("/codec/decode", content=content, headers=headers)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"]


async def test_cors_admits_only_the_web_ui(api: Api) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    ui = f"http://127.0.0.1:{api.settings.temporal_ui_port}"
    ok = await api.client.options("/codec/decode", headers={**preflight, "Origin": ui})
    assert ok.headers.get("access-control-allow-origin") == ui
    other = await api.client.options(
        "/codec/decode", headers={**preflight, "Origin": "https://evil.invalid"}
    )
    assert "access-control-allow-origin" not in other.headers
