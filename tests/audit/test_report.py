"""Compliance reports: figures from ledger events, k-anonymity with complementary suppression."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from eri.audit import report
from eri.audit.report import ALL, Event

START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 2, 1, tzinfo=UTC)
K = 11


def completed_tasks(
    institution: str, n: int, *, step: str = "activation", late: int = 0, rungs: int = 0
) -> list[Event]:
    events: list[Event] = []
    for c in range(n):
        case = f"case_{institution.lower()}{step[:3]}{c:03d}"
        at = START + timedelta(days=1, hours=c)
        events.append(Event("case.opened", at, case, 1, "gt-eri", None, institution, None))
        events.append(Event("task.opened", at, case, 2, "gt-eri", step, None, None))
        for r in range(rungs):
            events.append(
                Event(
                    "escalation.rung",
                    at + timedelta(hours=r + 1),
                    case,
                    3 + r,
                    "gt-eri",
                    step,
                    None,
                    "late",
                )
            )
        status = "late" if c < late else "on_time"
        done = at + timedelta(hours=c + 1)
        events.append(Event("task.completed", done, case, 9, "gt-eri", step, institution, status))
    return events


def row(rows: list[dict[str, Any]], step: str, institution: str) -> dict[str, Any]:
    (found,) = [
        r
        for r in rows
        if r["protocol_id"] == "gt-eri" and r["step_id"] == step and r["institution"] == institution
    ]
    return found


def test_a_cell_of_k_minus_1_is_suppressed_and_a_cell_of_k_is_shown() -> None:
    # SVET k-1, PGN k, MP 1: the two small cells hide each other (sum k), PGN stays shown.
    events = (
        completed_tasks("SVET", K - 1)
        + completed_tasks("PGN", K, late=2)
        + completed_tasks("MP", 1)
    )
    result = report.compute(events, START, END, K)
    tasks = result["tasks"]
    svet, pgn = row(tasks, "activation", "SVET"), row(tasks, "activation", "PGN")
    assert svet["tasks_completed"] is None and svet["median_hours"] is None
    assert "tasks_completed" in svet["suppressed"]
    assert pgn["tasks_completed"] == K and "tasks_completed" not in pgn["suppressed"]
    # 2 late of 11: a share would give the 2 away (share x 11), so it is withheld
    assert pgn["within_deadline_share"] is None and pgn["tasks_late"] is None
    assert "within_deadline_share" in pgn["suppressed"]
    assert pgn["median_hours"] == 6.0 and pgn["p90_hours"] == 10.0  # 1..11 hours
    assert row(tasks, "activation", ALL)["tasks_completed"] == 2 * K
    cases = {(r["protocol_id"], r["institution"]): r["cases_opened"] for r in result["cases"]}
    assert cases[("gt-eri", "SVET")] is None and cases[("gt-eri", "PGN")] == K


def test_a_share_within_deadline_never_gives_away_a_count_below_k() -> None:
    events = (
        completed_tasks("SVET", K, late=2)
        + completed_tasks("PGN", 2 * K, late=K)
        + completed_tasks("PNC", 4 * K, late=K + 1)
    )
    tasks = report.compute(events, START, END, K)["tasks"]
    svet, pnc = row(tasks, "activation", "SVET"), row(tasks, "activation", "PNC")
    assert svet["tasks_completed"] == K and svet["within_deadline_share"] is None
    assert pnc["within_deadline_share"] == round((3 * K - 1) / (4 * K), 4)
    shown = [r for r in tasks if r["within_deadline_share"] is not None]
    assert shown  # the test would pass vacuously otherwise
    for r in shown:
        assert r["tasks_on_time"] is not None and r["tasks_late"] is not None
        for count in (r["tasks_on_time"], r["tasks_late"]):
            assert count == 0 or count >= K, r


def test_a_lone_suppressed_cell_takes_a_complement_so_totals_do_not_reveal_it() -> None:
    events = completed_tasks("SVET", K - 1) + completed_tasks("PGN", K) + completed_tasks("PNC", 40)
    tasks = report.compute(events, START, END, K)["tasks"]
    total = row(tasks, "activation", ALL)["tasks_completed"]
    assert total == 2 * K - 1 + 40
    assert row(tasks, "activation", "SVET")["tasks_completed"] is None
    # Without a complement, SVET = total - PGN - PNC. PGN (the smallest other) is withheld too.
    assert row(tasks, "activation", "PGN")["tasks_completed"] is None
    assert row(tasks, "activation", "PNC")["tasks_completed"] == 40


def test_escalations_by_rung_and_pending_tasks() -> None:
    events = completed_tasks("SVET", 12, rungs=2) + completed_tasks("PGN", 12, rungs=1)
    case = "case_open0001"
    at = START + timedelta(days=3)
    events += [
        Event("task.opened", at, case, 1, "gt-eri", "activation", None, None),
        Event(
            "escalation.rung",
            at + timedelta(hours=1),
            case,
            2,
            "gt-eri",
            "activation",
            None,
            "late",
        ),
    ]
    tasks = report.compute(events, START, END, K)["tasks"]
    assert row(tasks, "activation", "SVET")["escalations_rung_2"] == 12
    assert row(tasks, "activation", "PGN")["escalations_rung_2"] == 0
    assert row(tasks, "activation", ALL)["escalations_rung_1"] == 25
    # the open task's one escalation is a cell of 1: suppressed, with a complement
    assert row(tasks, "activation", report.PENDING)["escalations_rung_1"] is None


def test_the_period_bounds_what_is_counted() -> None:
    events = completed_tasks("SVET", 12)
    later = report.compute(events, END, END + timedelta(days=30), K)
    assert all(r["tasks_completed"] in (0, None) for r in later["tasks"])


def test_csv_and_svg() -> None:
    result = report.compute(
        completed_tasks("SVET", K - 1) + completed_tasks("PGN", 2 * K), START, END, K
    )
    csv_text = report.to_csv(result["tasks"])
    header, *lines = csv_text.splitlines()
    assert header.startswith("protocol_id,step_id,institution,suppressed,tasks_completed")
    assert any(line.startswith("gt-eri,activation,SVET,") and ",," in line for line in lines)
    svg = report.compliance_svg(result)
    assert svg.startswith("<svg") and "PGN" in svg and "suppressed" in svg


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.tuples(
            st.sampled_from(["p1", "p2"]),
            st.sampled_from(["s1", "s2", "s3"]),
            st.sampled_from(["A", "B", "C", "D"]),
        ),
        st.integers(0, 30),
        min_size=1,
    ),
    st.integers(2, 15),
)
def test_no_suppressed_count_can_be_recovered_from_published_totals(
    cells: dict[report.Key, int], k: int
) -> None:
    full = report.with_margins(cells)
    groups = report.groups_for(cells)
    hidden = report.suppress(full, groups, k)
    assert all(full[key] == 0 or full[key] >= k for key in full if key not in hidden)
    for total, members in groups:
        if total in hidden:
            continue
        secret = [m for m in members if m in hidden]
        if secret:  # at least two unknowns, together at least k: neither is pinned down
            assert len(secret) >= 2 and sum(full[m] for m in secret) >= k
