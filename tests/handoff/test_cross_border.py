"""Two ERI deployments in one test (own databases, keyrings, KEKs, keys, Temporal namespaces,
clients and task queues): Guatemala hands a case to Honduras, Honduras verifies and imports it
under its own protocol, linked by pseudonym only, and acknowledges back; the Guatemalan
workflow completes."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI
from google.protobuf.duration_pb2 import Duration
from sqlalchemy import select
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.case import CaseActivities
from activities.handoff import HandoffActivities
from api.app import create_app
from eri import ledger, search_attributes
from eri.auth import Role, mint
from eri.canary import LeakScanner
from eri.crypto.codec import data_converter
from eri.crypto.wiring import keyring_from_settings
from eri.db import create_engine, session_factory, upgrade
from eri.db.models import HandoffInbox, LedgerEntry, VaultRecord
from eri.handoff import service
from eri.handoff.evidence import EvidenceStore
from eri.handoff.keys import institution_key_from_settings, recipient_key_from_settings
from eri.notify import LogChannel
from eri.runtime import Runtime
from eri.settings import Settings
from eri.vault import Vault
from tests.handoff.support import idempotency_key, open_gt_case
from workflows import WORKFLOWS
from workflows.handoff import HandoffWorkflow, handoff_workflow_id
from workflows.interpreter import CaseState

STATEMENT = "Relato sintético de una persona ficticia."
NAME = "Ximena Quetzal-Canarió"  # a synthetic person, named inside the evidence document
PHOTO = b"%PDF-synthetic " + NAME.encode() + b" " + b"synthetic-evidence" * 300


class Router(httpx.AsyncBaseTransport):
    """Routes requests by host to the in-process apps of the two deployments."""

    def __init__(self) -> None:
        self.apps: dict[str, httpx.ASGITransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.apps[request.url.host].handle_async_request(request)


@dataclass
class Deployment:
    host: str
    settings: Settings
    runtime: Runtime
    client: Client
    app: FastAPI
    http: httpx.AsyncClient

    def auth(self, role: Role, subject: str) -> dict[str, str]:
        token = mint(self.settings, subject, role, self.settings.institution)
        return {"Authorization": f"Bearer {token}", "Accept-Language": "en"}


async def ensure_namespace(client: Client, namespace: str) -> None:
    """A namespace of its own on the shared dev server, with ERI's search attributes."""
    if namespace == client.namespace:
        return
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86_400)
        )
    )
    for _ in range(100):  # the server's namespace cache takes a moment to learn it
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=namespace,
                    search_attributes={k.name: k.indexed_value_type for k in search_attributes.ALL},
                )
            )
            return
        except RPCError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"namespace {namespace} never became usable")


async def deployment(
    stack: AsyncExitStack,
    env: WorkflowEnvironment,
    router: Router,
    directory: Path,
    url: str,
    institution: str,
    host: str,
    namespace: str,
) -> Deployment:
    await asyncio.to_thread(directory.mkdir, mode=0o700)
    await asyncio.to_thread(upgrade, url)
    await ensure_namespace(env.client, namespace)
    target = env.client.service_client.config.target_host
    settings = Settings(
        temporal_namespace=namespace,
        data_dir=directory,
        keys_dir=directory,
        database_url=url,
        institution=institution,
        temporal_address=target,
        temporal_task_queue="q-" + uuid.uuid4().hex,
    )
    engine = create_engine(url)
    stack.push_async_callback(engine.dispose)
    sessions = session_factory(engine)
    runtime = Runtime(settings, engine, sessions, keyring_from_settings(settings, engine, sessions))
    client = await Client.connect(
        target, namespace=namespace, data_converter=data_converter(runtime.keyring)
    )
    handoff = HandoffActivities(runtime, LogChannel(), transport=router)
    worker = Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=WORKFLOWS,
        activities=[
            CaseActivities(runtime, LogChannel()).record_case_changes,
            handoff.prepare,
            handoff.seal,
            handoff.deliver,
            handoff.escalate,
            handoff.recall,
        ],
    )
    await stack.enter_async_context(worker)
    app = create_app(settings)
    await stack.enter_async_context(app.router.lifespan_context(app))
    app.state.services.peer_transport = router
    router.apps[host] = httpx.ASGITransport(app=app)
    http = await stack.enter_async_context(
        httpx.AsyncClient(
            transport=router,
            base_url=f"http://{host}",
            event_hooks={"request": [idempotency_key]},
        )
    )
    return Deployment(host, settings, runtime, client, app, http)


