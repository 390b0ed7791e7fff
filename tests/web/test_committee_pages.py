"""The dashboard of coordinators and committee members.

On both databases: its monthly compliance figures are exactly the committee API's report of
each month, its live counts are suppressed by the report's own code for committees and not for
coordinators, and the wrong roles are refused (and recorded)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from playwright.async_api import Browser
from temporalio.testing import WorkflowEnvironment

from api import casework, dashboard
from api.problems import Problem
from eri import ledger, users
from eri.audit import log, note, report
from eri.audit.report import ALL
from eri.audit.schedule import checkpoint_now
from eri.auth import Principal, Role, mint
from eri.canary import LeakScanner
from eri.db.models import CaseRow, TaskRow
from eri.ledger import Action, Record
from eri.vault import Vault
from protocols.lock import content_hash
from tests.api.casework_support import GT_ADULT, add_member
from tests.audit.conftest import WITNESS, Api, audit_api
from tests.test_leak_canary import planted_person
from tests.web.browser_support import (
    EXTRA_SETTINGS,
    PASSWORD,
    SCREENSHOTS,
    Recorder,
    WebApp,
    settled,
    shot,
    sign_in,
)

#: The shared web server knows the committee's witness (ERI_AUDIT_WITNESSES).
EXTRA_SETTINGS.setdefault("audit_witnesses", [WITNESS.verifier.encode()])

K = 11
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
MARCH = (datetime(2026, 3, 1, tzinfo=UTC), NOW)
FEBRUARY = (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))

COMMITTEE = Principal("usr_comi0001", Role.COMMITTEE, "CIT")
SVET = Principal("usr_coor0001", Role.COORDINATOR, "SVET")
PROSECUTOR = Principal("usr_fisc0001", Role.PROSECUTOR, "MP-FETP")


@pytest.fixture
async def api(database_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with audit_api(database_url, tmp_path, K) as a:
        yield a


async def _completions(api: Api, institution: str, count: int, start: datetime, late: int) -> None:
    """``count`` gt-eri activations completed by ``institution`` from ``start``, ``late`` of
    them after the deadline."""
    for c in range(count):
        case = f"case_dash{institution.lower()}{start:%m}{c:03d}"
        at = start + timedelta(hours=c)
        common = {"case_id": case, "protocol_id": "gt-eri", "protocol_version": "1.0.0"}
        records = [
            Record(
                idempotency_key=f"{case}:1",
                action=Action.CASE_OPENED,
                recorded_at=at,
                actor_institution=institution,
                **common,  # type: ignore[arg-type]
            ),
            Record(
                idempotency_key=f"{case}:2",
                action=Action.TASK_OPENED,
                recorded_at=at,
                step_id="eri_activation",
                **common,  # type: ignore[arg-type]
            ),
            Record(
                idempotency_key=f"{case}:3",
                action=Action.TASK_COMPLETED,
                recorded_at=at + timedelta(hours=1),
                step_id="eri_activation",
                actor_id="usr_done0001",
                actor_role="coordinator",
                actor_institution=institution,
                deadline_status="late" if c < late else "on_time",
                **common,  # type: ignore[arg-type]
            ),
        ]
        for record in records:
            await ledger.append(api.services.sessions, record)


async def _read_model(api: Api, opened_by: dict[str, int], overdue: dict[str, int]) -> None:
    """Open gt-eri cases per opening institution; open overdue tasks per step (each with an
    escalation fired)."""
    gt = casework.protocol("gt-eri")
    async with api.services.sessions.begin() as session:
        n = 0
        for institution, count in opened_by.items():
            for _ in range(count):
                n += 1
                session.add(
                    CaseRow(
                        case_id=f"case_dashopen{n:04d}",
                        protocol_id=gt.id,
                        protocol_version=gt.version,
                        protocol_hash=content_hash(gt),
                        country="GT",
                        status="open",
                        opened_at=NOW - timedelta(days=1),
                        opened_by_institution=institution,
                        revision=1,
                    )
                )
        for step_id, count in overdue.items():
            for i in range(count):
                session.add(
                    TaskRow(
                        task_id=f"case_dashopen{i + 1:04d}/{step_id}/1",
                        case_id=f"case_dashopen{i + 1:04d}",
                        protocol_id=gt.id,
                        protocol_version=gt.version,
                        step_id=step_id,
                        occurrence=1,
                        status="open",
                        opened_at=NOW - timedelta(days=1),
                        due_at=NOW - timedelta(hours=3),
                        deadline_missed=True,
                        rungs_fired=1,
                        revision=1,
                    )
                )


async def _seed(api: Api) -> None:
    # March: SVET k-1 and MP 1 (they hide each other), PGN k (shown, 2 late).
    await _completions(api, "SVET", K - 1, MARCH[0], late=0)
    await _completions(api, "PGN", K, MARCH[0] + timedelta(days=2), late=2)
    await _completions(api, "MP", 1, MARCH[0] + timedelta(days=3), late=1)
    # February: PGN k + 1, all on time.
    await _completions(api, "PGN", K + 1, FEBRUARY[0], late=0)
    # Now: 12 open cases opened by SVET, 2 by PGN; overdue: 12 at eri_activation (SVET leads),
    # 3 at immediate_safety (PNC leads).
    await _read_model(
        api, {"svet": K + 1, "pgn": 2}, {"eri_activation": K + 1, "immediate_safety": 3}
    )


def _line(panel: dashboard.Panel, institution: str) -> dashboard.ComplianceLine:
    (line,) = [c for c in panel.compliance if c.institution == institution]
    return line


async def test_monthly_figures_are_the_committee_reports(api: Api) -> None:
    await _seed(api)
    view = await dashboard.build(
        api.services, COMMITTEE, protocol_id=None, month_count=3, lang="en", now=NOW
    )
    assert [p.label for p in view.periods] == ["2026-01", "2026-02", "2026-03"]
    assert [p.protocol_id for p in view.panels] == ["gt-eri", "hn-cicesct", ALL]
    gt = view.panels[0]
    token = mint(api.settings, "usr_comi0001", Role.COMMITTEE, "CIT")
    for index, (start, end) in ((1, FEBRUARY), (2, MARCH)):
        r = await api.client.get(
            "/audit/reports/compliance",
            params={"from": start.isoformat(), "to": end.isoformat()},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200, r.text
        published = {
            row["institution"]: row
            for row in r.json()["tasks"]
            if row["protocol_id"] == "gt-eri" and row["step_id"] == ALL
        }
        for line in gt.compliance:
            row = published.get(line.institution)
            assert line.shares[index] == (row["within_deadline_share"] if row else None)
            assert line.suppressed[index] == bool(
                row and {"tasks_completed", "within_deadline_share"} & set(row["suppressed"])
            )
    pgn, svet, mp = (_line(gt, code) for code in ("PGN", "SVET", "MP"))
    # March: 2 of PGN's 11 were late; the share (x 11) would give the 2 away, so it is withheld
    assert pgn.shares == [None, 1.0, None] and pgn.suppressed[2]
    assert pgn.tasks == [0, K + 1, K]
    assert svet.suppressed[2] and mp.suppressed[2]
    assert svet.shares[2] is None and svet.tasks[2] is None and mp.shares[2] is None
    # the chart draws only what is published: PGN's February point and the total's (dot and
    # ring); no March point (2 late in all: below k), no SVET or MP point
    assert gt.series_svg.count("<circle") == 1 + 1 * 2
    assert "SVET 2026-03" not in gt.series_svg and "PGN 2026-03" not in gt.series_svg


async def test_live_counts_suppressed_for_committees_not_coordinators(api: Api) -> None:
    await _seed(api)
    committee = await dashboard.build(
        api.services, COMMITTEE, protocol_id="gt-eri", month_count=1, lang="es", now=NOW
    )
    (gt,) = committee.panels
    live = {line.institution: line.counts for line in gt.live}
    # the report's own suppression of the same counts
    expected_cases = {
        r["institution"]: r["cases_opened"]
        for r in report.case_rows(
            {("gt-eri", "case.opened", "svet"): K + 1, ("gt-eri", "case.opened", "pgn"): 2}, K
        )
        if r["protocol_id"] == "gt-eri"
    }
    assert live["pgn"].open_cases is None  # 2 < k
    assert {i: live[i].open_cases for i in ("svet", "pgn")} == {
        i: expected_cases[i] for i in ("svet", "pgn")
    }
    assert gt.live_total.open_cases == expected_cases[ALL]
    assert live["pnc"].overdue_tasks is None and live["pnc"].escalated_tasks is None  # 3 < k
    assert "oj" not in live and "OJ" in gt.quiet  # nothing open: listed by name only
    assert committee.live_suppressed

    coordinator = await dashboard.build(
        api.services, SVET, protocol_id=None, month_count=1, lang="es", now=NOW
    )
    assert [p.protocol_id for p in coordinator.panels] == ["gt-eri"]  # SVET is not in hn
    (gt,) = coordinator.panels
    live = {line.institution: line.counts for line in gt.live}
    assert (live["svet"].open_cases, live["pgn"].open_cases) == (K + 1, 2)
    assert (live["svet"].overdue_tasks, live["pnc"].overdue_tasks) == (K + 1, 3)
    assert gt.live_total.escalated_tasks == K + 4
    assert not coordinator.live_suppressed
    # compliance is suppressed for coordinators too
    assert _line(gt, "SVET").suppressed[0]
    assert not coordinator.may_export


async def test_wrong_roles_are_refused_and_recorded(api: Api) -> None:
    with pytest.raises(Problem) as refused:
        await dashboard.build(api.services, PROSECUTOR, protocol_id=None, month_count=1, lang="es")
    assert refused.value.status == 403
    with pytest.raises(Problem) as hidden:
        await dashboard.build(
            api.services, SVET, protocol_id="hn-cicesct", month_count=1, lang="es"
        )
    assert hidden.value.status == 404
    with pytest.raises(Problem) as export:
        await dashboard.audit_export(api.services, SVET)
    assert export.value.status == 403
    denials = [
        (e.step_id, e.actor_role)
        for e in await ledger.entries(api.services.sessions)
        if e.action == Action.ACCESS_DENIED
    ]
    assert denials == [
        ("dashboard.read", "prosecutor"),
        ("dashboard.read", "coordinator"),
        ("dashboard.export", "coordinator"),
    ]


async def test_checkpoint_with_cosignature_and_commands(api: Api) -> None:
    await _seed(api)
    assert (await dashboard.checkpoint_view(api.services)) is None
    signed, _ = await log.checkpoint(api.services.sessions, api.settings)
    view = await dashboard.checkpoint_view(api.services)
    assert view is not None and view.size == signed.size
    assert [(w.name, w.cosigned) for w in view.witnesses] == [("cit.gt/comite-1", False)]
    parsed = note.Note.parse(signed.note)
    cosigned = parsed.with_signature(note.cosign(parsed, WITNESS, int(NOW.timestamp())))
    await log.add_cosignatures(api.services.sessions, api.settings, cosigned.render())
    view = await dashboard.checkpoint_view(api.services)
    assert view is not None
    assert [(w.name, w.cosigned) for w in view.witnesses] == [("cit.gt/comite-1", True)]
    assert view.note.count("\n— ") == 2  # the log's signature and the witness's
    log_key = log.log_verifier_key(api.settings).encode()
    assert view.verify_command == (
        f"eri audit verify eri-audit-export.jsonl --key '{log_key}' "
        f"--witness '{WITNESS.verifier.encode()}'"
    )


async def signed_in(api: Api, principal: Principal) -> httpx.AsyncClient:
    """A client of the same app with a web session of ``principal`` (its cookie set)."""
    from fastapi import Response

    from api.web import session

    response = Response()
    await session.start(api.services, response, principal)
    cookie = response.headers["set-cookie"].split(";", 1)[0]
    name, _, value = cookie.partition("=")
    client = httpx.AsyncClient(transport=api.client._transport, base_url="http://eri.test")
    client.cookies.set(name, value)
    return client


def exports_in_tmp() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("eri-audit-export-*"))


async def test_dashboard_page_for_committee_and_denied_page(api: Api) -> None:
    await _seed(api)
    await log.checkpoint(api.services.sessions, api.settings)
    async with await signed_in(api, COMMITTEE) as browser:
        r = await browser.get("/web/dashboard", params={"months": 3})
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        assert "<svg" in r.text and "eri audit verify" in r.text
        r = await browser.get("/web/dashboard/checkpoint.txt")
        assert r.status_code == 200 and r.text.startswith("eri.test/audit\n")
        before = exports_in_tmp()
        r = await browser.get("/web/dashboard/audit-export.jsonl")
        assert r.status_code == 200 and r.content.startswith(b'{"format": "eri-audit-export/1"')
        assert exports_in_tmp() <= before  # the temporary file is gone
    async with await signed_in(api, PROSECUTOR) as browser:
        r = await browser.get("/web/dashboard")
        assert r.status_code == 403 and "text/html" in r.headers["content-type"]


# --- in a real browser ------------------------------------------------------------------------


async def _seed_live_case(web: WebApp, planted: dict[str, str]) -> str:
    """A real gt-eri case opened through the API with the planted person in its intake and
    vault, as a responder would: the committee must see none of it."""
    team = web.teams["gt-eri"]
    r = await team.client.post(
        "/v1/cases",
        json={
            "protocol_id": "gt-eri",
            "facts": GT_ADULT,
            "intake": {"alias": planted["name"], "summary": planted["statement"]},
        },
        headers=team.idem("coord.svet"),
    )
    assert r.status_code == 201, r.text
    case_id: str = r.json()["case_id"]
    vault = Vault(web.services.keyring, web.services.sessions)
    await vault.put(
        case_id, "identity", {k: planted[k] for k in ("passport", "phone", "birth_date")}
    )
    return case_id


async def _seed_compliance(web: WebApp, now: datetime) -> None:
    """Completed activations this month and last month, enough to publish some institutions."""
    this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    span = max(timedelta(minutes=30), (now - this_month) / (3 * K))
    for start, step, plan in (
        (
            last_month,
            timedelta(hours=12),
            {"SBS": (K + 3, 1), "IGM": (K + 1, 4), "MINEX": (K + 6, 3), "PDH": (2, 0)},
        ),
        (
            this_month,
            span,
            {"SBS": (K + 2, 0), "IGM": (K, 3), "MINEX": (K + 5, 1), "PDH": (K - 4, 0)},
        ),
    ):
        for institution, (count, late) in plan.items():
            for c in range(count):
                case = "case_web2" + uuid.uuid4().hex[:16]
                at = start + step * c
                common = {"case_id": case, "protocol_id": "gt-eri", "protocol_version": "1.0.0"}
                for n, (action, extra) in enumerate(
                    (
                        (Action.TASK_OPENED, {"recorded_at": at}),
                        (
                            Action.TASK_COMPLETED,
                            {
                                "recorded_at": at + step / 2,
                                "actor_id": "usr_done0002",
                                "actor_role": "responder",
                                "actor_institution": institution,
                                "deadline_status": "late" if c < late else "on_time",
                            },
                        ),
                    )
                ):
                    await ledger.append(
                        web.services.sessions,
                        Record(
                            idempotency_key=f"{case}:{n}",
                            action=action,
                            step_id="eri_activation",
                            **common,  # type: ignore[arg-type]
                            **extra,  # type: ignore[arg-type]
                        ),
                    )


async def test_a_committee_member_walks_the_dashboard_on_a_phone(
    web: WebApp, browser: Browser, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    planted = planted_person()
    await _seed_live_case(web, planted)
    await _seed_compliance(web, datetime.now(UTC))
    settings = web.settings
    assert WITNESS.verifier.encode() in settings.audit_witnesses  # EXTRA_SETTINGS, above
    result = await checkpoint_now(temporal_env.client, settings, uuid.uuid4().hex[:12])
    latest = await log.latest(web.services.sessions)
    assert latest is not None and latest.size >= result.size
    parsed = note.Note.parse(latest.note)
    line = note.cosign(parsed, WITNESS, int(datetime.now(UTC).timestamp()))
    await log.add_cosignatures(
        web.services.sessions, settings, parsed.with_signature(line).render()
    )

    recorder = Recorder()
    page = await sign_in(web, browser, "gt-eri", "comite.cit", recorder=recorder)
    await settled(page, re.compile(r".*/web/dashboard$"))  # the committee's home
    assert await recorder.title(page) == "Panel de seguimiento · ERI"
    await shot(page, "committee-dashboard", full=False)

    await page.select_option("#protocol", "gt-eri")
    await page.select_option("#months", "3")
    await page.click("form.filters button[type=submit]")
    await settled(page, re.compile(r".*/web/dashboard\?protocol=gt-eri&months=3$"))
    await recorder.title(page)
    panels = page.locator("section.panel")
    assert await panels.count() == 1
    await page.click("section.panel details summary")
    figures = page.locator("table.series")
    await figures.wait_for()
    # the page's figures are the committee report's, month by month
    now = datetime.now(UTC)
    periods = dashboard.months(now, 3)
    for index, period in enumerate(periods[1:], start=1):
        published = {
            r["institution"]: r
            for r in (
                await report.compliance(
                    web.services.sessions, period.start, period.end, settings.audit_k
                )
            )["tasks"]
            if r["protocol_id"] == "gt-eri" and r["step_id"] == ALL
        }
        for code, label in (("SBS", "SBS"), ("IGM", "IGM"), ("MINEX", "MINEX"), ("PDH", "PDH")):
            row = published[code]
            cell = figures.locator(f"tr:has(th:text-is('{label}')) td").nth(index)
            text = await cell.inner_text()
            if {"tasks_completed", "within_deadline_share"} & set(row["suppressed"]):
                assert text == "suprimido", (code, period.label, text)
            else:
                share = row["within_deadline_share"]
                assert text.startswith(f"{share * 100:.0f}"), (code, period.label, text)
    await panels.screenshot(path=str(SCREENSHOTS / "committee-compliance.png"))

    checkpoint = page.locator("section.checkpoint")
    assert "cit.gt/comite-1: cofirmó" in await checkpoint.inner_text()
    await checkpoint.screenshot(path=str(SCREENSHOTS / "committee-checkpoint.png"))
    # The offline check, exactly as the page tells it: download both files, run the
    # commands shown (the verifier; it reads files and keys only).
    async with page.expect_download() as got:
        await page.click("a[href='/web/dashboard/checkpoint.txt']")
    saved = tmp_path / dashboard.CHECKPOINT_FILE
    await (await got.value).save_as(saved)
    assert saved.read_text() == (await log.latest(web.services.sessions)).note  # type: ignore[union-attr]
    async with page.expect_download() as got:
        await page.click("a[href='/web/dashboard/audit-export.jsonl']")
    await (await got.value).save_as(tmp_path / dashboard.EXPORT_FILE)
    commands = await checkpoint.locator("ol.commands pre").all_inner_texts()
    verify = commands[1].removeprefix("$ ").strip()
    assert verify.startswith("eri audit verify eri-audit-export.jsonl --key ")
    done = subprocess.run(  # noqa: ASYNC221 (a short offline check)
        [str(Path(sys.executable).with_name("eri")), *shlex.split(verify)[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK: ") and "cosignatures" in done.stdout

    # English, then no victim data anywhere the committee member's browser went
    await page.click("a.lang")
    await settled(page, re.compile(r".*/web/dashboard.*"))
    assert await recorder.title(page) == "Dashboard · ERI"
    await recorder.settle()
    await page.context.close()
    scanner = LeakScanner(planted)
    assert scanner.scan_texts(recorder.urls, "urls") == []
    assert scanner.scan_texts(recorder.titles, "titles") == []
    bodies = [body for _, _, body in recorder.responses]
    assert sum(len(b) for b in bodies) > 10_000
    for url, headers, body in recorder.responses:
        assert scanner.scan_bytes(body, url) == [], url
        if "/web/static/" not in url:
            assert headers.get("cache-control") == "no-store", url
    export = (tmp_path / dashboard.EXPORT_FILE).read_bytes()
    assert scanner.scan_bytes(export, "export") == []


async def test_the_wrong_roles_get_a_denied_page(web: WebApp, browser: Browser) -> None:
    team = web.teams["gt-eri"]
    if "fiscal.web2" not in team.members:
        await add_member(team, "fiscal.web2", "prosecutor", "MP-WEB2D", [])
        await users.set_password(
            web.services.sessions, web.login("gt-eri", "fiscal.web2"), PASSWORD
        )
    for member, url, name in (
        ("fiscal.web2", "/web/dashboard", "prosecutor-denied-dashboard"),
        ("psi.svet", "/web/dashboard", None),
        ("comite.cit", "/web/handoffs", "committee-denied-handoffs"),
    ):
        page = await sign_in(web, browser, "gt-eri", member)
        response = await page.goto(web.base_url + url)
        assert response is not None and response.status == 403, member
        assert "No tiene permiso para esta acción." in await page.inner_text("main")
        if name:
            await shot(page, name, full=False)
        await page.context.close()


EVENT_ACTIONS = (
    "case.opened",
    "task.opened",
    "task.completed",
    "task.cancelled",
    "escalation.rung",
)


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 7),  # case
            st.sampled_from(EVENT_ACTIONS),
            st.sampled_from(["eri_activation", "identification"]),
            st.integers(0, 24 * 120),  # hours after 2026-01-01
            st.sampled_from(["SVET", "PGN", None]),
            st.sampled_from(["on_time", "late", None]),
        ),
        max_size=60,
    ),
    st.integers(1, 5),
)
def test_monthly_reports_skip_only_cases_that_add_nothing(
    raw: list[tuple[int, str, str, int, str | None, str | None]], k: int
) -> None:
    """Leaving out the cases without an event in a month changes no figure of its report."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ordered = sorted(raw, key=lambda r: (r[0], r[3]))
    events = [
        report.Event(
            action,
            t0 + timedelta(hours=hours),
            f"case_prop{case}",
            seq,
            "gt-eri",
            None if action == "case.opened" else step,
            institution,
            status if action == "task.completed" else None,
        )
        for seq, (case, action, step, hours, institution, status) in enumerate(ordered)
    ]
    events.sort(key=lambda e: (e.case_id, e.case_seq))
    periods = dashboard.months(datetime(2026, 4, 20, tzinfo=UTC), 4)
    assert dashboard.reports_by_period(events, periods, k) == [
        report.compute([e for e in events if e.at < p.end], p.start, p.end, k) for p in periods
    ]


