"""A response team walks a whole case of each protocol through the pages, on a 360 px phone.

Guatemala runs with JavaScript (htmx boosts links and forms); Honduras with JavaScript off
(plain forms and redirects). Every page is screenshotted (see browser_support.SCREENSHOTS).
The walk plants a synthetic person (eri.canary) in the intake and in every free-text answer,
and checks that no URL, page title, cacheable response or browser storage ever holds it.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import Browser, Page
from sqlalchemy import select

from eri.canary import LeakScanner
from eri.db.models import TaskRow
from tests.api.casework_support import GT_ADULT
from tests.test_leak_canary import planted_person
from tests.web.browser_support import (
    Recorder,
    WebApp,
    case_status,
    do_task_on_page,
    has_deadline,
    open_case_on_page,
    open_tasks,
    settled,
    shot,
    sign_in,
)


async def _walk(
    web: WebApp,
    browser: Browser,
    protocol_id: str,
    opener: str,
    *,
    javascript: bool,
    planted: dict[str, str],
    recorder: Recorder,
    screenshots: bool,
) -> list[str]:
    team = web.teams[protocol_id]
    pages: dict[str, Page] = {}

    async def page_of(member: str) -> Page:
        if member not in pages:
            pages[member] = await sign_in(
                web, browser, protocol_id, member, javascript=javascript, recorder=recorder
            )
        return pages[member]

    page = await page_of(opener)
    if screenshots:
        await page.goto(web.base_url + "/web/cases/new")
        await shot(page, "case-new")
    intake = {"alias": planted["name"], "summary": planted["statement"]}
    case_id = await open_case_on_page(page, web, protocol_id, GT_ADULT, intake)
    await recorder.title(page)
    if screenshots:
        await shot(page, "case-opened")
    done: list[str] = []
    shots_taken = False
    for _ in range(60):
        if await case_status(web, case_id) == "closed":
            break
        tasks = await open_tasks(web, case_id)
        assert tasks, f"case stuck after {done}"
        task_id, groups = tasks[0]
        member = team.who_can(groups).name
        worker = await page_of(member)
        # Screenshots of the first task with a deadline (its due time shows in the inbox).
        first = screenshots and not shots_taken and await has_deadline(web, task_id)
        shots_taken = shots_taken or first
        await do_task_on_page(
            worker, web, task_id, planted, "responder" if first else None, facts=GT_ADULT
        )
        await recorder.title(worker)
        done.append(task_id.split(":")[1] if ":" in task_id else task_id)
    assert await case_status(web, case_id) == "closed", done
    # The forms' answers that record facts kept the adult route (they answered as GT_ADULT).
    async with web.services.sessions() as session:
        steps = set(
            (await session.execute(select(TaskRow.step_id).where(TaskRow.case_id == case_id)))
            .scalars()
            .all()
        )
    assert not {s for s in steps if s.startswith("child_")}, steps
    # The opener sees the closed case, with its timeline, from a phone.
    await page.goto(web.base_url + f"/web/cases/{case_id}")
    await settled(page, re.compile(f".*/web/cases/{case_id}$"))
    await recorder.title(page)
    assert "Caso cerrado" in (await page.text_content("ol.timeline") or "")
    if screenshots:
        await shot(page, "case-closed", full=False)
    for p in pages.values():
        storage: Any = await p.evaluate(
            "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
        )
        recorder.titles.append(str(storage))  # scanned with the titles: must hold nothing
        await p.context.close()
    return done


def _assert_no_leak(recorder: Recorder, planted: dict[str, str]) -> None:
    scanner = LeakScanner(planted)
    assert recorder.urls, "nothing recorded"
    assert scanner.scan_texts(recorder.urls, "urls") == []
    assert scanner.scan_texts(recorder.titles, "titles") == []
    shown = 0
    for url, headers, body in recorder.responses:
        if scanner.scan_bytes(body, url):
            shown += 1
            assert headers.get("cache-control") == "no-store", url
    assert shown > 0, "the planted person was never shown: the check proves nothing"
    for url, headers, _ in recorder.responses:
        if "/web/static/" not in url:
            assert headers.get("cache-control") == "no-store", url


async def test_a_team_walks_a_guatemalan_case_on_a_phone_with_htmx(
    web: WebApp, browser: Browser
) -> None:
    planted = planted_person()
    recorder = Recorder()
    steps = await _walk(
        web,
        browser,
        "gt-eri",
        "psi.svet",
        javascript=True,
        planted=planted,
        recorder=recorder,
        screenshots=True,
    )
    assert len(steps) >= 16
    await recorder.settle()
    _assert_no_leak(recorder, planted)


async def test_a_team_walks_a_honduran_case_on_a_phone_without_javascript(
    web: WebApp, browser: Browser
) -> None:
    planted = planted_person()
    recorder = Recorder()
    steps = await _walk(
        web,
        browser,
        "hn-cicesct",
        "psi.cicesct",
        javascript=False,
        planted=planted,
        recorder=recorder,
        screenshots=False,
    )
    assert len(steps) >= 10
    await recorder.settle()
    _assert_no_leak(recorder, planted)
