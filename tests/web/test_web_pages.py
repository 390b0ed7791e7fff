"""The pages' safety and behaviour in a real browser: sign-in, CSRF, expiry, roles, caching,
stale pages, validation, double taps, language, quick exit. Each change is checked where it
lands (the read model, the ledger, the session table)."""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, datetime, timedelta

import httpx
from playwright.async_api import Browser, Page
from sqlalchemy import func, select, update

from api.web import session as web_session
from eri import users
from eri.db.models import LedgerEntry, TaskRow, WebSession
from eri.settings import Settings
from tests.api.casework_support import GT_ADULT, do_task, open_case
from tests.web.browser_support import (
    PASSWORD,
    WebApp,
    new_context,
    next_inbox_page,
    settled,
    shot,
    sign_in,
)

DETECTION_BY = "ts.pgn"  # pgn:social_worker is one of the detection step's groups


async def _new_detection_task(web: WebApp) -> tuple[str, str]:
    """A fresh Guatemalan case (opened over the JSON API); (case id, its detection task id)."""
    opened = await open_case(web.teams["gt-eri"], "coord.svet", GT_ADULT)
    return opened["case_id"], opened["open_tasks"][0]["task_id"]


async def _ledger_count(web: WebApp, action: str, **where: str | None) -> int:
    stmt = select(func.count()).select_from(LedgerEntry).where(LedgerEntry.action == action)
    for column, value in where.items():
        stmt = stmt.where(getattr(LedgerEntry, column) == value)
    async with web.services.sessions() as session:
        return int((await session.execute(stmt)).scalar_one())


async def _task(web: WebApp, task_id: str) -> TaskRow:
    async with web.services.sessions() as session:
        row = await session.get(TaskRow, task_id)
    assert row is not None
    return row


async def _form_fields(page: Page, selector: str) -> dict[str, str]:
    values: dict[str, str] = await page.eval_on_selector(
        selector,
        "f => Object.fromEntries(new FormData(f).entries())",
    )
    return values


async def test_sign_in_refuses_a_wrong_password_and_records_both(
    web: WebApp, browser: Browser
) -> None:
    context = await new_context(browser)
    page = await context.new_page()
    response = await page.goto(web.base_url + "/web/inbox")
    assert response is not None and "/web/signin?next=/web/inbox" in page.url
    await shot(page, "signin")
    refused = await _ledger_count(web, "session.signed_in", outcome="denied")
    await page.fill("#name", web.login("gt-eri", "psi.svet"))
    await page.fill("#password", "not the password")
    await page.click("button[type=submit]")
    await page.wait_for_selector(".notice.error")
    assert "Usuario o contraseña incorrectos" in await page.inner_text(".notice.error")
    assert await _ledger_count(web, "session.signed_in", outcome="denied") == refused + 1
    await page.fill("#name", web.login("gt-eri", "psi.svet"))
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await settled(page, re.compile(r".*/web/inbox$"))  # back where the sign-in was asked
    user = await users.get(web.services.sessions, web.login("gt-eri", "psi.svet"))
    assert await _ledger_count(web, "session.signed_in", actor_id=user.user_id) >= 1
    cookies = {c["name"]: c for c in await context.cookies()}
    assert cookies["eri_session"]["httpOnly"] and cookies["eri_session"]["sameSite"] == "Lax"
    await context.close()


def test_session_cookies_are_secure_outside_development() -> None:
    production = Settings(
        environment="production",
        database_url="postgresql+asyncpg://eri@db/eri",
        kek="c3ludGhldGljLWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY=",
    )
    assert web_session.cookie_secure(production)
    assert not web_session.cookie_secure(Settings())


async def test_a_one_time_link_signs_in_once(web: WebApp, browser: Browser) -> None:
    token = await users.create_link(
        web.services.sessions, web.login("gt-eri", "agente.pnc"), timedelta(minutes=5)
    )
    context = await new_context(browser)
    page = await context.new_page()
    await page.goto(f"{web.base_url}/web/signin/link?token={token}")
    assert await context.cookies() == [] or all(
        c["name"] != "eri_session" for c in await context.cookies()
    ), "a link preview (GET) must not sign in"
    await page.click("main button[type=submit]")
    await settled(page, re.compile(r".*/web/inbox$"))
    await context.clear_cookies()
    await page.goto(f"{web.base_url}/web/signin/link?token={token}")
    await page.click("main button[type=submit]")
    await page.wait_for_selector(".notice.error")
    assert "ya se usó o caducó" in await page.inner_text(".notice.error")
    await context.close()


