"""The dashboard of coordinators and committees: what the page shows, computed in one place.

Per protocol and institution:

- **live counts** from the read model (``cases``, ``tasks``): open cases (by opening
  institution), open tasks past their deadline and open tasks with an escalation fired (by the
  step's first responsible institution, so every task counts once and margins are sums);
- **compliance** over consecutive calendar months (UTC), each month exactly the committee
  report of that period (:func:`eri.audit.report.compute` over the ledger's events before its
  end), so the page never shows a figure the report would not publish;
- the **latest signed checkpoint** with its cosignatures and the commands that verify it
  offline.

Suppression is the report's own (:func:`eri.audit.report.count_table`,
:func:`eri.audit.report.case_rows`); nothing here decides on its own what to hide. Live counts
are suppressed at ``k`` for committees and shown as they are to coordinators, who see those
cases and tasks anyway (:func:`api.authz.dashboard_counts_suppressed`). The months are
disjoint and no total over them is shown, so no suppressed month can be recovered by
subtraction on this page.

Nothing here reads the vault: no victim data reaches the dashboard.
"""

from __future__ import annotations

import base64
import bisect
import os
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, select

from api import authz, casework
from api.deps import Services
from eri.audit import log, report
from eri.audit.report import ALL, PENDING
from eri.auth import Principal, Role
from eri.db.models import CaseRow, TaskRow
from protocols.model import Protocol

MAX_MONTHS = 24
DEFAULT_MONTHS = 6
CHECKPOINT_FILE = "eri-checkpoint.txt"
COSIGNED_FILE = "eri-checkpoint.cosigned.txt"
EXPORT_FILE = "eri-audit-export.jsonl"
#: Who may download the full audit export (as the committee API's entries route).
EXPORT_ROLES = frozenset({Role.COMMITTEE, Role.ADMIN})

#: A month's share is withheld when its task count is, or when its on-time or late count is
#: (the report then suppresses the share itself).
SHARE_HIDDEN = frozenset({"tasks_completed", "within_deadline_share"})


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        return self.start.strftime("%Y-%m")


def months(now: datetime, count: int) -> list[Period]:
    """The last ``count`` calendar months (UTC), oldest first; the last one ends at ``now``."""
    now = now.astimezone(UTC)
    year, month = now.year, now.month
    starts = []
    for _ in range(count):
        starts.append(datetime(year, month, 1, tzinfo=UTC))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    starts.reverse()
    ends = [*starts[1:], now]
    return [Period(s, e) for s, e in zip(starts, ends, strict=True)]


@dataclass
class Counts:
    """None: suppressed."""

    open_cases: int | None = 0
    overdue_tasks: int | None = 0
    escalated_tasks: int | None = 0


@dataclass
class LiveLine:
    institution: str
    label: str
    counts: Counts


@dataclass
class ComplianceLine:
    institution: str
    label: str
    shares: list[float | None]  # per period; None: suppressed or nothing with a deadline
    tasks: list[int | None]  # tasks completed per period; None: suppressed
    suppressed: list[bool]


@dataclass
class Panel:
    protocol_id: str  # ``*``: every protocol
    title: str
    live: list[LiveLine]  # institutions with something open (or suppressed)
    quiet: list[str]  # institutions with nothing open
    live_total: Counts
    compliance: list[ComplianceLine]
    series_svg: str


@dataclass
class Witness:
    name: str
    cosigned: bool


@dataclass
class CheckpointView:
    size: int
    root_hash: str  # base64, as in the signed note
    signed_at: datetime
    note: str
    cosigners: tuple[str, ...]
    witnesses: list[Witness]
    log_key: str
    witness_keys: list[str]

    @property
    def verify_command(self) -> str:
        witnesses = "".join(f" --witness '{k}'" for k in self.witness_keys)
        return f"eri audit verify {EXPORT_FILE} --key '{self.log_key}'{witnesses}"

    @property
    def cosign_command(self) -> str:
        return (
            f"eri audit cosign {CHECKPOINT_FILE} --key w.key --log-key '{self.log_key}' "
            f"> {COSIGNED_FILE}"
        )

    def submit_command(self, base_url: str) -> str:
        """How a witness hands the cosigned checkpoint back (the committee API)."""
        return (
            f'curl -X POST -H "Authorization: Bearer $TOKEN" -H "Content-Type: text/plain" '
            f"--data-binary @{COSIGNED_FILE} {base_url.rstrip('/')}/audit/checkpoint/cosignatures"
        )


