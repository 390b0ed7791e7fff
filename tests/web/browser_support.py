"""Serving ERI over HTTP for a real browser, signing team members in, walking cases.

Used by the browser tests (tests/web): :func:`serve_web` runs the API (uvicorn, a free port,
in the session's event loop) and the production worker; :func:`sign_in` opens a 360 px wide
browser context for a team member; :class:`Recorder` keeps every URL, title and response a
page saw (for the leak and cache checks); :func:`walk_case` drives a case to closure through
the pages only.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from playwright.async_api import Browser, BrowserContext, Locator, Page, Response
from sqlalchemy import select, update
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from eri import users
from eri.db.models import CaseRow, TaskGroup, TaskRow, User
from eri.runtime import Runtime
from eri.settings import Settings
from tests.api.casework_support import GT_TEAM, Team, add_member
from tests.conftest import free_port, worker_on_new_queue

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 360, "height": 740}
PASSWORD = "contraseña sintética 1"  # synthetic test users only
#: Where the walks save their screenshots: a temporary folder, so a test run leaves the work tree
#: as it was; `ERI_SCREENSHOTS=docs/screenshots .venv/bin/pytest tests/web` refreshes the
#: README's pictures.
SCREENSHOTS = Path(
    os.environ.get("ERI_SCREENSHOTS") or Path(tempfile.gettempdir()) / "eri-screenshots"
).resolve()

#: The response team of a Honduran case (user, ERI role, institution, protocol groups).
HN_TEAM = [
    ("coord.cicesct", "coordinator", "cicesct", ["cicesct:eri_coordinator"]),
    (
        "psi.cicesct",
        "responder",
        "cicesct",
        ["cicesct:psychologist", "cicesct:social_worker", "cicesct:lawyer"],
    ),
    ("agente.policia", "responder", "police", ["police:officer"]),
    ("fiscal.mphn", "responder", "mp", ["mp:prosecutor"]),
    ("comite.local", "responder", "local_committee", ["local_committee:member"]),
    ("ts.sedis", "responder", "sedis", ["sedis:social_worker"]),
    ("senaf", "responder", "senaf", ["senaf:child_protection_officer"]),
    ("inm", "responder", "inm", ["inm:migration_officer"]),
    ("sre", "responder", "sre", ["sre:consular_officer"]),
]
#: Roles that reach no case or task page.
OTHERS = [
    ("comite.cit", "committee", "cit", []),
    ("admin.svet", "admin", "svet", []),
]


@dataclass
class WebApp:
    base_url: str
    settings: Settings
    services: Any
    teams: dict[str, Team] = field(default_factory=dict)

    def login(self, team: str, member: str) -> str:
        return f"{member}.{self.teams[team].suffix}"


async def _team(
    client: httpx.AsyncClient, settings: Settings, services: Any, roster: list[Any]
) -> Team:
    team = Team(client, settings, services)
    for name, role, institution, groups in roster:
        await add_member(team, name, role, institution, groups)
    # One scrypt hash for the whole team (the same synthetic password): set once, copied.
    first = f"{roster[0][0]}.{team.suffix}"
    await users.set_password(services.sessions, first, PASSWORD)
    async with services.sessions.begin() as session:
        stored = (await session.execute(select(User).where(User.name == first))).scalar_one()
        await session.execute(
            update(User)
            .where(User.name.in_([f"{r[0]}.{team.suffix}" for r in roster]))
            .values(password_hash=stored.password_hash)
        )
    return team


#: Settings the session's ``web`` fixture adds (e.g. ``audit_witnesses`` for a dashboard test).
EXTRA_SETTINGS: dict[str, Any] = {}


@asynccontextmanager
async def serve_web(
    env: WorkflowEnvironment,
    runtime: Runtime,
    session_tmp: Path,
    tmp_path: Path,
    **overrides: Any,
) -> AsyncIterator[WebApp]:
    worker, queue = worker_on_new_queue(env.client, runtime)
    port = free_port()
    settings = Settings(
        **overrides,
        web_quick_exit_url=f"http://127.0.0.1:{port}/healthz",  # a neutral page, offline
        data_dir=tmp_path,
        keys_dir=session_tmp,
        database_url=runtime.settings.database_url,
        temporal_address=env.client.service_client.config.target_host,
        temporal_task_queue=queue,
    )
    app = create_app(settings)
    base = f"http://127.0.0.1:{port}"
    async with (
        worker,
        serve_http(app, port),
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
        services = app.state.services
        web = WebApp(base, settings, services)
        web.teams["gt-eri"] = await _team(client, settings, services, GT_TEAM + OTHERS)
        web.teams["hn-cicesct"] = await _team(client, settings, services, HN_TEAM)
        yield web


@asynccontextmanager
async def serve_http(app: Any, port: int) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1:``port`` in this event loop; yields its URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(400):
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


class Recorder:
    """Every URL requested, every title shown and every document response of a context."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.titles: list[str] = []
        self.responses: list[tuple[str, dict[str, str], bytes]] = []
        self._pending: list[asyncio.Task[None]] = []

    def attach(self, context: BrowserContext) -> None:
        context.on("request", lambda request: self.urls.append(request.url))
        context.on("response", self._on_response)

    def _on_response(self, response: Response) -> None:
        self._pending.append(asyncio.ensure_future(self._keep(response)))

    async def _keep(self, response: Response) -> None:
        if response.status in (301, 302, 303, 307, 308):
            self.responses.append((response.url, await response.all_headers(), b""))
            return
        try:
            body = await response.body()
        except Exception:  # the page moved on before the body was read (e.g. a redirect)
            body = b""
        self.responses.append((response.url, await response.all_headers(), body))

    async def title(self, page: Page) -> str:
        text = await page.title()
        self.titles.append(text)
        return text

    async def settle(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
            self._pending.clear()


async def new_context(
    browser: Browser, *, javascript: bool = True, lang: str = "es-GT"
) -> BrowserContext:
    return await browser.new_context(
        viewport=VIEWPORT,  # type: ignore[arg-type]
        device_scale_factor=2,
        locale=lang,
        java_script_enabled=javascript,
        extra_http_headers={"Accept-Language": lang},
    )


async def sign_in(
    web: WebApp,
    browser: Browser,
    team: str,
    member: str,
    *,
    javascript: bool = True,
    recorder: Recorder | None = None,
    lang: str = "es-GT",
) -> Page:
    context = await new_context(browser, javascript=javascript, lang=lang)
    if recorder is not None:
        recorder.attach(context)
    page = await context.new_page()
    await page.goto(web.base_url + "/web/signin")
    await page.fill("#name", web.login(team, member))
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(lambda url: "/web/signin" not in url)
    return page


async def shot(page: Page, name: str, *, full: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.evaluate("window.scrollTo(0, 0)")  # a sticky bar stays where it belongs
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full)


async def settled(page: Page, url: str | re.Pattern[str]) -> None:
    """Wait until the page shows ``url`` (a full load or an htmx swap) and is idle."""
    await page.wait_for_url(url)
    await page.wait_for_load_state("load")
    await page.locator("main h1").first.wait_for()


async def fill_form(
    page: Page, planted: dict[str, str] | None = None, facts: Mapping[str, Any] | None = None
) -> None:
    """Answer every field of the form on the page with synthetic values (as
    ``tests.api.casework_support.form_for`` does for the API): yes, the first option, 1, a
    date, now; free text gets a planted value if given. A field that records a case fact (the
    page says so) answers what ``facts`` says, so the case keeps its route."""

    async def known(field: Locator) -> Any:
        """The fact's value if the field records a fact ``facts`` gives; else None."""
        holder = await field.locator("xpath=ancestor::div[@data-sets-fact][1]").all()
        name = await holder[0].get_attribute("data-sets-fact") if holder else None
        return (facts or {}).get(name or "")

    for fieldset in await page.locator("#task-form fieldset").all():
        answer = "false" if await known(fieldset) is False else "true"
        await fieldset.locator(f"input[value={answer}]").check()
    for select_ in await page.locator("#task-form select").all():
        fact = await known(select_)
        if fact is not None:
            await select_.select_option(str(fact))
            continue
        options = await select_.locator("option").all()
        value = await options[1].get_attribute("value")
        await select_.select_option(value)
    for number in await page.locator("#task-form input[type=number]").all():
        await number.fill("1")
    for day in await page.locator("#task-form input[type=date]").all():
        await day.fill("2026-11-20")
    for moment in await page.locator("#task-form input[type=datetime-local]").all():
        await moment.fill("2026-11-20T10:30")
    texts = page.locator("#task-form textarea, #task-form input[type=text]")
    for i, text in enumerate(await texts.all()):
        value = "Texto sintético"
        if planted:
            value = list(planted.values())[i % len(planted)]
        await text.fill(value)


async def open_tasks(web: WebApp, case_id: str) -> list[tuple[str, list[str]]]:
    """The case's open tasks (task id, candidate groups), oldest first, from the read model."""
    async with web.services.sessions() as session:
        rows = list(
            (
                await session.execute(
                    select(TaskRow)
                    .where(TaskRow.case_id == case_id, TaskRow.status == "open")
                    .order_by(TaskRow.opened_at, TaskRow.task_id)
                )
            ).scalars()
        )
        found = []
        for row in rows:
            groups = (
                await session.execute(
                    select(TaskGroup.group_name).where(TaskGroup.task_id == row.task_id)
                )
            ).scalars()
            found.append((row.task_id, list(groups)))
    return found


async def has_deadline(web: WebApp, task_id: str) -> bool:
    async with web.services.sessions() as session:
        row = await session.get(TaskRow, task_id)
    return row is not None and row.due_at is not None


async def case_status(web: WebApp, case_id: str) -> str:
    async with web.services.sessions() as session:
        row = await session.get(CaseRow, case_id)
    assert row is not None
    return row.status


async def open_case_on_page(
    page: Page, web: WebApp, protocol_id: str, facts: dict[str, Any], intake: dict[str, str]
) -> str:
    """Open a case through the protocol's intake form; returns the new case id."""
    await page.goto(web.base_url + "/web/cases/new")
    await page.click(f"a[href='/web/cases/new/{protocol_id}']")
    await settled(page, re.compile(f".*/web/cases/new/{protocol_id}$"))
    for name, value in intake.items():
        await page.fill(f"#fld-{name}", value)
    for fact, value in facts.items():
        if isinstance(value, bool):
            await page.check(f"input[name='f.{fact}'][value={'true' if value else 'false'}]")
        else:
            await page.select_option(f"#fld-{fact}", str(value))
    await page.click("main button[type=submit]")
    await settled(page, re.compile(r".*/web/cases/case_[A-Za-z0-9_-]+\?done=opened$"))
    match = re.search(r"/web/cases/(case_[A-Za-z0-9_-]+)", page.url)
    assert match, page.url
    return match.group(1)


async def next_inbox_page(page: Page, lists: tuple[str, ...] = ("groups", "mine")) -> bool:
    """Follow the inbox's "more" link of the first of ``lists`` that has one (by default my
    groups' unclaimed tasks, then mine) and wait for the page it leads to; False when every
    one of those lists is on its last page."""
    for name in lists:
        more = page.locator(f"a[href*='{name}_cursor=']")
        if await more.count():
            break
    else:
        return False
    href = await more.first.get_attribute("href")
    assert href, "a 'more' link without an address"
    await more.first.click()
    # The click only starts the htmx swap (the body is hx-boost): wait for the next page's
    # address, or the caller would look at the page it is leaving.
    await settled(page, re.compile(re.escape(href) + "$"))
    return True


async def find_in_inbox(page: Page, task_id: str, pages: int = 120) -> None:
    """Page through the inbox ("more" links) until the task's link shows, as a person would:
    the session's database holds the open tasks of every test, 25 to a page."""
    link = page.locator(f"a[href='/web/tasks/{task_id}']")
    for seen in range(1, pages + 1):
        if await link.count():
            return
        if not await next_inbox_page(page):
            raise AssertionError(f"{task_id} is on none of the inbox's {seen} pages")
    raise AssertionError(f"{task_id} is not on the inbox's first {pages} pages")


async def do_task_on_page(
    page: Page,
    web: WebApp,
    task_id: str,
    planted: dict[str, str] | None = None,
    screenshots: str | None = None,
    facts: Mapping[str, Any] | None = None,
) -> None:
    """From the inbox: open the task, claim it, answer its form (as ``fill_form``), complete
    it."""
    await page.goto(web.base_url + "/web/inbox")
    if screenshots:
        await shot(page, f"{screenshots}-inbox")
    await find_in_inbox(page, task_id)
    await page.click(f"a[href='/web/tasks/{task_id}']")
    await settled(page, re.compile(f".*/web/tasks/{re.escape(task_id)}$"))
    if screenshots:
        await shot(page, f"{screenshots}-task")
    await page.click("button:has-text('Tomar la tarea'), button:has-text('Claim the task')")
    await settled(page, re.compile(r".*\?claimed=1$"))
    await fill_form(page, planted, facts)
    if screenshots:
        await shot(page, f"{screenshots}-task-claimed")
    await page.click("button[value=complete]")
    await settled(page, re.compile(r".*/web/inbox\?done=completed$"))
    assert "Tarea completada" in await page.inner_text("main")
