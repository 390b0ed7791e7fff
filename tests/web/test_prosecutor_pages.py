"""The prosecutor's inbox pages, on the real dev server and database: a package handed off by
a real HandoffWorkflow is listed, downloaded, acknowledged (the notice signed offline) or
rejected with a reason; CSRF, double taps, forged notices and the wrong people are refused;
every state change is a custody entry in the ledger."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import Response
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.deps import Services
from api.web import session
from eri import ledger
from eri.auth import Principal, Role, mint
from eri.handoff import service
from eri.handoff.keys import InstitutionPrivateKey, RecipientPrivateKey
from eri.handoff.notices import make_ack
from eri.handoff.package import verify_package
from eri.runtime import Runtime
from eri.settings import Settings
from tests.conftest import worker_on_new_queue
from tests.handoff.support import idempotency_key, open_gt_case
from workflows.handoff import HandoffWorkflow, handoff_workflow_id

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
IDEM = re.compile(r'name="idem" value="([^"]+)"')


@dataclass
class Pages:
    http: httpx.AsyncClient  # bearer-token API client (the sending side)
    transport: httpx.ASGITransport
    settings: Settings
    services: Services
    queue: str
    client: Client

    async def browser(self, principal: Principal) -> httpx.AsyncClient:
        """A client with a web session of ``principal`` (as after signing in)."""
        response = Response()
        await session.start(self.services, response, principal)
        name, _, value = response.headers["set-cookie"].split(";", 1)[0].partition("=")
        browser = httpx.AsyncClient(
            transport=self.transport,
            base_url="http://eri.test",
            headers={"Accept-Language": "en"},
        )
        browser.cookies.set(name, value)
        return browser

    def bearer(self, role: Role, institution: str, subject: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + mint(self.settings, subject, role, institution)}


@pytest.fixture
async def pages(temporal_env: WorkflowEnvironment, runtime: Runtime) -> AsyncIterator[Pages]:
    worker, queue = worker_on_new_queue(temporal_env.client, runtime)
    settings = runtime.settings.model_copy(
        update={
            "temporal_task_queue": queue,
            "temporal_address": temporal_env.client.service_client.config.target_host,
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
            yield Pages(http, transport, settings, app.state.services, queue, temporal_env.client)


async def hand_off(pages: Pages, office: str) -> tuple[str, str]:
    """A gt-eri case (consent given) handed off to ``office`` by an SVET coordinator, once it
    is in the office's inbox: (case id, handoff id)."""
    case_id = await open_gt_case(pages.client, pages.queue, {"minor": False, "consent": "given"})
    coord = pages.bearer(Role.COORDINATOR, "SVET", "usr_coord001")
    r = await pages.http.post(
        f"/v1/cases/{case_id}/handoffs",
        json={"recipient_institution": office, "purpose": "prosecution"},
        headers=coord,
    )
    assert r.status_code == 202, r.text
    handoff_id: str = r.json()["handoff_id"]
    reader = pages.bearer(Role.PROSECUTOR, office, "usr_fisc0000")
    for _ in range(200):
        r = await pages.http.get("/v1/handoffs/inbox", headers=reader)
        if any(i["handoff_id"] == handoff_id for i in r.json()["items"]):
            return case_id, handoff_id
        await asyncio.sleep(0.05)
    raise AssertionError("the package never reached the inbox")


async def custody_steps(pages: Pages, case_id: str) -> list[str]:
    return [
        str(e.step_id)
        for e in await ledger.entries(pages.services.sessions, case_id=case_id)
        if e.action == "handoff.custody"
    ]


def form_values(html: str, action: str) -> dict[str, str]:
    """The hidden fields (csrf, idem) of the form posting to ``action``."""
    start = html.index(f'action="{action}"')
    form = html[start : html.index("</form>", start)]
    csrf, idem = CSRF.search(form), IDEM.search(form)
    assert csrf is not None and idem is not None
    return {"csrf": csrf.group(1), "idem": idem.group(1)}