@dataclass
class Dashboard:
    k: int
    live_suppressed: bool
    periods: list[Period]
    panels: list[Panel]
    protocols: list[tuple[str, str]]  # (id, title) the viewer may choose from
    selected: str | None
    checkpoint: CheckpointView | None
    may_export: bool
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


# --- authorization --------------------------------------------------------------------------


async def require_dashboard(services: Services, principal: Principal, what: str) -> None:
    """403 (recorded) for a role that has no dashboard."""
    if not authz.may_see_dashboard(principal):
        raise await authz.deny(services.sessions, principal, what=what)


async def require_export(services: Services, principal: Principal) -> None:
    if principal.role not in EXPORT_ROLES:
        raise await authz.deny(services.sessions, principal, what="dashboard.export")


def visible_protocols(principal: Principal) -> list[Protocol]:
    """The newest version of each protocol the principal's dashboard shows."""
    newest: dict[str, Protocol] = {}
    for p in casework.protocols():
        newest[p.id] = p  # newest last per id
    return [
        p
        for p in newest.values()
        if authz.dashboard_protocol(principal, casework.institutions_of(p))
    ]


# --- live counts ----------------------------------------------------------------------------


def _lead_institution(p: Protocol | None, step_id: str) -> str:
    if p is None:
        return PENDING
    try:
        return p.step(step_id).responsible[0].split(":", 1)[0]
    except KeyError:
        return PENDING


async def live_tables(
    services: Services, k: int
) -> tuple[dict[tuple[str, str], int | None], dict[report.Key, dict[str, Any]]]:
    """Open cases by (protocol, institution) and open overdue / escalated tasks by (protocol,
    step, institution) with the report's margins, suppressed at ``k`` (1: nothing hidden)."""
    by_key = {p.key: p for p in casework.protocols()}
    async with services.sessions() as session:
        cases = (
            await session.execute(
                select(CaseRow.protocol_id, CaseRow.opened_by_institution, func.count())
                .where(CaseRow.status == "open")
                .group_by(CaseRow.protocol_id, CaseRow.opened_by_institution)
            )
        ).all()
        missed = func.sum(case((TaskRow.deadline_missed.is_(True), 1), else_=0))
        fired = func.sum(case((TaskRow.rungs_fired > 0, 1), else_=0))
        tasks = (
            await session.execute(
                select(
                    TaskRow.protocol_id, TaskRow.protocol_version, TaskRow.step_id, missed, fired
                )
                .where(TaskRow.status == "open")
                .where(TaskRow.deadline_missed.is_(True) | (TaskRow.rungs_fired > 0))
                .group_by(TaskRow.protocol_id, TaskRow.protocol_version, TaskRow.step_id)
            )
        ).all()
    case_counts: dict[report.Key, int] = {}
    for protocol_id, institution, n in cases:
        key = (protocol_id, "case.opened", institution.lower())
        case_counts[key] = case_counts.get(key, 0) + int(n)
    overdue: dict[report.Key, int] = {}
    escalated: dict[report.Key, int] = {}
    for protocol_id, version, step_id, n_missed, n_fired in tasks:
        lead = _lead_institution(by_key.get(f"{protocol_id}@{version}"), step_id)
        key = (protocol_id, step_id, lead)
        overdue[key] = overdue.get(key, 0) + int(n_missed or 0)
        escalated[key] = escalated.get(key, 0) + int(n_fired or 0)
    rows = report.case_rows(case_counts, k)
    open_cases = {(r["protocol_id"], r["institution"]): r["cases_opened"] for r in rows}
    table = report.count_table({"overdue_tasks": overdue, "escalated_tasks": escalated}, k)
    return open_cases, table


# --- compliance -----------------------------------------------------------------------------


