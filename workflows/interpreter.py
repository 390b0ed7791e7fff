"""The protocol interpreter: a pure function from (protocol, case state, event) to
(new case state, actions).

No I/O and no clock: time comes in with every event (``at``), and ``Tick`` says "it is now
``at``" so that deadlines, escalation rungs and follow-ups that fell due are processed. The
workflow (the durable shell) feeds events in and carries the actions out through activities.

Step semantics are those of :mod:`protocols.paths`, applied to facts that arrive over time:

- a step *applies* when its ``when`` condition holds for the facts recorded so far; while a
  fact it reads is unknown, it *may apply* and waits;
- a step opens as a task when it applies, every ``requires`` step is done, one ``requires_any``
  step is done (if any are named), and every ``after`` step is done or does not apply; the
  closure step comes after every other step;
- a step is *done* when a task of it was completed and, for a repeating step, its follow-up
  schedule has ended (its ``until`` condition holds, or ``max_occurrences`` were done);
- a completed step is never reopened; an open task whose step stops applying (e.g. consent was
  revoked) is cancelled; completing the closure step closes the case.

Illegal commands are refused by :func:`check` with a :class:`Rejection` before anything is
written; :func:`apply` assumes a command that :func:`check` accepted.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from protocols.conditions import FactValue, evaluate_partial
from protocols.durations import due_at, parse_duration
from protocols.model import Deadline, FormField, Protocol, Step

# --- state -------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Task(_Model):
    task_id: str
    step_id: str
    occurrence: int = 1
    status: Literal["open", "completed", "cancelled"] = "open"
    candidate_groups: list[str]
    assignee: str | None = None
    opened_at: datetime
    due_at: datetime | None = None
    deadline_missed: bool = False
    rungs_fired: int = 0
    closed_at: datetime | None = None
    closed_by: str | None = None
    revision: int = 1  # bumped on every change: the task's ETag


class CaseState(_Model):
    case_id: str
    protocol_id: str
    protocol_version: str
    protocol_hash: str
    opened_at: datetime
    facts: dict[str, FactValue] = {}
    fact_times: dict[str, datetime] = {}
    tasks: dict[str, Task] = {}
    completions: dict[str, list[datetime]] = {}  # step id -> completion times of its tasks
    follow_ups: dict[str, datetime] = {}  # step id -> when its next occurrence opens
    closed_at: datetime | None = None
    revision: int = 0

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    def open_tasks(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.status == "open"]

    def task_of(self, step_id: str) -> Task | None:
        """The step's open task, if any."""
        for task in self.tasks.values():
            if task.step_id == step_id and task.status == "open":
                return task
        return None


# --- events (inputs) ---------------------------------------------------------------------


class Actor(_Model):
    """Who acts: opaque id, ERI role (responder, coordinator, ...), institution code, and the
    protocol candidate groups (``institution:role``) the person belongs to."""

    actor_id: str
    role: str
    institution: str
    groups: list[str] = []


class Opened(_Model):
    kind: Literal["opened"] = "opened"
    at: datetime
    actor: Actor
    facts: dict[str, FactValue] = {}


class Claim(_Model):
    kind: Literal["claim"] = "claim"
    at: datetime
    actor: Actor
    task_id: str
    if_revision: int | None = None  # the task revision the caller saw (HTTP If-Match)


class Unclaim(_Model):
    kind: Literal["unclaim"] = "unclaim"
    at: datetime
    actor: Actor
    task_id: str
    if_revision: int | None = None  # the task revision the caller saw (HTTP If-Match)


class Reassign(_Model):
    kind: Literal["reassign"] = "reassign"
    at: datetime
    actor: Actor
    task_id: str
    assignee: str | None
    if_revision: int | None = None


class Complete(_Model):
    kind: Literal["complete"] = "complete"
    at: datetime
    actor: Actor
    task_id: str
    if_revision: int | None = None  # the task revision the caller saw (HTTP If-Match)
    form: dict[str, Any] = {}


class SetFact(_Model):
    """Add or correct a fact (consent recorded, refused or revoked is the fact ``consent``)."""

    kind: Literal["set_fact"] = "set_fact"
    at: datetime
    actor: Actor
    fact: str
    value: FactValue


