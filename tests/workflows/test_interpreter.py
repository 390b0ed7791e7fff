"""The pure interpreter, without a server: branches, deadlines, escalation, follow-ups,
consent, closure, rejections, and property tests over random event sequences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.casework import form_schema
from protocols.loader import load_protocol
from protocols.model import Protocol
from tests.api.casework_support import form_for
from workflows.interpreter import (
    Actor,
    Audit,
    CaseClosed,
    CaseState,
    Claim,
    Complete,
    Notify,
    Opened,
    Rejection,
    SetFact,
    TaskOpened,
    Tick,
    VaultWrite,
    apply,
    check,
    next_wake,
)

MINI = Protocol.model_validate(
    yaml.safe_load((Path(__file__).parent / "mini_protocol.yaml").read_text())
)
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # a Monday, 09:00 in Guatemala
RESPONDER = Actor(
    actor_id="usr_resp0001", role="responder", institution="TEAM", groups=["team:responder"]
)
OTHER = Actor(
    actor_id="usr_resp0002", role="responder", institution="TEAM", groups=["team:responder"]
)
ATTORNEY = Actor(
    actor_id="usr_attn0001", role="responder", institution="CHILD", groups=["child:attorney"]
)
COORD = Actor(
    actor_id="usr_coor0001", role="coordinator", institution="TEAM", groups=["team:coordinator"]
)


def run(state: CaseState | None, event: Any) -> tuple[CaseState, list[Any]]:
    if not isinstance(event, Tick):
        check(MINI, state, event)
    return apply(MINI, state, event, case_id="case_test0001", protocol_hash="h")


def open_steps(state: CaseState) -> list[str]:
    return sorted(t.step_id for t in state.open_tasks())


def task(state: CaseState, step: str) -> str:
    found = state.task_of(step)
    assert found is not None, f"{step} is not open: {open_steps(state)}"
    return found.task_id


def complete(
    state: CaseState, step: str, actor: Actor, at: datetime, form: dict[str, Any] | None = None
) -> tuple[CaseState, list[Any]]:
    return run(state, Complete(at=at, actor=actor, task_id=task(state, step), form=form or {}))


def audits(actions: list[Any]) -> list[str]:
    return [a.action for a in actions if isinstance(a, Audit)]


def opened(facts: dict[str, Any]) -> CaseState:
    state, actions = run(None, Opened(at=T0, actor=COORD, facts=facts))
    assert audits(actions)[:2] == ["case.opened", "task.opened"]
    return state


def test_opening_opens_the_first_step_with_its_deadline() -> None:
    state = opened({"minor": True})
    assert open_steps(state) == ["activate"]
    assert state.task_of("activate").due_at == T0 + timedelta(hours=24)  # type: ignore[union-attr]
    assert next_wake(MINI, state) == T0 + timedelta(hours=24)


def test_child_branch_and_business_day_deadline() -> None:
    state = opened({"minor": True})
    state, actions = complete(
        state, "activate", RESPONDER, T0 + timedelta(hours=1), {"place": "Albergue 3", "people": 2}
    )
    writes = [a for a in actions if isinstance(a, VaultWrite)]
    assert {w.field for w in writes} == {"form.activate.place", "form.activate"}
    assert all("Albergue" not in repr(a) for a in actions if not isinstance(a, VaultWrite))
    assert open_steps(state) == ["child_referral"]
    # opened Monday 10:00 local + 2 business days = Wednesday 10:00 local
    assert state.task_of("child_referral").due_at == T0 + timedelta(days=2, hours=1)  # type: ignore[union-attr]
    state, _ = complete(state, "child_referral", ATTORNEY, T0 + timedelta(hours=2))
    assert open_steps(state) == ["referral_done"]


def test_business_days_skip_weekends_and_holidays() -> None:
    friday = datetime(2026, 12, 24, 15, 0, tzinfo=UTC)  # Thursday 24 Dec, 09:00 local
    state, _ = apply(
        MINI, None, Opened(at=friday, actor=COORD, facts={"minor": True}), case_id="case_x0001"
    )
    state, _ = apply(
        MINI,
        state,
        Complete(at=friday, actor=RESPONDER, task_id=task(state, "activate"), form={"place": "x"}),
    )
    # Thu 24 + 2 business days: Fri 25 is a holiday, Sat/Sun skipped -> Mon 28, Tue 29
    assert state.task_of("child_referral").due_at == datetime(2026, 12, 29, 15, 0, tzinfo=UTC)  # type: ignore[union-attr]


def test_adult_branch_waits_for_consent() -> None:
    state = opened({"minor": False})
    state, _ = complete(state, "activate", RESPONDER, T0, {"place": "x"})
    assert open_steps(state) == []  # adult care may apply: consent unknown
    state, actions = run(state, SetFact(at=T0, actor=COORD, fact="consent", value="given"))
    assert "consent.recorded" in audits(actions)
    assert open_steps(state) == ["adult_care"]


def test_refused_consent_goes_straight_to_closure() -> None:
    state = opened({"minor": False, "consent": "refused"})
    state, _ = complete(state, "activate", RESPONDER, T0, {"place": "x"})
    assert open_steps(state) == ["close"]
    state, actions = complete(state, "close", COORD, T0 + timedelta(hours=3))
    assert state.closed
    assert any(isinstance(a, CaseClosed) for a in actions)
    assert next_wake(MINI, state) is None


def test_revoked_consent_cancels_open_tasks() -> None:
    state = opened({"minor": False, "consent": "given"})
    state, _ = complete(state, "activate", RESPONDER, T0, {"place": "x"})
    assert open_steps(state) == ["adult_care"]
    state, actions = run(
        state, SetFact(at=T0 + timedelta(hours=1), actor=COORD, fact="consent", value="revoked")
    )
    assert audits(actions)[:2] == ["consent.revoked", "task.cancelled"]
    assert open_steps(state) == ["close"]


def test_deadline_and_every_rung_fire_at_their_exact_time() -> None:
    state = opened({"minor": True})
    due = T0 + timedelta(hours=24)
    state, actions = run(state, Tick(at=due - timedelta(seconds=1)))
    assert actions == []
    state, actions = run(state, Tick(at=due))
    assert audits(actions) == ["deadline.missed", "escalation.rung"]
    assert [n.notice for n in actions if isinstance(n, Notify)] == ["remind_assignee"]
    assert next_wake(MINI, state) == due + timedelta(hours=2)
    state, actions = run(state, Tick(at=due + timedelta(hours=2) - timedelta(seconds=1)))
    assert actions == []
    state, actions = run(state, Tick(at=due + timedelta(hours=2)))
    (notice,) = [n for n in actions if isinstance(n, Notify)]
    assert (notice.notice, notice.targets, notice.rung) == (
        "escalate_coordinator",
        ["team:coordinator"],
        2,
    )
    state, actions = run(state, Tick(at=due + timedelta(hours=6)))
    assert [n.notice for n in actions if isinstance(n, Notify)] == ["notify_commission"]
    assert next_wake(MINI, state) is None  # ladder exhausted
    state, actions = complete(
        state, "activate", RESPONDER, due + timedelta(hours=7), {"place": "x"}
    )
    assert [
        a.deadline_status for a in actions if isinstance(a, Audit) and a.action == "task.completed"
    ] == ["late"]


def test_completing_on_time_cancels_the_ladder() -> None:
    state = opened({"minor": True})
    state, actions = complete(
        state, "activate", RESPONDER, T0 + timedelta(hours=23), {"place": "x"}
    )
    assert [
        a.deadline_status for a in actions if isinstance(a, Audit) and a.action == "task.completed"
    ] == ["on_time"]
    state, actions = run(state, Tick(at=T0 + timedelta(days=1, hours=10)))
    assert "escalation.rung" not in audits(actions)


def _to_follow_up(state: CaseState) -> CaseState:
    state, _ = complete(state, "activate", RESPONDER, T0, {"place": "x"})
    state, _ = complete(state, "child_referral", ATTORNEY, T0)
    state, _ = complete(state, "referral_done", COORD, T0)
    return state


def test_follow_up_repeats_until_its_condition_then_closure_opens() -> None:
    state = _to_follow_up(opened({"minor": True}))
    state, _ = complete(state, "follow_up", RESPONDER, T0 + timedelta(days=1))
    assert open_steps(state) == []
    week = T0 + timedelta(days=8)
    assert next_wake(MINI, state) == week
    state, actions = run(state, Tick(at=week))
    assert [a.task.occurrence for a in actions if isinstance(a, TaskOpened)] == [2]
    state, _ = run(state, SetFact(at=week, actor=COORD, fact="follow_up_complete", value=True))
    state, _ = complete(state, "follow_up", RESPONDER, week)
    assert open_steps(state) == ["close"]


def test_follow_up_stops_after_max_occurrences() -> None:
    state = _to_follow_up(opened({"minor": True}))
    at = T0
    for occurrence in (1, 2, 3):
        if occurrence > 1:
            at = at + timedelta(days=7)
            state, _ = run(state, Tick(at=at))
        assert state.task_of("follow_up").occurrence == occurrence  # type: ignore[union-attr]
        state, _ = complete(state, "follow_up", RESPONDER, at)
    assert open_steps(state) == ["close"]
    assert state.follow_ups == {}


@pytest.mark.parametrize(
    ("make", "code", "status"),
    [
        (
            lambda s: Claim(at=T0, actor=ATTORNEY, task_id=task(s, "activate")),
            "not_a_candidate",
            403,
        ),
        (
            lambda s: Complete(at=T0, actor=RESPONDER, task_id=task(s, "activate"), form={}),
            "form_invalid",
            422,
        ),
        (
            lambda s: Complete(
                at=T0,
                actor=RESPONDER,
                task_id=task(s, "activate"),
                form={"place": "x", "people": "dos"},
            ),
            "form_invalid",
            422,
        ),
        (
            lambda s: Complete(
                at=T0, actor=RESPONDER, task_id=task(s, "activate"), form={"place": "x", "extra": 1}
            ),
            "form_invalid",
            422,
        ),
        (lambda s: Claim(at=T0, actor=RESPONDER, task_id="task_nope"), "task_not_found", 404),
        (lambda s: SetFact(at=T0, actor=COORD, fact="age", value=True), "unknown_fact", 422),
        (
            lambda s: SetFact(at=T0, actor=COORD, fact="consent", value="maybe"),
            "illegal_value",
            422,
        ),
        (lambda s: SetFact(at=T0, actor=COORD, fact="minor", value="yes"), "illegal_value", 422),
        (lambda s: Opened(at=T0, actor=COORD), "case_exists", 409),
    ],
)
def test_illegal_commands_are_rejected(make: Any, code: str, status: int) -> None:
    state = opened({"minor": True})
    with pytest.raises(Rejection) as err:
        check(MINI, state, make(state))
    assert (err.value.code, err.value.status) == (code, status)


def test_form_errors_name_fields_and_never_repeat_values() -> None:
    state = opened({"minor": True})
    with pytest.raises(Rejection) as err:
        check(
            MINI,
            state,
            Complete(
                at=T0, actor=RESPONDER, task_id=task(state, "activate"), form={"people": "Ximena"}
            ),
        )
    assert err.value.fields == {"place": "required", "people": "expected_integer"}
    assert "Ximena" not in repr(err.value.__dict__)


def test_claimed_by_someone_else_is_a_conflict() -> None:
    state = opened({"minor": True})
    state, _ = run(state, Claim(at=T0, actor=RESPONDER, task_id=task(state, "activate")))
    with pytest.raises(Rejection) as err:
        check(MINI, state, Claim(at=T0, actor=OTHER, task_id=task(state, "activate")))
    assert err.value.code == "claimed_by_other"
    with pytest.raises(Rejection):
        check(
            MINI,
            state,
            Complete(at=T0, actor=OTHER, task_id=task(state, "activate"), form={"place": "x"}),
        )
    check(
        MINI, state, Claim(at=T0, actor=RESPONDER, task_id=task(state, "activate"))
    )  # idempotent for the holder


def test_closed_case_refuses_everything() -> None:
    state = opened({"minor": False, "consent": "refused"})
    state, _ = complete(state, "activate", RESPONDER, T0, {"place": "x"})
    state, _ = complete(state, "close", COORD, T0)
    with pytest.raises(Rejection) as err:
        check(MINI, state, SetFact(at=T0, actor=COORD, fact="minor", value=True))
    assert err.value.code == "case_closed"


# --- properties ---------------------------------------------------------------------------

FACT_VALUES = [
    ("minor", True),
    ("minor", False),
    ("consent", "given"),
    ("consent", "refused"),
    ("consent", "revoked"),
    ("follow_up_complete", True),
]
ACTORS = {"team:responder": RESPONDER, "child:attorney": ATTORNEY, "team:coordinator": COORD}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    initial=st.lists(st.sampled_from(FACT_VALUES), max_size=2),
    moves=st.lists(
        st.tuples(st.sampled_from(["complete", "fact", "tick", "claim"]), st.integers(0, 50)),
        max_size=40,
    ),
)
def test_no_event_sequence_reaches_an_impossible_state(
    initial: list[Any], moves: list[tuple[str, int]]
) -> None:
    state = opened(dict(initial))
    now = T0
    completed: set[str] = set()
    for move, n in moves:
        now += timedelta(hours=n % 30)
        before = state.model_copy(deep=True)
        open_tasks = state.open_tasks()
        try:
            if move == "tick":
                state, _ = run(state, Tick(at=now))
            elif move == "fact":
                fact, value = FACT_VALUES[n % len(FACT_VALUES)]
                state, _ = run(state, SetFact(at=now, actor=COORD, fact=fact, value=value))
            elif open_tasks:
                t = open_tasks[n % len(open_tasks)]
                actor = ACTORS[t.candidate_groups[0]]
                form = {"place": "x"} if t.step_id == "activate" else {}
                event = (
                    Claim(at=now, actor=actor, task_id=t.task_id)
                    if move == "claim"
                    else Complete(at=now, actor=actor, task_id=t.task_id, form=form)
                )
                state, _ = run(state, event)
        except Rejection as rejected:
            assert rejected.code == "case_closed"  # noqa: PT017
            assert before.closed
            continue
        # invariants
        for t in state.tasks.values():
            if t.task_id in completed:
                assert t.status == "completed", "a completed task was reopened"
            if t.status == "completed":
                completed.add(t.task_id)
            if t.due_at is not None:
                assert MINI.step(t.step_id).deadline is not None, (
                    "a deadline without a step deadline"
                )
            assert t.revision >= 1
        if state.closed:
            assert state.open_tasks() == [], "an open task on a closed case"
            assert next_wake(MINI, state) is None
        assert state.revision >= before.revision
        assert len({t.task_id for t in state.tasks.values()}) == len(state.tasks)


@settings(max_examples=100, deadline=None)
@given(
    minor=st.booleans(),
    consent=st.sampled_from(["given", "refused", "revoked"]),
    order=st.randoms(),
)
def test_every_case_reaches_closure_when_its_tasks_are_done(
    minor: bool, consent: str, order: Any
) -> None:
    state = opened({"minor": minor, "consent": consent})
    now = T0
    for _ in range(40):
        if state.closed:
            break
        tasks = state.open_tasks()
        if not tasks:
            wake = next_wake(MINI, state)
            assert wake is not None, f"stuck with nothing open: {state.facts}"
            now = max(now, wake)
            state, _ = run(state, Tick(at=now))
            continue
        t = order.choice(tasks)
        form = {"place": "x"} if t.step_id == "activate" else {}
        state, _ = run(
            state,
            Complete(at=now, actor=ACTORS[t.candidate_groups[0]], task_id=t.task_id, form=form),
        )
    assert state.closed


def test_a_follow_up_that_ended_after_it_was_scheduled_wakes_nothing() -> None:
    """The team completes the visit, then records that follow-up is complete (or consent is
    revoked): the visit scheduled in between must not keep waking the case. Before the fix,
    next_wake kept returning that time after it passed, so the workflow ticked in a loop with
    zero-length timers until the case closed."""
    for fact, value in (("follow_up_complete", True), ("minor", False)):  # minor: may apply
        state = _to_follow_up(opened({"minor": True}))
        state, _ = complete(state, "follow_up", RESPONDER, T0 + timedelta(days=1))
        state, _ = run(
            state, SetFact(at=T0 + timedelta(days=2), actor=COORD, fact=fact, value=value)
        )
        week = T0 + timedelta(days=8)
        assert next_wake(MINI, state) is None or next_wake(MINI, state) > week, fact  # type: ignore[operator]
        state, _ = run(state, Tick(at=week + timedelta(hours=1)))
        wake = next_wake(MINI, state)
        assert wake is None or wake > week + timedelta(hours=1), (fact, wake)
        # the legacy rule (kept for running cases) is the looping one
        assert next_wake(MINI, state, legacy_follow_ups=True) == week


# --- form answers that record facts (the shipped protocols, 1.1.0 against 1.0.0) -----------

GT_NEW = load_protocol("gt-eri", "1.1.0")
GT_OLD = load_protocol("gt-eri", "1.0.0")


def _at_identification(p: Protocol, facts: dict[str, Any]) -> tuple[CaseState, datetime]:
    """A case of ``p`` opened with ``facts``, worked up to its open identification task."""
    state, _ = apply(
        p, None, Opened(at=T0, actor=COORD, facts=facts), case_id="case_test0002", protocol_hash="h"
    )
    at = T0
    while state.task_of("identification") is None:
        (open_task,) = state.open_tasks()
        at += timedelta(minutes=10)
        event = Complete(
            at=at,
            actor=COORD,
            task_id=open_task.task_id,
            form=form_for(form_schema(p.step(open_task.step_id), "en")),
        )
        check(p, state, event)
        state, _ = apply(p, state, event)
    return state, at + timedelta(minutes=10)


def _identify(p: Protocol, state: CaseState, at: datetime, minor: bool) -> tuple[CaseState, Any]:
    form = {"indicators_confirmed": True, "minor": minor, "foreign_national": False}
    event = Complete(at=at, actor=COORD, task_id=task(state, "identification"), form=form)
    check(p, state, event)
    return apply(p, state, event)


def test_under_18_on_the_identification_form_records_the_fact_and_opens_the_child_route() -> None:
    state, at = _at_identification(GT_NEW, {})
    assert "minor" not in state.facts
    state, actions = _identify(GT_NEW, state, at, minor=True)
    assert state.facts["minor"] is True and state.facts["foreign_national"] is False
    assert state.fact_times["minor"] == at
    recorded = [a for a in actions if isinstance(a, Audit) and a.action == "fact.changed"]
    assert [(a.step_id, a.detail) for a in recorded] == [
        ("identification", {"fact": "minor", "corrected": False}),
        ("identification", {"fact": "foreign_national", "corrected": False}),
    ]
    child = state.task_of("child_pgn_intervention")
    assert child is not None and child.status == "open"
    assert child.due_at == at + timedelta(hours=2)  # anchored on the fact's recording


def test_a_form_answer_corrects_a_fact_and_an_equal_answer_records_nothing() -> None:
    state, at = _at_identification(GT_NEW, {"minor": False, "foreign_national": False})
    state, actions = _identify(GT_NEW, state, at, minor=True)
    recorded = [a.detail for a in actions if isinstance(a, Audit) and a.action == "fact.changed"]
    assert recorded == [{"fact": "minor", "corrected": True}]  # foreign_national was known
    assert state.task_of("child_pgn_intervention") is not None


def test_a_case_pinned_to_1_0_0_keeps_its_forms_apart_from_its_facts() -> None:
    state, at = _at_identification(GT_OLD, {})
    state, actions = _identify(GT_OLD, state, at, minor=True)
    assert "minor" not in state.facts
    assert "fact.changed" not in audits(actions)
    assert state.task_of("child_pgn_intervention") is None  # waits for the fact
