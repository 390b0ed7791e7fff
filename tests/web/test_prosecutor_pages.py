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
from pathlib import Path

import httpx
import pytest
from fastapi import Response
from playwright.async_api import Browser
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.deps import Services
from api.web import session
from eri import ledger, users
from eri.auth import Principal, Role, mint
from eri.handoff import service
from eri.handoff.keys import (
    InstitutionPrivateKey,
    RecipientPrivateKey,
    institution_key_from_settings,
)
from eri.handoff.notices import make_ack
from eri.handoff.package import open_package, verify_package
from eri.runtime import Runtime
from eri.settings import Settings
from tests.api.casework_support import add_member
from tests.handoff.support import open_gt_case, serving
from tests.web.browser_support import PASSWORD, Recorder, WebApp, settled, shot, sign_in
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
    async with serving(temporal_env.client, runtime) as s:
        yield Pages(s.http, s.transport, s.settings, s.services, s.queue, temporal_env.client)


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


# --- in a real browser ------------------------------------------------------------------------


async def _browser_handoff(web: WebApp, env: WorkflowEnvironment, office: str) -> tuple[str, str]:
    """A consented gt-eri case handed to ``office`` over the API by SVET's coordinator; once
    the package is in the office's inbox: (case id, handoff id)."""
    team = web.teams["gt-eri"]
    case_id = await open_gt_case(
        env.client, web.settings.temporal_task_queue, {"minor": False, "consent": "given"}
    )
    r = await team.client.post(
        f"/v1/cases/{case_id}/handoffs",
        json={"recipient_institution": office, "purpose": "prosecution"},
        headers=team.idem("coord.svet"),
    )
    assert r.status_code == 202, r.text
    handoff_id: str = r.json()["handoff_id"]
    for _ in range(200):
        try:
            row = await service.inbox_row(web.services.sessions, handoff_id)
            if row.status == "delivered":
                return case_id, handoff_id
        except service.HandoffError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the package never reached the inbox")


async def _prosecutor(web: WebApp, name: str, office: str) -> None:
    team = web.teams["gt-eri"]
    if name not in team.members:
        await add_member(team, name, "prosecutor", office, [])
        await users.set_password(web.services.sessions, web.login("gt-eri", name), PASSWORD)


async def test_a_prosecutor_acknowledges_a_package_on_a_phone(
    web: WebApp, browser: Browser, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    office = "MP-FETP-W2"
    opening, signing = RecipientPrivateKey.generate(), InstitutionPrivateKey.generate()
    await service.register_party(web.services.sessions, opening.public(), office)
    await service.register_party(web.services.sessions, signing.public(), office)
    await _prosecutor(web, "fiscal.fetp", office)
    case_id, handoff_id = await _browser_handoff(web, temporal_env, office)
    package_url = f"/web/handoffs/{handoff_id}"

    recorder = Recorder()
    page = await sign_in(web, browser, "gt-eri", "fiscal.fetp", recorder=recorder)
    await settled(page, re.compile(r".*/web/handoffs$"))  # the prosecutor's home
    assert await recorder.title(page) == "Paquetes recibidos · ERI"
    await shot(page, "prosecutor-inbox", full=False)
    await page.click(f"a[href='{package_url}']")
    await settled(page, re.compile(f".*{package_url}$"))
    assert await recorder.title(page) == f"Paquete {handoff_id} · ERI"
    await shot(page, "prosecutor-package")

    async with page.expect_download() as got:
        await page.click(f"a[href='{package_url}/package']")
    saved = tmp_path / f"{handoff_id}.erih"
    await (await got.value).save_as(saved)
    # offline, on the office's computer: open it with the office's key, sign the ack
    package = saved.read_bytes()
    sender = institution_key_from_settings(web.settings).public()
    opened = open_package(package, opening, trusted=[sender])
    assert opened.json("facts")["consent"] == "given"
    notice = tmp_path / f"{handoff_id}.erih.ack.json"
    notice.write_bytes(make_ack(opened.verified, signing, office))

    await page.reload()
    await page.set_input_files("#notice", str(notice))
    await page.click("button:has-text('Enviar el acuse')")  # htmx posts it, then swaps
    await page.locator("p[role=status]", has_text="Acuse registrado.").wait_for()
    assert page.url.endswith(package_url)
    assert await page.locator("#notice").count() == 0  # answered: no more forms
    await shot(page, "prosecutor-acknowledged", full=False)

    handle = temporal_env.client.get_workflow_handle_for(
        HandoffWorkflow.run, handoff_workflow_id(case_id, handoff_id)
    )
    assert (await handle.result()).status == "acknowledged"
    steps = [
        e.step_id
        for e in await ledger.entries(web.services.sessions, case_id=case_id)
        if e.action == "handoff.custody"
    ]
    assert steps[-2:] == ["handoff.downloaded", "handoff.acknowledged"]
    await recorder.settle()
    await page.context.close()
    for url, headers, _ in recorder.responses:
        if "/web/static/" not in url:
            assert headers.get("cache-control") == "no-store", url
    assert all(re.search(r"/web/handoffs/(?!hnd_)", u) is None for u in recorder.urls)


async def test_a_prosecutor_rejects_a_package_with_a_reason(
    web: WebApp, browser: Browser, temporal_env: WorkflowEnvironment
) -> None:
    office = "MP-FETP-W3"
    await service.register_party(
        web.services.sessions, RecipientPrivateKey.generate().public(), office
    )
    await _prosecutor(web, "fiscal.rechazo", office)
    case_id, handoff_id = await _browser_handoff(web, temporal_env, office)
    package_url = f"/web/handoffs/{handoff_id}"
    page = await sign_in(web, browser, "gt-eri", "fiscal.rechazo", javascript=False)
    await page.goto(web.base_url + package_url)
    # without JavaScript: a plain form post and a redirect (a reason outside the list is
    # refused by the server: test_reject_with_a_reason_from_the_list)
    await page.select_option("#reason", "wrong_jurisdiction")
    await shot(page, "prosecutor-reject", full=False)
    await page.click("button:has-text('Rechazar el paquete')")
    await settled(page, re.compile(f".*{package_url}$"))
    text = await page.inner_text("main")
    assert "Rechazo registrado." in text and "No es de nuestra competencia" in text
    await shot(page, "prosecutor-rejected", full=False)
    await page.context.close()
    handle = temporal_env.client.get_workflow_handle_for(
        HandoffWorkflow.run, handoff_workflow_id(case_id, handoff_id)
    )
    result = await handle.result()
    assert (result.status, result.reason) == ("rejected", "wrong_jurisdiction")