async def compliance_by_period(
    services: Services, periods: list[Period], k: int
) -> list[dict[str, Any]]:
    """The committee report of each period (what ``GET /audit/reports/compliance`` answers
    for it), from one read of the ledger."""
    events = await report.load_events(services.sessions, periods[-1].end)
    cache = _FINISHED.setdefault(services.sessions, {})
    return reports_by_period(events, periods, k, cache)


def reports_by_period(
    events: list[report.Event],
    periods: list[Period],
    k: int,
    cache: FinishedReports | None = None,
) -> list[dict[str, Any]]:
    """``report.compute(events before its end, period, k)`` for each of consecutive
    ``periods``, over ``events`` ordered by case and ``case_seq``.

    Each period's report is computed over the events of the cases with an event in the
    period only: every figure of :func:`eri.audit.report.compute` counts an event inside the
    period, so the other cases add nothing, and leaving them out makes six months cost about
    two passes over the ledger instead of six."""
    starts = [p.start for p in periods]
    by_case: dict[str, list[report.Event]] = {}
    touched: dict[int, list[str]] = {i: [] for i in range(len(periods))}
    for e in events:
        by_case.setdefault(e.case_id, []).append(e)
        i = bisect.bisect_right(starts, e.at) - 1
        if i >= 0 and e.at < periods[i].end and touched[i][-1:] != [e.case_id]:
            touched[i].append(e.case_id)
    results = []
    for i, p in enumerate(periods):
        # A month's report changes only if an entry before its end is added (the ledger is
        # append-only): the same count of such entries means the same report.
        key = (p.start, p.end, k, sum(1 for e in events if e.at < p.end))
        finished = cache is not None and p.end < periods[-1].end
        result = cache.get(key) if cache is not None and finished else None
        if result is None:
            relevant = [e for case in touched[i] for e in by_case[case] if e.at < p.end]
            result = report.compute(relevant, p.start, p.end, k)
            if cache is not None and finished:
                cache[key] = result
                while len(cache) > FINISHED_MAX:
                    cache.pop(next(iter(cache)))
        results.append(result)
    return results


#: Reports of finished periods of one ledger, by (start, end, k, its entries before end).
FinishedReports = dict[tuple[datetime, datetime, int, int], dict[str, Any]]
FINISHED_MAX = 128
#: Per database (its session factory): a report is reused only for the ledger it came from.
_FINISHED: weakref.WeakKeyDictionary[Any, FinishedReports] = weakref.WeakKeyDictionary()


def _task_index(result: dict[str, Any]) -> dict[report.Key, dict[str, Any]]:
    return {(r["protocol_id"], r["step_id"], r["institution"]): r for r in result["tasks"]}


# --- assembling the page ----------------------------------------------------------------------


def _labeller(protocols: list[Protocol], lang: str) -> Callable[[str], str]:
    acronyms = {i.id: i.acronym for p in protocols for i in p.institutions}

    def label(code: str) -> str:
        if code == ALL:
            return "Total"
        if code == PENDING:
            return "(sin completar)" if lang == "es" else "(not completed)"
        return acronyms.get(code.lower(), code.upper())

    return label


def _panel(
    protocol_id: str,
    title: str,
    institutions: list[str],
    open_cases: dict[tuple[str, str], int | None],
    live: dict[report.Key, dict[str, Any]],
    results: list[dict[str, Any]],
    periods: list[Period],
    label: Callable[[str], str],
    lang: str,
) -> Panel:
    def counts(institution: str) -> Counts:
        row = live.get((protocol_id, ALL, institution), {})
        return Counts(
            open_cases=open_cases.get((protocol_id, institution), 0),
            overdue_tasks=row.get("overdue_tasks", 0),
            escalated_tasks=row.get("escalated_tasks", 0),
        )

    live_codes = {i for (p, _, i) in live if p == protocol_id and i != ALL}
    live_codes |= {i for (p, i) in open_cases if p == protocol_id and i != ALL}
    codes = institutions + sorted(live_codes - set(institutions))
    all_lines = [LiveLine(c, label(c), counts(c)) for c in codes]
    live_lines = [line for line in all_lines if line.counts != Counts()]
    quiet = [line.label for line in all_lines if line.counts == Counts()]

    indexes = [_task_index(r) for r in results]
    reported = sorted(
        {i for idx in indexes for (p, s, i) in idx if p == protocol_id and s == ALL and i != ALL},
        key=lambda c: (c == PENDING, label(c)),
    )
    lines = []
    for code in [*reported, ALL]:
        cells = [idx.get((protocol_id, ALL, code)) for idx in indexes]
        lines.append(
            ComplianceLine(
                code,
                label(code),
                [c["within_deadline_share"] if c else None for c in cells],
                [c["tasks_completed"] if c else 0 for c in cells],
                [bool(c and SHARE_HIDDEN & set(c["suppressed"])) for c in cells],
            )
        )
    chart_title = (
        f"{title}: tareas completadas dentro del plazo, por institución y mes"
        if lang == "es"
        else f"{title}: tasks completed within the deadline, per institution and month"
    )
    series = report.compliance_series_svg(
        [p.label for p in periods],
        [(line.label, line.shares) for line in lines if line.institution != ALL],
        (lines[-1].label, lines[-1].shares),
        chart_title,
    )
    return Panel(
        protocol_id=protocol_id,
        title=title,
        live=live_lines,
        quiet=quiet,
        live_total=counts(ALL),
        compliance=lines,
        series_svg=series,
    )