async def test_guatemala_hands_a_case_to_honduras_and_gets_the_ack_back(
    temporal_env: WorkflowEnvironment, database_url: str, tmp_path: Path
) -> None:
    router = Router()
    async with AsyncExitStack() as stack:
        gt = await deployment(
            stack,
            temporal_env,
            router,
            tmp_path / "gt",
            f"sqlite+aiosqlite:///{tmp_path / 'gt.db'}",
            "SVET",
            "gt.eri.test",
            temporal_env.client.namespace,
        )
        hn = await deployment(
            stack,
            temporal_env,
            router,
            tmp_path / "hn",
            database_url,
            "CICESCT",
            "hn.eri.test",
            "eri-hn-" + uuid.uuid4().hex[:8],
        )
        assert gt.client.namespace != hn.client.namespace
        assert gt.runtime.keyring.kek.key_id != hn.runtime.keyring.kek.key_id
        # Each side registers the other's public keys and endpoint; nothing else is shared.
        hn_endpoint, gt_endpoint = "http://hn.eri.test", "http://gt.eri.test"
        await service.register_party(
            gt.runtime.sessions,
            recipient_key_from_settings(hn.settings).public(),
            "CICESCT",
            endpoint=hn_endpoint,
        )
        await service.register_party(
            gt.runtime.sessions,
            institution_key_from_settings(hn.settings).public(),
            "CICESCT",
            endpoint=hn_endpoint,
        )
        await service.register_party(
            hn.runtime.sessions,
            institution_key_from_settings(gt.settings).public(),
            "SVET",
            endpoint=gt_endpoint,
        )

        gt_case = await open_gt_case(
            gt.client,
            gt.settings.temporal_task_queue,
            {
                "minor": False,
                "foreign_national": True,
                "cross_border": True,
                "consent": "given",
                "risk_level": "high",
            },
        )
        await Vault(gt.runtime.keyring, gt.runtime.sessions).put(
            gt_case, "statement.victim", STATEMENT
        )
        coord_gt = gt.auth(Role.COORDINATOR, "usr_gtcoord1")
        r = await gt.http.post(
            f"/v1/cases/{gt_case}/evidence",
            content=PHOTO,
            headers=coord_gt | {"Content-Type": "application/pdf"},
        )
        assert r.status_code == 201, r.text
        r = await gt.http.post(
            f"/v1/cases/{gt_case}/handoffs",
            json={
                "recipient_institution": "CICESCT",
                "purpose": "cross_border",
                "statements": ["statement.victim"],
            },
            headers=coord_gt,
        )
        assert r.status_code == 202, r.text
        handoff_id = r.json()["handoff_id"]

        coord_hn = hn.auth(Role.COORDINATOR, "usr_hncoord1")
        for _ in range(200):
            items = (await hn.http.get("/v1/handoffs/inbox", headers=coord_hn)).json()["items"]
            if items:
                break
            await asyncio.sleep(0.05)
        (item,) = items
        assert (item["handoff_id"], item["sender_institution"]) == (handoff_id, "SVET")

        r = await hn.http.post(
            f"/v1/handoffs/inbox/{handoff_id}/import",
            json={"protocol_id": "hn-cicesct"},
            headers=coord_hn,
        )
        assert r.status_code == 201, r.text
        hn_case = r.json()["case_id"]
        assert hn_case != gt_case
        assert r.json()["origin_pseudonym"] == service.pseudonym(gt_case, "CICESCT")

        # The acknowledgement went back; the Guatemalan workflow completes.
        handle = gt.client.get_workflow_handle_for(
            HandoffWorkflow.run, handoff_workflow_id(gt_case, handoff_id)
        )
        result = await asyncio.wait_for(handle.result(), 30)
        assert (result.status, result.basis) == ("acknowledged", "consent")

        # Honduras: its own protocol, facts minimised, linked by pseudonym only.
        state = await hn.client.get_workflow_handle(hn_case).query("state", result_type=CaseState)
        assert state.protocol_id == "hn-cicesct"
        assert state.facts == {
            "minor": False,
            "consent": "given",
            "risk_level": "high",
            "returned_from_abroad": True,
        }
        intake = await Vault(hn.runtime.keyring, hn.runtime.sessions).get(hn_case, "intake")
        assert intake == {
            "origin_pseudonym": service.pseudonym(gt_case, "CICESCT"),
            "statements": {"statement.victim": STATEMENT},
        }
        store = EvidenceStore(hn.runtime.keyring, hn.runtime.sessions, max_bytes=1 << 20)
        (ev,) = await store.list(hn_case)
        assert ev.sha256 == hashlib.sha256(PHOTO).hexdigest()
        async with hn.runtime.sessions() as s:
            case_ids = set((await s.execute(select(LedgerEntry.case_id))).scalars())
            case_ids |= set((await s.execute(select(VaultRecord.case_id))).scalars())
            inbox = await s.get(HandoffInbox, handoff_id)
        assert gt_case not in case_ids
        assert inbox is not None and inbox.status == "acknowledged"
        assert inbox.local_case_id == hn_case
        assert gt_case.encode() not in inbox.package

        gt_steps = [
            e.step_id
            for e in await ledger.entries(gt.runtime.sessions, case_id=gt_case)
            if e.action == "handoff.custody"
        ]
        assert gt_steps == [
            "evidence.received",
            "handoff.created:consent",
            "handoff.sealed",
            "handoff.delivered",
            "handoff.acknowledged",
        ]
        hn_steps = [
            (e.case_id, e.step_id)
            for e in await ledger.entries(hn.runtime.sessions)
            if e.action == "handoff.custody"
        ]
        assert hn_steps == [
            (None, "handoff.received"),
            (hn_case, "evidence.received"),
            (hn_case, "handoff.opened"),
            (hn_case, "handoff.imported"),
            (hn_case, "handoff.acknowledged"),
        ]
        # A second package, recalled before Honduras opened it: Honduras refuses to open it.
        r = await gt.http.post(
            f"/v1/cases/{gt_case}/handoffs",
            json={"recipient_institution": "CICESCT", "purpose": "cross_border"},
            headers=coord_gt,
        )
        assert r.status_code == 202, r.text
        second = r.json()["handoff_id"]
        for _ in range(200):
            items = (await hn.http.get("/v1/handoffs/inbox", headers=coord_hn)).json()["items"]
            if len(items) == 2:
                break
            await asyncio.sleep(0.05)
        r = await gt.http.post(f"/v1/cases/{gt_case}/handoffs/{second}/recall", headers=coord_gt)
        assert r.status_code == 200, r.text
        async with hn.runtime.sessions() as s:
            recalled = await s.get(HandoffInbox, second)
            assert recalled is not None and recalled.status == "recalled"
        r = await hn.http.post(
            f"/v1/handoffs/inbox/{second}/import",
            json={"protocol_id": "hn-cicesct"},
            headers=coord_hn,
        )
        assert r.status_code == 410, r.text
        handle = gt.client.get_workflow_handle_for(
            HandoffWorkflow.run, handoff_workflow_id(gt_case, second)
        )
        assert (await asyncio.wait_for(handle.result(), 30)).status == "recalled"
        # A recall of the first (opened and acknowledged) package is refused.
        r = await gt.http.post(
            f"/v1/cases/{gt_case}/handoffs/{handoff_id}/recall", headers=coord_gt
        )
        assert r.status_code == 409 and r.json()["code"] == "not_recallable"

        # Neither database holds the statement or the name in the clear (any encoding).
        scanner = LeakScanner({"statement": STATEMENT, "name": NAME})
        for deployment_ in (gt, hn):
            url = deployment_.settings.effective_database_url
            assert await scanner.scan_database(url) == [], url
        assert scanner.scan_sqlite_files(tmp_path / "gt.db") == []

        # A malformed package is refused, naming what failed.
        r = await hn.http.post(
            "/v1/handoffs/inbound",
            content=b"ERIHNDF\x00\x00\x01garbage",
            headers={"Content-Type": "application/vnd.eri.handoff"},
        )
        assert r.status_code == 422 and r.json()["part"] in ("header", "package")