async def test_a_post_without_the_sessions_csrf_token_is_refused(
    web: WebApp, browser: Browser
) -> None:
    _case_id, task_id = await _new_detection_task(web)
    page = await sign_in(web, browser, "gt-eri", DETECTION_BY)
    await page.goto(f"{web.base_url}/web/tasks/{task_id}")
    fields = await _form_fields(page, f"form[action='/web/tasks/{task_id}/claim']")
    assert fields["csrf"]
    url = f"{web.base_url}/web/tasks/{task_id}/claim"
    for csrf in ("0" * 64, None):
        form = (
            {**fields, "csrf": csrf} if csrf else {k: v for k, v in fields.items() if k != "csrf"}
        )
        refused = await page.request.post(url, form=form, max_redirects=0)
        assert refused.status == 403
        assert "El formulario caducó" in await refused.text()
    # Another session's token is no better than none.
    other = await sign_in(web, browser, "gt-eri", "psi.svet")
    theirs = await _form_fields(other, "form[action='/web/signout']")
    refused = await page.request.post(url, form={**fields, "csrf": theirs["csrf"]}, max_redirects=0)
    assert refused.status == 403
    assert (await _task(web, task_id)).assignee is None  # nothing changed
    accepted = await page.request.post(url, form=fields, max_redirects=0)
    assert accepted.status == 303
    assert (await _task(web, task_id)).assignee is not None
    await page.context.close()
    await other.context.close()


async def test_a_session_ends_after_inactivity(web: WebApp, browser: Browser) -> None:
    page = await sign_in(web, browser, "gt-eri", "psi.svet")
    cookie = next(c for c in await page.context.cookies() if c["name"] == "eri_session")
    key = hashlib.sha256(cookie["value"].encode()).hexdigest()
    idle = timedelta(minutes=web.settings.web_session_idle_minutes)
    # Just inside the limit the session lives (and the visit renews it) ...
    async with web.services.sessions.begin() as s:
        await s.execute(
            update(WebSession)
            .where(WebSession.session_hash == key)
            .values(last_seen_at=datetime.now(UTC) - idle + timedelta(seconds=30))
        )
    await page.goto(web.base_url + "/web/inbox")
    assert page.url.endswith("/web/inbox")
    # ... just past it, the next page asks to sign in again and the session is gone.
    async with web.services.sessions.begin() as s:
        await s.execute(
            update(WebSession)
            .where(WebSession.session_hash == key)
            .values(last_seen_at=datetime.now(UTC) - idle - timedelta(seconds=5))
        )
    await page.goto(web.base_url + "/web/inbox")
    assert "/web/signin?next=/web/inbox&expired=1" in page.url
    assert "terminó por inactividad" in await page.inner_text("main")
    async with web.services.sessions() as s:
        assert await s.get(WebSession, key) is None
    await shot(page, "signin-expired")
    await page.context.close()


async def test_the_wrong_role_gets_a_denied_page(web: WebApp, browser: Browser) -> None:
    case_id, task_id = await _new_detection_task(web)
    committee = await sign_in(web, browser, "gt-eri", "comite.cit")
    user = await users.get(web.services.sessions, web.login("gt-eri", "comite.cit"))
    before = await _ledger_count(web, "access.denied", actor_id=user.user_id)
    for path in ("/web/inbox", f"/web/cases/{case_id}", f"/web/tasks/{task_id}", "/web/cases/new"):
        response = await committee.goto(web.base_url + path)
        assert response is not None and response.status == 403, path
        assert "Su rol no da acceso a casos ni tareas" in await committee.inner_text("main")
        assert await committee.title() == "Acceso denegado · ERI"
    assert await _ledger_count(web, "access.denied", actor_id=user.user_id) == before + 4
    await shot(committee, "denied")
    # A responder of an institution outside the case: the case does not exist for them.
    outsider = await sign_in(web, browser, "hn-cicesct", "ts.sedis")
    response = await outsider.goto(f"{web.base_url}/web/cases/{case_id}")
    assert response is not None and response.status == 404
    response = await outsider.goto(f"{web.base_url}/web/tasks/{task_id}")
    assert response is not None and response.status == 404
    await committee.context.close()
    await outsider.context.close()


async def test_case_and_task_pages_are_never_cached(web: WebApp, browser: Browser) -> None:
    case_id, task_id = await _new_detection_task(web)
    page = await sign_in(web, browser, "gt-eri", DETECTION_BY)
    for path in (f"/web/cases/{case_id}", f"/web/tasks/{task_id}", "/web/inbox"):
        response = await page.goto(web.base_url + path)
        assert response is not None and response.status == 200, path
        headers = await response.all_headers()
        assert headers["cache-control"] == "no-store", path
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        if "/web/inbox" not in path:  # pages with a case's data have the quick exit
            assert await page.locator("#quick-exit").count() == 1, path
    await page.context.close()