async def checkpoint_view(services: Services) -> CheckpointView | None:
    latest = await log.latest(services.sessions)
    if latest is None:
        return None
    keys = log.witness_keys(services.settings)
    return CheckpointView(
        size=latest.size,
        root_hash=base64.b64encode(latest.root).decode(),
        signed_at=latest.signed_at,
        note=latest.note,
        cosigners=latest.cosigners,
        witnesses=[Witness(k.name, k.name in latest.cosigners) for k in keys],
        log_key=log.log_verifier_key(services.settings).encode(),
        witness_keys=[k.encode() for k in keys],
    )


async def build(
    services: Services,
    principal: Principal,
    *,
    protocol_id: str | None,
    month_count: int,
    lang: str,
    now: datetime | None = None,
) -> Dashboard:
    """Everything the dashboard page shows to ``principal`` (authorized here)."""
    await require_dashboard(services, principal, "dashboard.read")
    shown = visible_protocols(principal)
    if protocol_id is not None and protocol_id not in {p.id for p in shown}:
        raise await authz.deny(services.sessions, principal, what="dashboard.read", status=404)
    k = services.settings.audit_k
    suppressed = authz.dashboard_counts_suppressed(principal)
    periods = months(now or datetime.now(UTC), max(1, min(month_count, MAX_MONTHS)))
    open_cases, live = await live_tables(services, k if suppressed else 1)
    results = await compliance_by_period(services, periods, k)
    label = _labeller(shown, lang)
    panels = [
        _panel(
            p.id,
            p.title.get(lang),
            [i.id for i in p.institutions],
            open_cases,
            live,
            results,
            periods,
            label,
            lang,
        )
        for p in shown
        if protocol_id in (None, p.id)
    ]
    if protocol_id is None and principal.role is Role.COMMITTEE and len(shown) > 1:
        every = "Todos los protocolos" if lang == "es" else "Every protocol"
        panels.append(_panel(ALL, every, [], open_cases, live, results, periods, label, lang))
    return Dashboard(
        k=k,
        live_suppressed=suppressed,
        periods=periods,
        panels=panels,
        protocols=[(p.id, p.title.get(lang)) for p in shown],
        selected=protocol_id,
        checkpoint=await checkpoint_view(services),
        may_export=principal.role in EXPORT_ROLES,
    )


async def checkpoint_note(services: Services, principal: Principal) -> str | None:
    await require_dashboard(services, principal, "dashboard.checkpoint")
    latest = await log.latest(services.sessions)
    return None if latest is None else latest.note


async def audit_export(services: Services, principal: Principal) -> Path:
    """The export ``eri audit verify`` checks (every entry, checkpoint and proof; no PII), in
    a temporary file (300 MB at a million entries: not held in memory); the caller deletes it."""
    await require_export(services, principal)
    fd, name = tempfile.mkstemp(prefix="eri-audit-export-", suffix=".jsonl")
    try:
        with os.fdopen(fd, "wb") as out:
            await log.export(services.sessions, out)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)