class Tick(_Model):
    kind: Literal["tick"] = "tick"
    at: datetime


Event = Annotated[
    Opened | Claim | Unclaim | Reassign | Complete | SetFact | Tick, Field(discriminator="kind")
]


# --- actions (outputs) -------------------------------------------------------------------


class TaskOpened(_Model):
    kind: Literal["task_opened"] = "task_opened"
    task: Task


class TaskChanged(_Model):
    """A task's status, assignee or deadline changed: update the projection."""

    kind: Literal["task_changed"] = "task_changed"
    task: Task


class Audit(_Model):
    """One ledger entry (PII-free: ids and codes only)."""

    kind: Literal["audit"] = "audit"
    action: str
    step_id: str | None = None
    task_id: str | None = None
    actor: Actor | None = None
    outcome: str = "ok"
    deadline_status: Literal["on_time", "late", "none"] | None = None
    detail: dict[str, Any] = {}


class Notify(_Model):
    kind: Literal["notify"] = "notify"
    notice: Literal["remind_assignee", "escalate_coordinator", "notify_commission", "task_opened"]
    task_id: str
    step_id: str
    targets: list[str] = []
    assignee: str | None = None
    rung: int | None = None


class VaultWrite(_Model):
    """Form values marked ``pii`` go to the vault, never into the ledger or projection."""

    kind: Literal["vault_write"] = "vault_write"
    field: str
    value: Any


class CaseClosed(_Model):
    kind: Literal["case_closed"] = "case_closed"
    at: datetime


Action = Annotated[
    TaskOpened | TaskChanged | Audit | Notify | VaultWrite | CaseClosed, Field(discriminator="kind")
]