async def test_acknowledge_with_a_signed_notice(pages: Pages) -> None:
    office = "MP-WEB1"
    signing = InstitutionPrivateKey.generate()
    await service.register_party(
        pages.services.sessions, RecipientPrivateKey.generate().public(), office
    )
    await service.register_party(pages.services.sessions, signing.public(), office)
    case_id, handoff_id = await hand_off(pages, office)
    prosecutor = Principal("usr_fisc0101", Role.PROSECUTOR, office)
    page_url = f"/web/handoffs/{handoff_id}"

    async with await pages.browser(prosecutor) as browser:
        r = await browser.get("/web/handoffs")
        assert r.status_code == 200, r.text
        assert f'href="{page_url}"' in r.text and pages.settings.institution in r.text
        assert r.headers["cache-control"] == "no-store"
        r = await browser.get(page_url)
        assert r.status_code == 200
        assert f"<title>Package {handoff_id} · ERI</title>" in r.text
        r = await browser.get(f"{page_url}/package")
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        package = r.content
        assert verify_package(package).package_id == handoff_id
        assert (await custody_steps(pages, case_id))[-1] == "handoff.downloaded"

        r = await browser.get(page_url)
        fields = form_values(r.text, f"{page_url}/ack")
        notice = make_ack(verify_package(package), signing, office)
        # without the CSRF token: refused, nothing recorded
        r = await browser.post(
            f"{page_url}/ack",
            data={"idem": fields["idem"]},
            files={"notice": ("a.ack.json", notice, "application/json")},
        )
        assert r.status_code == 403
        # a notice signed by a key not registered for the office: the page says why
        forged = make_ack(verify_package(package), InstitutionPrivateKey.generate(), office)
        r = await browser.post(
            f"{page_url}/ack",
            data=fields,
            files={"notice": ("a.ack.json", forged, "application/json")},
        )
        assert r.status_code == 422 and "does not verify" in r.text
        assert (await custody_steps(pages, case_id))[-1] == "handoff.downloaded"
        fields = form_values(r.text, f"{page_url}/ack")  # a fresh key for the next try
        for _ in range(2):  # a double tap: the same form twice
            r = await browser.post(
                f"{page_url}/ack",
                data=fields,
                files={"notice": ("a.ack.json", notice, "application/json")},
            )
            assert r.status_code == 303 and r.headers["location"] == page_url
        r = await browser.get(page_url)
        assert "Acknowledgement recorded." in r.text and f'action="{page_url}/ack"' not in r.text

    handle = pages.client.get_workflow_handle_for(
        HandoffWorkflow.run, handoff_workflow_id(case_id, handoff_id)
    )
    assert (await handle.result()).status == "acknowledged"
    steps = await custody_steps(pages, case_id)
    assert steps[-2:] == ["handoff.downloaded", "handoff.acknowledged"]
    assert steps.count("handoff.acknowledged") == 1


async def test_reject_with_a_reason_from_the_list(pages: Pages) -> None:
    office = "MP-WEB2"
    await service.register_party(
        pages.services.sessions, RecipientPrivateKey.generate().public(), office
    )
    case_id, handoff_id = await hand_off(pages, office)
    page_url = f"/web/handoffs/{handoff_id}"
    async with await pages.browser(Principal("usr_fisc0102", Role.PROSECUTOR, office)) as browser:
        r = await browser.get(page_url)
        fields = form_values(r.text, f"{page_url}/reject")
        r = await browser.post(f"{page_url}/reject", data={**fields, "reason": "Nombre Apellido"})
        assert r.status_code == 422 and "Choose a reason from the list." in r.text
        assert "Nombre" not in r.text
        fields = form_values(r.text, f"{page_url}/reject")
        r = await browser.post(f"{page_url}/reject", data={**fields, "reason": "incomplete"})
        assert r.status_code == 303
        r = await browser.get(page_url)
        assert "Rejection recorded." in r.text and "Information or evidence is missing" in r.text
        # the same form again, changed: refused with a clear message
        r = await browser.post(f"{page_url}/reject", data={**fields, "reason": "duplicate"})
        assert r.status_code == 422 and "This form was sent already." in r.text
        # a new form on an answered package: refused, the package says it was answered
        fresh = {**fields, "idem": "web-" + uuid.uuid4().hex, "reason": "duplicate"}
        r = await browser.post(f"{page_url}/reject", data=fresh)
        assert r.status_code == 409 and "Already answered." in r.text
    handle = pages.client.get_workflow_handle_for(
        HandoffWorkflow.run, handoff_workflow_id(case_id, handoff_id)
    )
    result = await handle.result()
    assert (result.status, result.reason) == ("rejected", "incomplete")
    entries = [
        e
        for e in await ledger.entries(pages.services.sessions, case_id=case_id)
        if e.step_id == "handoff.rejected"
    ]
    assert [e.outcome for e in entries] == ["rejected"]


async def test_only_the_addressed_office_and_never_other_roles(pages: Pages) -> None:
    office = "MP-WEB3"
    await service.register_party(
        pages.services.sessions, RecipientPrivateKey.generate().public(), office
    )
    case_id, handoff_id = await hand_off(pages, office)
    page_url = f"/web/handoffs/{handoff_id}"
    other = Principal("usr_fisc0103", Role.PROSECUTOR, "MP-OTHER")
    committee = Principal("usr_comi0103", Role.COMMITTEE, "CIT")
    before = len(await ledger.entries(pages.services.sessions))
    async with await pages.browser(other) as browser:
        r = await browser.get("/web/handoffs")
        assert r.status_code == 200 and handoff_id not in r.text
        for url in (page_url, f"{page_url}/package"):
            r = await browser.get(url)
            assert r.status_code == 404 and "text/html" in r.headers["content-type"]
    async with await pages.browser(committee) as browser:
        r = await browser.get("/web/handoffs")
        assert r.status_code == 403 and "not allowed" in r.text
        r = await browser.get(page_url)
        assert r.status_code == 404
    denials = [
        (e.step_id, e.actor_role, e.actor_institution)
        for e in (await ledger.entries(pages.services.sessions))[before:]
        if e.action == "access.denied"
    ]
    assert denials == [
        ("handoff.inbox", "prosecutor", "MP-OTHER"),
        ("handoff.inbox", "prosecutor", "MP-OTHER"),
        ("handoff.inbox", "committee", "CIT"),
        ("handoff.inbox", "committee", "CIT"),
    ]
    # nothing was downloaded by anyone
    assert "handoff.downloaded" not in await custody_steps(pages, case_id)