async def test_a_stale_page_says_someone_else_changed_the_task(
    web: WebApp, browser: Browser
) -> None:
    _case_id, task_id = await _new_detection_task(web)
    looking = await sign_in(web, browser, "gt-eri", DETECTION_BY)
    await looking.goto(f"{web.base_url}/web/tasks/{task_id}")
    # Meanwhile a colleague (another tab) claims and gives the task back: a new revision.
    other = await looking.context.new_page()
    await other.goto(f"{web.base_url}/web/tasks/{task_id}")
    await other.click("button:has-text('Tomar la tarea')")
    await settled(other, re.compile(r".*\?claimed=1$"))
    await other.click("button:has-text('Devolver al grupo')")
    await settled(other, re.compile(r".*\?unclaimed=1$"))
    await looking.click("button:has-text('Tomar la tarea')")
    await looking.wait_for_selector(".notice.error")
    assert "Otra persona cambió esta tarea" in await looking.inner_text(".notice.error")
    assert (await _task(web, task_id)).assignee is None  # the stale claim changed nothing
    await shot(looking, "task-stale")
    # The page now shows the current revision: claiming from it works.
    await looking.click("button:has-text('Tomar la tarea')")
    await settled(looking, re.compile(r".*\?claimed=1$"))
    assert (await _task(web, task_id)).assignee is not None
    await looking.context.close()


async def test_validation_messages_stand_next_to_their_fields(
    web: WebApp, browser: Browser
) -> None:
    _case_id, task_id = await _new_detection_task(web)
    page = await sign_in(web, browser, "gt-eri", DETECTION_BY)
    await page.goto(f"{web.base_url}/web/tasks/{task_id}")
    await page.click("button:has-text('Tomar la tarea')")
    await settled(page, re.compile(r".*\?claimed=1$"))
    await page.fill("#fld-place", "Lugar sintético")
    await page.click("button[value=complete]")
    await page.wait_for_selector(".notice.error")
    error = page.locator("#err-detection_context")
    assert await error.inner_text() == "Este campo es obligatorio."
    assert await page.get_attribute("#fld-detection_context", "aria-invalid") == "true"
    assert await page.get_attribute("#fld-detection_context", "aria-describedby") == (
        "err-detection_context"
    )
    assert await page.input_value("#fld-place") == "Lugar sintético"  # nothing lost
    assert await page.locator("label[for=fld-detection_context] .req").count() == 1
    assert (await _task(web, task_id)).status == "open"
    await shot(page, "task-invalid")
    await page.context.close()


async def test_a_double_tap_completes_once(web: WebApp, browser: Browser) -> None:
    case_id, task_id = await _new_detection_task(web)
    page = await sign_in(web, browser, "gt-eri", DETECTION_BY, javascript=False)
    await page.goto(f"{web.base_url}/web/tasks/{task_id}")
    await page.click("button:has-text('Tomar la tarea')")
    await settled(page, re.compile(r".*\?claimed=1$"))
    await page.select_option("#fld-detection_context", index=1)
    await page.select_option("#fld-detecting_institution", index=1) if await page.locator(
        "select#fld-detecting_institution"
    ).count() else await page.fill("#fld-detecting_institution", "pgn")
    await page.fill("#fld-detected_at", "2026-11-20T10:30")
    fields = await _form_fields(page, "#task-form")
    url = f"{web.base_url}/web/tasks/{task_id}/complete"
    form = {**fields, "action": "complete"}
    first, second = await asyncio.gather(
        page.request.post(url, form=form, max_redirects=0),
        page.request.post(url, form=form, max_redirects=0),
    )
    assert first.status == second.status == 303
    assert first.headers["location"] == second.headers["location"]
    step = (await _task(web, task_id)).step_id
    assert await _ledger_count(web, "task.completed", case_id=case_id, step_id=step) == 1
    await page.context.close()


async def test_english_by_accept_language_and_by_the_switch(web: WebApp, browser: Browser) -> None:
    context = await new_context(browser, lang="en-US")
    page = await context.new_page()
    await page.goto(web.base_url + "/web/signin")
    assert await page.inner_text("h1") == "Sign in"
    assert await page.get_attribute("html", "lang") == "en"
    await page.click("a.lang")
    await page.wait_for_url(re.compile(r".*/web/"))
    await page.goto(web.base_url + "/web/signin")
    assert await page.inner_text("h1") == "Iniciar sesión"
    await context.close()
    page = await sign_in(web, browser, "gt-eri", "psi.svet", lang="en-US")
    assert await page.inner_text("h1") == "My tasks"
    await shot(page, "inbox-en")
    await page.context.close()