def test_finished_months_are_reused_until_an_entry_lands_before_their_end() -> None:
    cache: dashboard.FinishedReports = {}
    periods = dashboard.months(datetime(2026, 4, 20, tzinfo=UTC), 3)  # Feb, Mar, Apr

    def completion(case: str, at: datetime) -> list[report.Event]:
        return [
            report.Event("task.opened", at, case, 1, "gt-eri", "eri_activation", None, None),
            report.Event(
                "task.completed", at, case, 2, "gt-eri", "eri_activation", "PGN", "on_time"
            ),
        ]

    events = completion("case_cache0001", datetime(2026, 2, 10, tzinfo=UTC))
    first = dashboard.reports_by_period(events, periods, 1, cache)
    again = dashboard.reports_by_period(events, periods, 1, cache)
    assert again[0] is first[0] and again[1] is first[1]  # finished: reused
    assert again[2] is not first[2]  # the current month: always computed
    # an entry recorded with an earlier time (a backdated custody event, say) lands in February
    events += completion("case_cache0002", datetime(2026, 2, 11, tzinfo=UTC))
    changed = dashboard.reports_by_period(events, periods, 1, cache)
    assert changed[0] is not first[0]
    assert changed[0] == report.compute(events, periods[0].start, periods[0].end, 1)
    (pgn,) = [
        r for r in changed[0]["tasks"] if r["institution"] == "PGN" and r["protocol_id"] == ALL
    ]
    assert pgn["tasks_completed"] == 2