class Rejection(Exception):
    """An illegal command. ``code`` is stable; ``status`` is the HTTP status it maps to;
    messages are es/en and never repeat the submitted values."""

    def __init__(
        self,
        code: str,
        status: int,
        message: tuple[str, str],
        fields: dict[str, str] | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.message = message
        self.fields = fields or {}


# --- rules -------------------------------------------------------------------------------


def _applies(step: Step, facts: dict[str, FactValue]) -> bool | None:
    return evaluate_partial(step.when, facts)


def _completed(state: CaseState, step_id: str) -> bool:
    return bool(state.completions.get(step_id))


def _schedule_over(protocol: Protocol, state: CaseState, step: Step) -> bool:
    if step.repeats is None:
        return True
    schedule = protocol.follow_up_schedules[step.repeats]
    done = len(state.completions.get(step.id, []))
    if schedule.max_occurrences is not None and done >= schedule.max_occurrences:
        return True
    return evaluate_partial(schedule.until, state.facts) is True


def _follow_up_may_open(protocol: Protocol, state: CaseState, step: Step) -> bool:
    return _applies(step, state.facts) is True and not _schedule_over(protocol, state, step)


def step_done(protocol: Protocol, state: CaseState, step: Step) -> bool:
    return _completed(state, step.id) and _schedule_over(protocol, state, step)


def _soft(protocol: Protocol, step: Step) -> list[str]:
    if step.id == protocol.closure_step:
        return [s.id for s in protocol.steps if s.id != step.id]
    return list(step.after)


def can_start(protocol: Protocol, state: CaseState, step: Step) -> bool:
    if not all(_completed(state, dep) for dep in step.requires):
        return False
    if step.requires_any and not any(_completed(state, dep) for dep in step.requires_any):
        return False
    # ``after`` steps (and, for the closure, every step) must be done or not apply; one that
    # may still apply (a fact it reads is unknown) keeps the step waiting
    return all(
        step_done(protocol, state, dep) or _applies(dep, state.facts) is False
        for dep in (protocol.step(dep_id) for dep_id in _soft(protocol, step))
    )


def _task_id(state: CaseState, step_id: str, occurrence: int) -> str:
    return f"task_{state.case_id.removeprefix('case_')}.{step_id}.{occurrence}"


def _anchor_time(
    protocol: Protocol, state: CaseState, deadline: Deadline, opened: datetime
) -> datetime | None:
    anchor = deadline.anchor
    if anchor.event == "case_opened":
        return state.opened_at
    if anchor.event == "step_opened":
        return opened
    if anchor.event == "step_completed" and anchor.step is not None:
        times = state.completions.get(anchor.step)
        return times[0] if times else None
    if anchor.event == "fact_recorded" and anchor.fact is not None:
        return state.fact_times.get(anchor.fact)
    return None


def _due(protocol: Protocol, state: CaseState, step: Step, opened: datetime) -> datetime | None:
    if step.deadline is None:
        return None
    anchor = _anchor_time(protocol, state, step.deadline, opened)
    if anchor is None:
        return None
    years = range(anchor.year, anchor.year + 2)
    return due_at(
        anchor,
        step.deadline.duration,
        step.deadline.clock,
        protocol.timezone,
        protocol.business_calendar.holiday_set(years),
    )


def _rung_times(protocol: Protocol, step: Step, due: datetime) -> list[datetime]:
    if step.escalation is None:
        return []
    return [
        due + parse_duration(r.after).to_timedelta()
        for r in protocol.escalation_ladders[step.escalation]
    ]


def _bump(state: CaseState, task: Task) -> None:
    task.revision += 1
    state.revision += 1


def _settle(protocol: Protocol, state: CaseState, at: datetime, actions: list[Action]) -> None:
    """Open every step that can start, cancel tasks that no longer apply, close the case."""
    if state.closed:
        return
    changed = True
    while changed:
        changed = False
        for task in state.open_tasks():
            step = protocol.step(task.step_id)
            if _applies(step, state.facts) is False:
                task.status, task.closed_at = "cancelled", at
                _bump(state, task)
                actions.append(TaskChanged(task=task.model_copy()))
                actions.append(
                    Audit(action="task.cancelled", step_id=step.id, task_id=task.task_id)
                )
        for step in protocol.steps:
            if state.task_of(step.id) is not None or _applies(step, state.facts) is not True:
                continue
            occurrences = len(state.completions.get(step.id, []))
            if occurrences:
                if step.repeats is None or _schedule_over(protocol, state, step):
                    continue
                due_next = state.follow_ups.get(step.id)
                if due_next is None or due_next > at:
                    continue
                state.follow_ups.pop(step.id, None)
            elif not can_start(protocol, state, step):
                continue
            occurrence = occurrences + 1
            task = Task(
                task_id=_task_id(state, step.id, occurrence),
                step_id=step.id,
                occurrence=occurrence,
                candidate_groups=list(step.responsible),
                opened_at=at,
                due_at=_due(protocol, state, step, at),
            )
            state.tasks[task.task_id] = task
            state.revision += 1
            actions.append(TaskOpened(task=task.model_copy()))
            actions.append(Audit(action="task.opened", step_id=step.id, task_id=task.task_id))
            actions.append(
                Notify(
                    notice="task_opened",
                    task_id=task.task_id,
                    step_id=step.id,
                    targets=task.candidate_groups,
                )
            )
            changed = True
    _recompute_dues(protocol, state, actions)


def _recompute_dues(protocol: Protocol, state: CaseState, actions: list[Action]) -> None:
    """A deadline anchored on a later event (a step completed, a fact recorded) gets its due
    time once that event happened."""
    for task in state.open_tasks():
        if task.due_at is None:
            due = _due(protocol, state, protocol.step(task.step_id), task.opened_at)
            if due is not None:
                task.due_at = due
                _bump(state, task)
                actions.append(TaskChanged(task=task.model_copy()))


def _tick(protocol: Protocol, state: CaseState, at: datetime, actions: list[Action]) -> None:
    for task in state.open_tasks():
        if task.due_at is None or task.due_at > at:
            continue
        step = protocol.step(task.step_id)
        if not task.deadline_missed:
            task.deadline_missed = True
            _bump(state, task)
            actions.append(TaskChanged(task=task.model_copy()))
            actions.append(
                Audit(
                    action="deadline.missed",
                    step_id=step.id,
                    task_id=task.task_id,
                    deadline_status="late",
                )
            )
        rungs = protocol.escalation_ladders.get(step.escalation or "", [])
        times = _rung_times(protocol, step, task.due_at)
        while task.rungs_fired < len(rungs) and times[task.rungs_fired] <= at:
            rung = rungs[task.rungs_fired]
            task.rungs_fired += 1
            _bump(state, task)
            actions.append(
                Audit(
                    action="escalation.rung",
                    step_id=step.id,
                    task_id=task.task_id,
                    deadline_status="late",
                    detail={"rung": task.rungs_fired, "action": rung.action},
                )
            )
            actions.append(
                Notify(
                    notice=rung.action,
                    task_id=task.task_id,
                    step_id=step.id,
                    targets=list(rung.targets) or list(task.candidate_groups),
                    assignee=task.assignee,
                    rung=task.rungs_fired,
                )
            )
    _settle(protocol, state, at, actions)


def next_wake(
    protocol: Protocol, state: CaseState, *, legacy_follow_ups: bool = False
) -> datetime | None:
    """The earliest time something falls due (a deadline, a rung, a follow-up), or None.

    A scheduled follow-up counts only while its visit could still open: its step applies and
    its schedule has not ended (a fact recorded after the visit was scheduled can end it).
    ``legacy_follow_ups`` counts every scheduled one, as before that rule (for running cases):
    an ended one stays due, so the case woke again and again once its time had passed.
    """
    if state.closed:
        return None
    times: list[datetime] = [
        at
        for step_id, at in state.follow_ups.items()
        if legacy_follow_ups or _follow_up_may_open(protocol, state, protocol.step(step_id))
    ]
    for task in state.open_tasks():
        if task.due_at is None:
            continue
        if not task.deadline_missed:
            times.append(task.due_at)
            continue
        rung_times = _rung_times(protocol, protocol.step(task.step_id), task.due_at)
        if task.rungs_fired < len(rung_times):
            times.append(rung_times[task.rungs_fired])
    return min(times) if times else None


# --- commands ----------------------------------------------------------------------------

_CLOSED = Rejection("case_closed", 409, ("El caso está cerrado.", "The case is closed."))


def _open_task(state: CaseState, task_id: str) -> Task:
    task = state.tasks.get(task_id)
    if task is None:
        raise Rejection("task_not_found", 404, ("La tarea no existe.", "No such task."))
    if task.status != "open":
        raise Rejection(
            "task_not_open", 409, ("La tarea ya no está abierta.", "The task is no longer open.")
        )
    return task


def _may_act(task: Task, actor: Actor) -> None:
    if actor.role in ("coordinator", "admin"):
        return
    if not set(actor.groups) & set(task.candidate_groups):
        raise Rejection(
            "not_a_candidate",
            403,
            (
                "Su grupo no es responsable de esta tarea.",
                "Your group is not responsible for this task.",
            ),
        )


FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def validate_form(step: Step, form: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check form values against the step's fields; return (non-PII values, PII values).

    Raises a 422 :class:`Rejection` naming each bad field (never repeating its value).
    """
    fields = {f.id: f for f in (step.form.fields if step.form else [])}
    errors: dict[str, str] = {}
    for name in form:
        if name not in fields:
            # A field name is echoed only if it looks like one: a submitted key may be data.
            errors[name if FIELD_NAME.fullmatch(name) else "_invalid_name"] = "unknown_field"
    plain: dict[str, Any] = {}
    pii: dict[str, Any] = {}
    for field in fields.values():
        value = form.get(field.id)
        if value is None or value == "":
            if field.required:
                errors[field.id] = "required"
            continue
        problem = _field_problem(field, value)
        if problem:
            errors[field.id] = problem
            continue
        (pii if field.pii else plain)[field.id] = value
    if errors:
        raise Rejection(
            "form_invalid",
            422,
            ("Revise los campos indicados.", "Check the fields listed."),
            fields=errors,
        )
    return plain, pii


def _field_problem(field: FormField, value: Any) -> str | None:
    if field.type == "boolean":
        return None if isinstance(value, bool) else "expected_boolean"
    if field.type == "integer":
        return (
            None if isinstance(value, int) and not isinstance(value, bool) else "expected_integer"
        )
    if field.type == "enum":
        return None if value in (field.values or []) else "not_an_option"
    if not isinstance(value, str):
        return "expected_text"
    if len(value) > 20_000:
        return "too_long"
    if field.type == "date":
        try:
            datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            return "expected_date"
    if field.type == "datetime":
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return "expected_datetime"
        if parsed.tzinfo is None:
            return "expected_timezone"
    return None


def check(
    protocol: Protocol,
    state: CaseState | None,
    event: Opened | Claim | Unclaim | Reassign | Complete | SetFact,
) -> None:
    """Refuse an illegal command with a :class:`Rejection`; return None if it may be applied."""
    if isinstance(event, Opened):
        if state is not None:
            raise Rejection("case_exists", 409, ("El caso ya existe.", "The case already exists."))
        for fact, value in event.facts.items():
            _check_fact(protocol, fact, value)
        return
    if state is None:
        raise Rejection("case_not_found", 404, ("El caso no existe.", "No such case."))
    if state.closed:
        raise _CLOSED
    if isinstance(event, SetFact):
        _check_fact(protocol, event.fact, event.value)
        return
    task = _open_task(state, event.task_id)
    if event.if_revision is not None and event.if_revision != task.revision:
        raise Rejection(
            "stale_task",
            412,
            (
                "Otra persona cambió esta tarea; recargue la página.",
                "Someone else changed this task; reload it.",
            ),
        )
    if isinstance(event, Claim):
        _may_act(task, event.actor)
        if task.assignee not in (None, event.actor.actor_id):
            raise Rejection(
                "claimed_by_other",
                409,
                ("Otra persona ya tomó esta tarea.", "Someone else has claimed this task."),
            )
    elif isinstance(event, Unclaim):
        if task.assignee != event.actor.actor_id and event.actor.role not in (
            "coordinator",
            "admin",
        ):
            raise Rejection(
                "not_assignee",
                409,
                ("Usted no tiene asignada esta tarea.", "This task is not assigned to you."),
            )
    elif isinstance(event, Reassign):
        if event.actor.role not in ("coordinator", "admin"):
            raise Rejection(
                "not_coordinator",
                403,
                ("Solo coordinación puede reasignar.", "Only a coordinator can reassign."),
            )
    elif isinstance(event, Complete):
        _may_act(task, event.actor)
        if task.assignee not in (None, event.actor.actor_id):
            raise Rejection(
                "claimed_by_other",
                409,
                ("Otra persona tiene esta tarea.", "Someone else holds this task."),
            )
        validate_form(protocol.step(task.step_id), event.form)


def _record_fact(
    new: CaseState,
    fact: str,
    value: FactValue,
    at: datetime,
    actor: Actor,
    actions: list[Action],
    step_id: str | None = None,
) -> None:
    """Add or correct a fact (set on its own, or by the answer of a completed step's form)."""
    previous = new.facts.get(fact)
    new.facts[fact] = value
    new.fact_times[fact] = at
    new.revision += 1
    action = "fact.changed"
    if fact == "consent":
        action = "consent.revoked" if value == "revoked" else "consent.recorded"
    actions.append(
        Audit(
            action=action,
            actor=actor,
            step_id=step_id,
            detail={"fact": fact, "corrected": previous is not None},
        )
    )


def _check_fact(protocol: Protocol, fact_id: str, value: FactValue) -> None:
    try:
        fact = protocol.fact(fact_id)
    except KeyError:
        raise Rejection(
            "unknown_fact",
            422,
            ("Hecho desconocido.", "Unknown fact."),
            fields={fact_id: "unknown_fact"},
        ) from None
    if value not in fact.domain() or (fact.type == "boolean") != isinstance(value, bool):
        raise Rejection(
            "illegal_value",
            422,
            ("Valor no permitido.", "Value not allowed."),
            fields={fact_id: "not_an_option"},
        )


def apply(
    protocol: Protocol,
    state: CaseState | None,
    event: Event,
    *,
    protocol_hash: str = "",
    case_id: str = "",
) -> tuple[CaseState, list[Action]]:
    """The new state and the actions that carry it out. ``state`` is not modified."""
    actions: list[Action] = []
    if isinstance(event, Opened):
        new = CaseState(
            case_id=case_id,
            protocol_id=protocol.id,
            protocol_version=protocol.version,
            protocol_hash=protocol_hash,
            opened_at=event.at,
            facts=dict(event.facts),
            fact_times={k: event.at for k in event.facts},
        )
        actions.append(
            Audit(action="case.opened", actor=event.actor, detail={"facts": sorted(event.facts)})
        )
        _settle(protocol, new, event.at, actions)
        return new, actions
    assert state is not None
    new = state.model_copy(deep=True)
    if isinstance(event, Tick):
        _tick(protocol, new, event.at, actions)
        return new, actions
    if isinstance(event, SetFact):
        _record_fact(new, event.fact, event.value, event.at, event.actor, actions)
        _settle(protocol, new, event.at, actions)
        return new, actions
    task = new.tasks[event.task_id]
    step = protocol.step(task.step_id)
    if isinstance(event, Claim):
        if task.assignee != event.actor.actor_id:
            task.assignee = event.actor.actor_id
            _bump(new, task)
            actions.append(TaskChanged(task=task.model_copy()))
            actions.append(
                Audit(
                    action="task.claimed", step_id=step.id, task_id=task.task_id, actor=event.actor
                )
            )
    elif isinstance(event, Unclaim):
        task.assignee = None
        _bump(new, task)
        actions.append(TaskChanged(task=task.model_copy()))
        actions.append(
            Audit(action="task.unclaimed", step_id=step.id, task_id=task.task_id, actor=event.actor)
        )
    elif isinstance(event, Reassign):
        task.assignee = event.assignee
        _bump(new, task)
        actions.append(TaskChanged(task=task.model_copy()))
        actions.append(
            Audit(
                action="task.reassigned", step_id=step.id, task_id=task.task_id, actor=event.actor
            )
        )
    elif isinstance(event, Complete):
        plain, pii = validate_form(step, event.form)
        for name, value in pii.items():
            actions.append(VaultWrite(field=f"form.{step.id}.{name}", value=value))
        if plain:
            actions.append(VaultWrite(field=f"form.{step.id}", value=plain))
        late = task.due_at is not None and event.at > task.due_at
        task.status, task.closed_at, task.closed_by = "completed", event.at, event.actor.actor_id
        task.assignee = task.assignee or event.actor.actor_id
        _bump(new, task)
        new.completions.setdefault(step.id, []).append(event.at)
        actions.append(TaskChanged(task=task.model_copy()))
        actions.append(
            Audit(
                action="task.completed",
                step_id=step.id,
                task_id=task.task_id,
                actor=event.actor,
                deadline_status="none" if task.due_at is None else "late" if late else "on_time",
            )
        )
        for form_field in step.form.fields if step.form else []:
            if form_field.sets_fact is not None and form_field.id in plain:
                value = plain[form_field.id]
                if new.facts.get(form_field.sets_fact) != value:
                    _record_fact(
                        new, form_field.sets_fact, value, event.at, event.actor, actions, step.id
                    )
        if step.repeats is not None and not _schedule_over(protocol, new, step):
            schedule = protocol.follow_up_schedules[step.repeats]
            new.follow_ups[step.id] = due_at(
                event.at,
                schedule.every,
                schedule.clock,
                protocol.timezone,
                protocol.business_calendar.holiday_set(range(event.at.year, event.at.year + 2)),
            )
        if step.id == protocol.closure_step:
            new.closed_at = event.at
            new.follow_ups.clear()
            for other in new.open_tasks():
                other.status, other.closed_at = "cancelled", event.at
                _bump(new, other)
                actions.append(TaskChanged(task=other.model_copy()))
            actions.append(Audit(action="case.closed", actor=event.actor))
            actions.append(CaseClosed(at=event.at))
            return new, actions
    _settle(protocol, new, event.at, actions)
    return new, actions
