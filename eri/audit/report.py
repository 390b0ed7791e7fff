"""Compliance reports for committees, computed from the ledger alone (so a committee can
recompute them from a verified export), with k-anonymity suppression.

Per protocol, step and institution over a period ``[start, end)``:

- ``cases_opened`` (per protocol and opening institution; step ``*``);
- ``tasks_completed``, the median and 90th percentile (nearest rank) of the hours from a task's
  ``task.opened`` to its ``task.completed``, and the share completed within the deadline
  (``on_time`` among ``on_time`` + ``late``); the institution is the completing actor's;
- ``escalations_rung_<r>``: escalation rungs fired in the period; rung ``r`` is the r-th
  ``escalation.rung`` of one task occurrence. An escalated task is attributed to the institution
  that completed it, ``pending`` while nobody has.

Occurrences are paired per case and step in ``case_seq`` order (a step has at most one open
task at a time, :mod:`workflows.interpreter`).

**Suppression.** Every count is published with margins: per (protocol, step) over
institutions, per (protocol, institution) over steps, per protocol, per institution over
protocols, and the grand total (``*`` marks a margin). A count in ``1..k-1`` is suppressed
(primary suppression). Then, for every published total, the suppressed members must be at
least two and sum to at least ``k``; otherwise the smallest published non-zero member is
suppressed as well (complementary suppression), or the total itself when none is left; this
repeats until nothing changes. So no suppressed count can be recovered, or narrowed below
``k``, by subtracting published cells from a published total. Medians and percentiles are
published only where the task count they describe is. A share within the deadline would give
away its late (or on-time) count, times the published judged count: the on-time and late counts
are therefore cells of their own (``tasks_on_time``, ``tasks_late``, suppressed like every
count), and the share is published only where both of them are.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from eri.db.models import LedgerEntry

ALL = "*"
PENDING = "pending"
Key = tuple[str, str, str]  # (protocol_id, step_id, institution)
ACTIONS = ("case.opened", "task.opened", "task.completed", "task.cancelled", "escalation.rung")


@dataclass(frozen=True)
class Event:
    action: str
    at: datetime
    case_id: str
    case_seq: int
    protocol_id: str
    step_id: str | None
    institution: str | None
    deadline_status: str | None


@dataclass
class _Cell:
    count: int = 0
    durations: list[float] = field(default_factory=list)
    on_time: int = 0
    late: int = 0


def groups_for(keys: Iterable[Key]) -> list[tuple[Key, list[Key]]]:
    """Each published total with the cells it sums (the margins described above)."""
    cells = {k for k in keys if ALL not in k}
    protocols = {p for p, _, _ in cells}
    out: list[tuple[Key, list[Key]]] = []
    by: dict[Key, set[Key]] = defaultdict(set)
    for p, s, i in cells:
        by[(p, s, ALL)].add((p, s, i))
        by[(p, ALL, i)].add((p, s, i))
    for total, members in by.items():
        out.append((total, sorted(members)))
    for p in protocols:
        out.append(((p, ALL, ALL), sorted(k for k in by if k[0] == p and k[1] != ALL)))
        out.append(((p, ALL, ALL), sorted(k for k in by if k[0] == p and k[2] != ALL)))
    institutions = {i for _, _, i in cells}
    for i in institutions:
        out.append(((ALL, ALL, i), sorted((p, ALL, i) for p in protocols if (p, ALL, i) in by)))
    out.append(((ALL, ALL, ALL), sorted((p, ALL, ALL) for p in protocols)))
    out.append(((ALL, ALL, ALL), sorted((ALL, ALL, i) for i in institutions)))
    return out


def with_margins(values: dict[Key, int]) -> dict[Key, int]:
    full = dict(values)
    for total, members in groups_for(values):
        full[total] = sum(full.get(m, 0) for m in members) if total not in full else full[total]
    return full


def suppress(
    values: dict[Key, int], groups: Sequence[tuple[Key, Sequence[Key]]], k: int
) -> set[Key]:
    """The keys to withhold: primary cells below ``k`` and their complements (see above)."""
    hidden = {key for key, v in values.items() if 0 < v < k}
    changed = True
    while changed:
        changed = False
        for total, members in groups:
            if total in hidden:
                continue
            secret = [m for m in members if m in hidden]
            if not secret or (len(secret) >= 2 and sum(values[m] for m in secret) >= k):
                continue
            shown = sorted((values.get(m, 0), m) for m in members if m not in hidden)
            shown = [(v, m) for v, m in shown if v > 0]
            hidden.add(shown[0][1] if shown else total)
            changed = True
    return hidden


async def load_events(sessions: async_sessionmaker[AsyncSession], end: datetime) -> list[Event]:
    async with sessions() as session:
        query = (
            select(
                LedgerEntry.action,
                LedgerEntry.recorded_at,
                LedgerEntry.case_id,
                LedgerEntry.case_seq,
                LedgerEntry.protocol_id,
                LedgerEntry.step_id,
                LedgerEntry.actor_institution,
                LedgerEntry.deadline_status,
            )
            .where(
                LedgerEntry.action.in_(ACTIONS),
                LedgerEntry.recorded_at < end,
                LedgerEntry.case_id.is_not(None),
                LedgerEntry.protocol_id.is_not(None),
            )
            .order_by(LedgerEntry.case_id, LedgerEntry.case_seq)
        )
        return [
            Event(a, at, str(c), int(cs or 0), str(p), s, i, d)
            for a, at, c, cs, p, s, i, d in await session.execute(query)
        ]


def _hours(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 2)


def compute(events: Iterable[Event], start: datetime, end: datetime, k: int) -> dict[str, Any]:
    """The report over ``events`` (ordered by case and ``case_seq``), suppressed at ``k``."""
    cases: dict[Key, int] = defaultdict(int)
    tasks: dict[Key, _Cell] = defaultdict(_Cell)
    escalations: dict[int, dict[Key, int]] = defaultdict(lambda: defaultdict(int))
    opened: dict[tuple[str, str], datetime] = {}
    fired: dict[tuple[str, str], list[tuple[int, datetime, str]]] = {}

    def within(at: datetime) -> bool:
        return start <= at < end

    def settle(occurrence: tuple[str, str], step: str, institution: str) -> None:
        for rung, at, protocol in fired.pop(occurrence, []):
            if within(at):
                escalations[rung][(protocol, step, institution)] += 1

    for e in events:
        if e.action == "case.opened":
            if within(e.at):
                cases[(e.protocol_id, "case.opened", e.institution or PENDING)] += 1
            continue
        if e.step_id is None:
            continue
        occurrence = (e.case_id, e.step_id)
        if e.action == "task.opened":
            opened[occurrence] = e.at
        elif e.action == "escalation.rung":
            rungs = fired.setdefault(occurrence, [])
            rungs.append((len(rungs) + 1, e.at, e.protocol_id))
        elif e.action == "task.completed":
            institution = e.institution or PENDING
            began = opened.pop(occurrence, None)
            if within(e.at):
                cell = tasks[(e.protocol_id, e.step_id, institution)]
                cell.count += 1
                if began is not None:
                    cell.durations.append((e.at - began).total_seconds() / 3600)
                cell.on_time += e.deadline_status == "on_time"
                cell.late += e.deadline_status == "late"
            settle(occurrence, e.step_id, institution)
        elif e.action == "task.cancelled":
            opened.pop(occurrence, None)
            settle(occurrence, e.step_id, PENDING)
    for occurrence in list(fired):
        settle(occurrence, occurrence[1], PENDING)
    return {
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "k": k,
        "cases": case_rows(dict(cases), k),
        "tasks": _task_rows(tasks, escalations, k),
    }


def count_table(measures: dict[str, dict[Key, int]], k: int) -> dict[Key, dict[str, Any]]:
    """Every cell and margin of each count measure, suppressed (``None``) where it must be.

    Public for other tables of counts keyed like the report's (the dashboard's live counts)."""
    keys = {key for values in measures.values() for key in values}
    groups = groups_for(keys)
    table: dict[Key, dict[str, Any]] = {}
    for name, values in measures.items():
        full = with_margins({key: values.get(key, 0) for key in keys})
        hidden = suppress(full, groups, k)
        for key, value in full.items():
            row = table.setdefault(key, {"suppressed": []})
            row[name] = None if key in hidden else value
            if key in hidden:
                row["suppressed"].append(name)
    return table


def case_rows(cases: dict[Key, int], k: int) -> list[dict[str, Any]]:
    """Cases have no step: a cell ``(p, case.opened, i)`` and its margin ``(p, *, i)`` are the
    same number, so each is shown only where both are publishable (hiding more never reveals)."""
    table = count_table({"cases_opened": cases}, k)
    rows = []
    for (p, s, i), row in sorted(table.items(), key=_order):
        if s == ALL and p != ALL:
            continue  # the twin of a (p, case.opened, *) row
        twin = table.get((p, ALL, i), row)
        value = (
            None
            if row["cases_opened"] is None or twin["cases_opened"] is None
            else row["cases_opened"]
        )
        rows.append(
            {
                "protocol_id": p,
                "institution": i,
                "cases_opened": value,
                "suppressed": [] if value is not None else ["cases_opened"],
            }
        )
    return rows


def _order(item: tuple[Key, Any]) -> tuple[int, str, int, str, int, str]:
    p, s, i = item[0]
    return (p == ALL, p, s == ALL, s, i == ALL, i)


def _task_rows(
    tasks: dict[Key, _Cell], escalations: dict[int, dict[Key, int]], k: int
) -> list[dict[str, Any]]:
    keys = set(tasks) | {key for per in escalations.values() for key in per}
    aggregated: dict[Key, _Cell] = defaultdict(_Cell)
    for (p, s, i), cell in tasks.items():
        for key in (
            (p, s, i),
            (p, s, ALL),
            (p, ALL, i),
            (p, ALL, ALL),
            (ALL, ALL, i),
            (ALL, ALL, ALL),
        ):
            agg = aggregated[key]
            agg.count += cell.count
            agg.durations.extend(cell.durations)
            agg.on_time += cell.on_time
            agg.late += cell.late
    measures: dict[str, dict[Key, int]] = {
        "tasks_completed": {k_: tasks[k_].count for k_ in tasks},
        "tasks_on_time": {k_: tasks[k_].on_time for k_ in tasks},
        "tasks_late": {k_: tasks[k_].late for k_ in tasks},
    }
    for rung in sorted(escalations):
        measures[f"escalations_rung_{rung}"] = dict(escalations[rung])
    table = count_table(
        {name: {key: v.get(key, 0) for key in keys} for name, v in measures.items()}, k
    )
    rows: list[dict[str, Any]] = [
        {"protocol_id": p, "step_id": s, "institution": i, **values}
        for (p, s, i), values in sorted(table.items(), key=_order)
    ]
    for row in rows:
        if "tasks_completed" in row["suppressed"]:
            row.update(median_hours=None, p90_hours=None, within_deadline_share=None)
            continue
        cell = aggregated.get((row["protocol_id"], row["step_id"], row["institution"]), _Cell())
        row["median_hours"] = (
            round(statistics.median(cell.durations), 2) if cell.durations else None
        )
        row["p90_hours"] = _hours(cell.durations, 0.9) if cell.durations else None
        judged = cell.on_time + cell.late
        if {"tasks_on_time", "tasks_late"} & set(row["suppressed"]):
            row["within_deadline_share"] = None
            row["suppressed"] = [*row["suppressed"], "within_deadline_share"]
        else:
            row["within_deadline_share"] = round(cell.on_time / judged, 4) if judged else None
    return rows


def to_csv(rows: list[dict[str, Any]]) -> str:
    """One line per row; a suppressed value is empty and named in the ``suppressed`` column."""
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                c: " ".join(v) if isinstance(v, list) else ("" if v is None else v)
                for c, v in row.items()
            }
        )
    return out.getvalue()


def compliance_svg(report: dict[str, Any]) -> str:
    """A horizontal bar chart of the share of tasks completed within the deadline, per
    institution over all protocols (suppressed institutions are labelled, not drawn)."""
    rows = [
        r
        for r in report["tasks"]
        if r["protocol_id"] == ALL and r["step_id"] == ALL and r["institution"] != ALL
    ]
    width, bar_x, bar_w, line = 640, 180, 380, 28
    height = 60 + line * max(1, len(rows))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-family="sans-serif" font-size="13">',
        "<title>Tareas completadas dentro del plazo, por institución / "
        "Tasks completed within the deadline, per institution</title>",
        f'<text x="10" y="22" font-weight="bold">{escape(report["period"]["from"][:10])} – '
        f"{escape(report['period']['to'][:10])} (k = {report['k']})</text>",
    ]
    for n, row in enumerate(rows):
        y = 40 + n * line
        name = escape(str(row["institution"]))
        parts.append(f'<text x="10" y="{y + 15}">{name}</text>')
        share = row.get("within_deadline_share")
        if share is None:
            label = "suprimido / suppressed" if row["suppressed"] else "sin plazo / no deadline"
            parts.append(f'<text x="{bar_x}" y="{y + 15}" fill="#666">{label}</text>')
            continue
        parts.append(
            f'<rect x="{bar_x}" y="{y}" width="{bar_w}" height="20" fill="#eee"/>'
            f'<rect x="{bar_x}" y="{y}" width="{round(bar_w * share, 1)}" height="20" '
            f'fill="{"#2e7d32" if share >= 0.9 else "#f9a825" if share >= 0.7 else "#c62828"}"/>'
            f'<text x="{bar_x + bar_w + 8}" y="{y + 15}">{share * 100:.1f}% '
            f"(n={row['tasks_completed']})</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


#: Okabe-Ito (without its yellow and black: too faint, and the total's), then Paul Tol's muted
#: colours: ten lines told apart with the common colour-vision deficiencies.
PALETTE = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#882255",
    "#117733",
    "#332288",
    "#999933",
)
Series = tuple[str, Sequence[float | None]]


def compliance_series_svg(
    periods: Sequence[str], lines: Sequence[Series], total: Series | None, title: str
) -> str:
    """A line chart of the share completed within the deadline over consecutive periods: one
    line per institution, the total dashed. ``None`` (suppressed, or nothing with a deadline)
    is a gap, never a drawn point: pass only shares a report published. Sized for a phone
    (360 wide); it scales."""
    width, left, right, top, plot_h = 360, 34, 22, 10, 150
    span = width - left - right
    legend_y = top + plot_h + 40
    height = legend_y + 20 * max(1, math.ceil((len(lines) + bool(total)) / 3))
    every = max(1, math.ceil(len(periods) / 6))  # at most 6 period labels

    def x(i: int) -> float:
        return round(left + (span * i / (len(periods) - 1) if len(periods) > 1 else span / 2), 1)

    def y(share: float) -> float:
        return round(top + plot_h * (1 - share), 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
    ]
    for level in (0.0, 0.5, 0.9, 1.0):
        dashed = ' stroke-dasharray="3 3"' if level == 0.9 else ""  # the 90 % line
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(level)}" y2="{y(level)}" '
            f'stroke="#ccc"{dashed}/>'
            f'<text x="{left - 4}" y="{y(level) + 4}" text-anchor="end" fill="#555">'
            f"{level * 100:.0f}%</text>"
        )
    for i, period in enumerate(periods):
        if i % every == 0 or i == len(periods) - 1:
            parts.append(
                f'<text x="{x(i)}" y="{top + plot_h + 16}" text-anchor="middle" fill="#555">'
                f"{escape(period)}</text>"
            )
    styled = [(total[0], total[1], "#333", ' stroke-dasharray="5 3"')] if total else []
    styled += [(n, s, PALETTE[i % len(PALETTE)], "") for i, (n, s) in enumerate(lines)]
    for name, shares, colour, dash in styled:  # the total first, under the others
        run: list[str] = []
        for i, share in enumerate([*shares, None]):
            if share is not None:
                run.append(f"{x(i)},{y(share)}")
                continue
            if len(run) > 1:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                    f'stroke-width="2"{dash}/>'
                )
            run = []
        for i, share in enumerate(shares):
            if share is not None:
                parts.append(
                    f'<circle cx="{x(i)}" cy="{y(share)}" r="3.5" fill="{colour}">'
                    f"<title>{escape(name)} {escape(periods[i])}: {share * 100:.1f}%</title>"
                    "</circle>"
                )
    for i, share in enumerate(total[1] if total else []):  # the total's points: rings on top
        if share is not None:
            parts.append(
                f'<circle cx="{x(i)}" cy="{y(share)}" r="5.5" fill="none" stroke="#333" '
                'stroke-width="1.5"/>'
            )
    legend = [(n, PALETTE[i % len(PALETTE)]) for i, (n, _) in enumerate(lines)]
    legend += [(total[0], "#333")] if total else []
    for n, (name, colour) in enumerate(legend):
        lx, ly = 8 + (n % 3) * 118, legend_y + 20 * (n // 3)
        parts.append(
            f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{lx + 17}" y="{ly}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


async def compliance(
    sessions: async_sessionmaker[AsyncSession], start: datetime, end: datetime, k: int
) -> dict[str, Any]:
    return compute(await load_events(sessions, end), start, end, k)