async def test_show_more_walks_the_whole_inbox_once(web: WebApp, browser: Browser) -> None:
    """More unclaimed tasks than a page holds (25): following "Show more" to the end shows
    every one of them exactly once, and no task twice."""
    opened: list[str] = []
    for _ in range(26):
        opened.append((await _new_detection_task(web))[1])
    page = await sign_in(web, browser, "gt-eri", DETECTION_BY)
    await page.goto(f"{web.base_url}/web/inbox")
    seen: list[str] = []
    pages = 1
    while True:
        links = page.locator("h2#groups ~ ul.tasks a[href^='/web/tasks/']")
        seen += [
            str(await a.get_attribute("href")).removeprefix("/web/tasks/")
            for a in await links.all()
        ]
        if not await next_inbox_page(page, ("groups",)):
            break
        pages += 1
    assert pages >= 2
    assert len(seen) == len(set(seen)), "a task shows on two pages"
    assert set(opened) <= set(seen), "a task shows on no page"
    await page.context.close()


async def test_a_field_that_records_a_fact_says_so(web: WebApp, browser: Browser) -> None:
    """The identification form's "under 18" decides the route: the page tells the responder."""
    team = web.teams["gt-eri"]
    view = await open_case(team, "coord.svet", GT_ADULT)
    while (task := view["open_tasks"][0])["step_id"] != "identification":
        view = await do_task(
            team, task["task_id"], task["candidate_groups"], facts=GT_ADULT, in_inbox=False
        )
    page = await sign_in(web, browser, "gt-eri", team.who_can(task["candidate_groups"]).name)
    await page.goto(f"{web.base_url}/web/tasks/{task['task_id']}")
    minor = page.locator("div.field[data-sets-fact='minor']")
    assert "Menor de 18 años" in await minor.inner_text()
    assert "queda como dato del caso" in await minor.inner_text()
    nationality = page.locator("div.field", has=page.locator("#fld-nationality"))
    assert "dato del caso" not in await nationality.inner_text()  # free text sets no fact
    await page.context.close()


async def test_quick_exit_ends_the_session_and_leaves_no_way_back(
    web: WebApp, browser: Browser
) -> None:
    case_id, _task_id = await _new_detection_task(web)
    page = await sign_in(web, browser, "gt-eri", DETECTION_BY)
    await page.goto(f"{web.base_url}/web/cases/{case_id}")
    await page.click("#quick-exit")
    await page.wait_for_url(re.compile(r".*/healthz$"))
    assert not [c for c in await page.context.cookies() if c["name"] == "eri_session"]
    await page.go_back()
    await page.wait_for_load_state("load")
    assert "/web/cases/" not in page.url  # the case page was replaced in the history
    response = await page.goto(f"{web.base_url}/web/cases/{case_id}")
    assert response is not None and "/web/signin" in page.url
    await page.context.close()


async def _signed_in_client(web: WebApp, team: str, member: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=web.base_url, timeout=30)
    page = await client.get("/web/signin")
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert csrf
    form = {"csrf": csrf.group(1), "name": web.login(team, member), "password": PASSWORD}
    assert (await client.post("/web/signin", data=form)).status_code == 303
    return client


async def test_every_page_and_action_is_authorized(web: WebApp) -> None:
    """Signed out: pages redirect to the sign-in, actions are refused. The wrong role: 403 on
    every page and action, recorded, and nothing changes."""
    case_id, task_id = await _new_detection_task(web)
    pages = [
        "/web/inbox",
        f"/web/tasks/{task_id}",
        f"/web/cases/{case_id}",
        "/web/cases/new",
        "/web/cases/new/gt-eri",
    ]
    actions = [f"/web/tasks/{task_id}/{a}" for a in ("claim", "unclaim", "draft", "complete")]
    actions.append("/web/cases/new/gt-eri")
    async with httpx.AsyncClient(base_url=web.base_url) as anonymous:
        for path in pages:
            r = await anonymous.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/web/signin"), path
        for path in actions:
            r = await anonymous.post(path, data={"idem": "web-anonymous-1", "csrf": "x"})
            assert r.status_code == 403, path
    committee = await _signed_in_client(web, "gt-eri", "comite.cit")
    try:
        denied = await committee.get("/web/inbox")
        assert denied.status_code == 403
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', denied.text)
        assert csrf, "the denied page still lets the user sign out"
        user = await users.get(web.services.sessions, web.login("gt-eri", "comite.cit"))
        before = await _ledger_count(web, "access.denied", actor_id=user.user_id)
        for path in pages[1:]:
            assert (await committee.get(path)).status_code == 403, path
        for n, path in enumerate(actions):
            form = {
                "csrf": csrf.group(1),
                "idem": f"web-committee-{n}-{task_id[-6:]}",
                "revision": "1",
                "action": "complete",
            }
            r = await committee.post(path, data=form)
            assert r.status_code == 403, path
            assert "Su rol no da acceso" in r.text
        assert await _ledger_count(web, "access.denied", actor_id=user.user_id) == before + 9
        assert (await _task(web, task_id)).assignee is None
    finally:
        await committee.aclose()
