"""Casework: what the case and task routes (and the pages) do, authorized, in one place.

Reads come from the read model (``cases``, ``tasks``, ``task_groups``), written by the case
workflow's activity before an update answers; changes go to the case's workflow as Temporal
Updates, so an answer means the case has really moved. Every denial is recorded in the ledger
(:func:`api.authz.deny`): 403 for a role that never reaches cases, 404 for a case or task the
caller may not see (its existence must not leak).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api import authz
from api.deps import Services
from api.problems import Problem
from eri import ledger
from eri.auth import Principal
from eri.db.models import CaseRow, LedgerEntry, TaskGroup, TaskRow
from eri.ledger import Action as LedgerAction
from eri.ledger import Record
from eri.vault import Vault
from protocols.loader import list_protocols
from protocols.model import Protocol, Step
from protocols.registry import pinned, register
from workflows.case import CaseInput, CaseView, CaseWorkflow
from workflows.interpreter import (
    Actor,
    CaseState,
    Claim,
    Complete,
    Opened,
    Reassign,
    SetFact,
    Task,
    Unclaim,
)

NOT_FOUND_CASE = ("El caso no existe o no tiene acceso.", "No such case, or no access to it.")
NOT_FOUND_TASK = ("La tarea no existe o no tiene acceso.", "No such task, or no access to it.")
PAGE_MAX = 100


# --- protocols ------------------------------------------------------------------------------


def protocols() -> list[Protocol]:
    """Every loaded protocol version, newest last per id (and registered for the engine)."""
    found = list_protocols()
    for protocol in found:
        register(protocol)
    return found


def protocol(protocol_id: str, version: str | None = None) -> Protocol:
    matches = [p for p in protocols() if p.id == protocol_id]
    if version is not None:
        matches = [p for p in matches if p.version == version]
    if not matches:
        raise Problem(
            404,
            "not-found",
            ("No existe ese protocolo o versión.", "No such protocol or version."),
        )
    return matches[-1]


def institutions_of(p: Protocol) -> frozenset[str]:
    return frozenset(inst.id for inst in p.institutions)


# --- who acts -------------------------------------------------------------------------------


def actor(principal: Principal) -> Actor:
    return Actor(
        actor_id=principal.actor_id,
        role=principal.role.value,
        institution=principal.institution_code,
        groups=list(principal.groups),
    )


async def require_casework(
    services: Services, principal: Principal, what: str, case_ids: frozenset[str] = frozenset()
) -> None:
    """403 for roles without case routes; the denial is recorded against the case asked for
    (when it exists), so the case's access history shows the attempt. The answer is the same
    whether or not the case exists."""
    if not authz.may_use_casework(principal):
        problem = await authz.deny(services.sessions, principal, what=what, case_ids=case_ids)
        problem.detail = authz.casework_denied_message()
        raise problem


# --- Temporal -------------------------------------------------------------------------------


def rejection_problem(error: BaseException) -> Problem | None:
    """The Problem for a case workflow's refusal (an ApplicationError of type Rejection)."""
    cause = error.cause if isinstance(error, WorkflowUpdateFailedError) else error
    if not isinstance(cause, ApplicationError) or cause.type != "Rejection":
        return None
    details: dict[str, Any] = cause.details[0] if cause.details else {}
    code = str(cause.message or "rejected")
    status = int(details.get("status", 409))
    fields = details.get("fields") or {}
    extra: dict[str, Any] = {"code": code}
    if fields:
        extra["errors"] = [{"field": k, "code": v} for k, v in sorted(fields.items())]
    message = (str(details.get("es", "")), str(details.get("en", ""))) if details else None
    return Problem(status, code.replace("_", "-"), message, extra)


async def _update(
    services: Services, case_id: str, update: Any, event: Any, update_id: str
) -> CaseView:
    client = await services.temporal_client()
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle_for(CaseWorkflow.run, case_id)
    try:
        view: CaseView = await handle.execute_update(update, event, id=update_id)
    except WorkflowUpdateFailedError as error:
        problem = rejection_problem(error)
        if problem is None:
            raise
        raise problem from None
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            # The run has completed (the case closed) or never existed.
            raise Problem(
                409, "case-closed", ("El caso está cerrado.", "The case is closed.")
            ) from None
        raise
    return view


# --- opening a case -------------------------------------------------------------------------


def new_case_id(services: Services, actor_id: str, idempotency_key: str) -> str:
    """Opaque and unguessable, but the same for a retried request (so a retry after a crash
    reaches the same workflow instead of opening a second case)."""
    secret = services.settings.dev_secret("case-ids")
    digest = hmac.new(secret, f"{actor_id}\n{idempotency_key}".encode(), hashlib.sha256)
    return "case_" + digest.hexdigest()[:24]


async def open_case(
    services: Services,
    principal: Principal,
    *,
    protocol_id: str,
    version: str | None,
    facts: dict[str, Any],
    intake: dict[str, Any],
    update_id: str,
) -> CaseView:
    await require_casework(services, principal, "cases.open")
    chosen = protocol(protocol_id, version)
    if not authz.may_open_case(principal, institutions_of(chosen)):
        raise await authz.deny(services.sessions, principal, what="cases.open")
    case_id = new_case_id(services, principal.actor_id, update_id)
    client = await services.temporal_client()
    start = WithStartWorkflowOperation(
        CaseWorkflow.run,
        CaseInput(
            case_id=case_id,
            protocol_id=chosen.id,
            protocol_version=chosen.version,
            protocol_hash=register(chosen),
            opened=Opened(at=datetime.now(UTC), actor=actor(principal), facts=facts),
            intake=intake,
        ),
        id=case_id,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=services.settings.temporal_task_queue,
    )
    try:
        view: CaseView = await client.execute_update_with_start_workflow(
            CaseWorkflow.opened, start_workflow_operation=start, id=update_id
        )
    except WorkflowUpdateFailedError as error:
        problem = rejection_problem(error)
        if problem is None:
            raise
        raise problem from None
    except ApplicationError as error:  # the workflow refused its input (e.g. a bad fact)
        problem = rejection_problem(error)
        if problem is None:
            raise
        raise problem from None
    return view


# --- reading cases --------------------------------------------------------------------------


@dataclass
class CaseAccess:
    row: CaseRow
    protocol: Protocol


# Built once (every task request runs them): the task row with its case row, and the
# candidate groups of every task of a case.
_TASK_WITH_CASE = (
    select(TaskRow, CaseRow)
    .outerjoin(CaseRow, CaseRow.case_id == TaskRow.case_id)
    .where(TaskRow.task_id == bindparam("task_id"))
)
_GROUPS_OF_CASE = (
    select(TaskGroup.task_id, TaskGroup.group_name)
    .join(TaskRow, TaskRow.task_id == TaskGroup.task_id)
    .where(TaskRow.case_id == bindparam("case_id"))
)


def _institutions(groups: Iterable[str]) -> frozenset[str]:
    """The institutions named in candidate groups (``institution:role``)."""
    return frozenset(g.split(":", 1)[0] for g in groups)


async def _participating_in(session: AsyncSession, case_id: str) -> frozenset[str]:
    of_case = await session.execute(_GROUPS_OF_CASE, {"case_id": case_id})
    return _institutions(group for _, group in of_case)


async def _participating(services: Services, case_id: str) -> frozenset[str]:
    async with services.sessions() as session:
        return await _participating_in(session, case_id)


def _visible(
    principal: Principal, row: CaseRow, participating: frozenset[str]
) -> tuple[bool, Protocol]:
    """Whether the caller may see the case, given the institutions in its tasks' groups."""
    p = pinned_or_loaded(row.protocol_hash)
    visible = authz.may_see_case(
        principal,
        protocol_institutions=institutions_of(p),
        participating=participating | {row.opened_by_institution.lower()},
    )
    return visible, p


async def _case_visible(
    services: Services, principal: Principal, row: CaseRow
) -> tuple[bool, Protocol]:
    return _visible(principal, row, await _participating(services, row.case_id))


async def case_access(
    services: Services, principal: Principal, case_id: str, what: str
) -> CaseAccess:
    """The case, if the caller may see it; else 404 (recorded)."""
    participating: frozenset[str] = frozenset()
    async with services.sessions() as session:  # one connection for both reads
        row = await session.get(CaseRow, case_id) if len(case_id) <= 64 else None
        if row is not None and authz.may_use_casework(principal):
            participating = await _participating_in(session, case_id)
    known = frozenset({case_id}) if row is not None else frozenset()
    await require_casework(services, principal, what, known)
    if row is not None:
        visible, p = _visible(principal, row, participating)
        if visible:
            return CaseAccess(row, p)
    problem = await authz.deny(services.sessions, principal, what=what, case_ids=known, status=404)
    problem.detail = NOT_FOUND_CASE
    raise problem


def pinned_or_loaded(protocol_hash: str) -> Protocol:
    try:
        return pinned(protocol_hash)
    except LookupError:
        protocols()
        return pinned(protocol_hash)


async def case_state(services: Services, case_id: str) -> CaseState:
    client = await services.temporal_client()
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle_for(CaseWorkflow.run, case_id)
    state: CaseState = await handle.query(CaseWorkflow.state)
    return state


async def read_case(
    services: Services, principal: Principal, case_id: str, reason: str | None
) -> dict[str, Any]:
    """The decrypted case, for those allowed; every read leaves a ``case.viewed`` entry."""
    access = await case_access(services, principal, case_id, "cases.read")
    state = await case_state(services, case_id)
    data = await Vault(services.keyring, services.sessions).get_all(case_id)
    await ledger.append(
        services.sessions,
        Record(
            idempotency_key=f"view:{uuid.uuid4().hex}",
            action=LedgerAction.CASE_VIEWED,
            case_id=case_id,
            protocol_id=access.row.protocol_id,
            protocol_version=access.row.protocol_version,
            actor_id=principal.actor_id,
            actor_role=principal.role.value,
            actor_institution=principal.institution,
            detail_hash=ledger.detail_hash({"reason": reason}) if reason else None,
        ),
    )
    return {
        "case_id": case_id,
        "protocol": {"id": access.row.protocol_id, "version": access.row.protocol_version},
        "status": access.row.status,
        "opened_at": state.opened_at,
        "closed_at": state.closed_at,
        "revision": state.revision,
        "facts": state.facts,
        "data": data,
        "tasks": [t.model_dump(mode="json") for t in state.tasks.values()],
    }


async def timeline(services: Services, principal: Principal, case_id: str) -> list[dict[str, Any]]:
    await case_access(services, principal, case_id, "cases.timeline")
    async with services.sessions() as session:
        rows = (
            await session.execute(
                select(LedgerEntry)
                .where(LedgerEntry.case_id == case_id)
                .order_by(LedgerEntry.case_seq)
            )
        ).scalars()
        return [
            {
                "seq": r.case_seq,
                "at": r.recorded_at,
                "action": r.action,
                "outcome": r.outcome,
                "step_id": r.step_id,
                "actor_id": r.actor_id,
                "actor_role": r.actor_role,
                "actor_institution": r.actor_institution,
                "deadline_status": r.deadline_status,
            }
            for r in rows
        ]


async def set_fact(
    services: Services,
    principal: Principal,
    case_id: str,
    fact: str,
    value: Any,
    update_id: str,
) -> CaseView:
    await case_access(services, principal, case_id, "cases.facts")
    event = SetFact(at=datetime.now(UTC), actor=actor(principal), fact=fact, value=value)
    return await _update(services, case_id, CaseWorkflow.set_fact, event, update_id)


# --- tasks ----------------------------------------------------------------------------------


@dataclass
class TaskAccess:
    row: TaskRow
    groups: list[str]
    case: CaseAccess

    @property
    def step(self) -> Step:
        return self.case.protocol.step(self.row.step_id)


async def task_access(
    services: Services, principal: Principal, task_id: str, what: str
) -> TaskAccess:
    """The task (with its case), if the caller may see it; else 404 (recorded).

    One connection, two reads: the task row with its case row, then the candidate groups of
    every task of the case (the task's own groups, and the institutions taking part)."""
    row: TaskRow | None = None
    case_row: CaseRow | None = None
    groups: list[str] = []
    participating: frozenset[str] = frozenset()
    if len(task_id) <= 160:
        async with services.sessions() as session:
            found = (await session.execute(_TASK_WITH_CASE, {"task_id": task_id})).first()
            if found is not None:
                row, case_row = found
            if row is not None and case_row is not None and authz.may_use_casework(principal):
                of_case = (await session.execute(_GROUPS_OF_CASE, {"case_id": row.case_id})).all()
                groups = sorted(group for owner, group in of_case if owner == task_id)
                participating = _institutions(group for _, group in of_case)
    known = frozenset({row.case_id}) if row is not None else frozenset()
    await require_casework(services, principal, what, known)
    if row is not None and case_row is not None:
        case_visible, p = _visible(principal, case_row, participating)
        if authz.may_see_task(
            principal,
            groups=frozenset(groups),
            assignee=row.assignee,
            case_visible=case_visible,
        ):
            return TaskAccess(row, groups, CaseAccess(case_row, p))
    problem = await authz.deny(services.sessions, principal, what=what, case_ids=known, status=404)
    problem.detail = NOT_FOUND_TASK
    raise problem


def etag(row: TaskRow | Task) -> str:
    return f'"{row.revision}"'


def if_match_revision(header: str | None) -> int | None:
    """The revision an ``If-Match`` names (``"3"`` or ``W/"3"``); None without the header."""
    if header is None or header.strip() == "*":
        return None
    value = header.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise Problem(
            412,
            "stale-task",
            ("If-Match no corresponde a esta tarea.", "If-Match does not match this task."),
        )
    return int(value)


def task_summary(row: TaskRow, groups: list[str], p: Protocol, lang: str) -> dict[str, Any]:
    return _summary(row, row, groups, p, lang)


def task_summary_of(task: Task, access: TaskAccess, lang: str) -> dict[str, Any]:
    """:func:`task_summary` from the workflow's task (an update's answer) instead of its
    read-model row: the same body, without reading the row again."""
    return _summary(task, access.row, task.candidate_groups, access.case.protocol, lang)


def _utc(at: datetime | None) -> datetime | None:
    """As the read model gives it back (eri.db.models.UTCDateTime): in UTC."""
    return at.astimezone(UTC) if at is not None else None


def _summary(
    task: TaskRow | Task, row: TaskRow, groups: list[str], p: Protocol, lang: str
) -> dict[str, Any]:
    """A task's summary: its state from ``task`` (the read-model row or the workflow's task),
    its case and protocol from the row."""
    step = p.step(task.step_id)
    return {
        "task_id": task.task_id,
        "case_id": row.case_id,
        "protocol": {"id": row.protocol_id, "version": row.protocol_version},
        "step_id": task.step_id,
        "title": step.title.get(lang),
        "occurrence": task.occurrence,
        "status": task.status,
        "assignee": task.assignee,
        "candidate_groups": sorted(groups),
        "opened_at": _utc(task.opened_at),
        "due_at": _utc(task.due_at),
        "overdue": task.deadline_missed,
        "escalations": task.rungs_fired,
        "closed_at": _utc(task.closed_at),
        "revision": task.revision,
    }


def form_schema(step: Step, lang: str) -> dict[str, Any] | None:
    if step.form is None:
        return None
    return {
        "id": step.form.id,
        "title": step.form.title.get(lang),
        "fields": [
            {
                "id": f.id,
                "type": f.type,
                "label": f.label.get(lang),
                "required": f.required,
                "values": f.values,
                "sensitive": f.pii,
                # completing the task records this answer as the case fact of this name
                "sets_fact": f.sets_fact,
            }
            for f in step.form.fields
        ],
    }


def task_detail(access: TaskAccess, lang: str, draft: dict[str, Any] | None) -> dict[str, Any]:
    step = access.step
    body = task_summary(access.row, access.groups, access.case.protocol, lang)
    body.update(
        {
            "instructions": step.instructions.get(lang),
            "phase": step.phase,
            "form": form_schema(step, lang),
            "draft": draft,
        }
    )
    return body


def _draft_field(task_id: str) -> str:
    return "draft." + hashlib.sha256(task_id.encode()).hexdigest()[:32]


async def get_task(
    services: Services, principal: Principal, task_id: str, lang: str
) -> tuple[dict[str, Any], str]:
    access = await task_access(services, principal, task_id, "tasks.read")
    draft = None
    if access.row.status == "open":
        vault = Vault(services.keyring, services.sessions)
        try:
            draft = await vault.get(access.row.case_id, _draft_field(task_id))
        except LookupError:
            draft = None
    return task_detail(access, lang, draft), etag(access.row)


async def save_draft(
    services: Services, principal: Principal, task_id: str, form: dict[str, Any]
) -> TaskAccess:
    access = await task_access(services, principal, task_id, "tasks.draft")
    if access.row.status != "open":
        raise Problem(
            409,
            "task-not-open",
            ("La tarea ya no está abierta.", "The task is no longer open."),
        )
    known = {f.id for f in (access.step.form.fields if access.step.form else [])}
    unknown = [k for k in form if k not in known]
    if unknown:
        raise Problem(
            422,
            "form-invalid",
            ("El borrador tiene campos desconocidos.", "The draft has unknown fields."),
            {"errors": [{"field": "*", "code": "unknown_field"} for _ in unknown[:20]]},
        )
    await Vault(services.keyring, services.sessions).put(
        access.row.case_id, _draft_field(task_id), form
    )
    return access


@dataclass
class TaskCommanded:
    """What a task command answers: the case's view after it, and the access checked before
    it (task row as it was, its case and protocol), to render the answer without reading the
    task again (the view's ``task`` is the task as changed)."""

    access: TaskAccess
    view: CaseView


async def task_command(
    services: Services,
    principal: Principal,
    task_id: str,
    command: str,
    *,
    update_id: str,
    if_match: str | None,
    form: dict[str, Any] | None = None,
    assignee: str | None = None,
) -> TaskCommanded:
    access = await task_access(services, principal, task_id, f"tasks.{command}")
    revision = if_match_revision(if_match)
    now = datetime.now(UTC)
    who = actor(principal)
    event: Any
    update: Any
    if command == "claim":
        event, update = (
            Claim(at=now, actor=who, task_id=task_id, if_revision=revision),
            (CaseWorkflow.claim),
        )
    elif command == "unclaim":
        event, update = (
            Unclaim(at=now, actor=who, task_id=task_id, if_revision=revision),
            (CaseWorkflow.unclaim),
        )
    elif command == "reassign":
        event = Reassign(
            at=now, actor=who, task_id=task_id, assignee=assignee, if_revision=revision
        )
        update = CaseWorkflow.reassign
    else:
        event = Complete(at=now, actor=who, task_id=task_id, form=form or {}, if_revision=revision)
        update = CaseWorkflow.complete
    view = await _update(services, access.row.case_id, update, event, update_id)
    return TaskCommanded(access, view)


# --- the inbox ------------------------------------------------------------------------------


@dataclass
class InboxQuery:
    group: str | None = None
    assignee: str | None = None  # "me" or None
    status: str = "open"
    protocol_id: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    overdue: bool | None = None
    sort: str = "due"  # due | opened
    limit: int = 50
    cursor: str | None = None


def _encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime | None, str]:
    """(the last row's sort value, its task id); 400 for anything this API did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != 2:
            raise ValueError
        last, last_id = values
        if not isinstance(last_id, str) or not (last is None or isinstance(last, str)):
            raise ValueError
        at = datetime.fromisoformat(last) if last is not None else None
        if at is not None and at.tzinfo is None:
            raise ValueError
        return at, last_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(
            400,
            "bad-request",
            ("El cursor no es válido.", "The cursor is invalid."),
        ) from None


async def inbox(
    services: Services, principal: Principal, query: InboxQuery, lang: str
) -> dict[str, Any]:
    await require_casework(services, principal, "tasks.list")
    stmt = select(TaskRow).where(TaskRow.status == query.status)
    if principal.role.value == "coordinator":
        ids = [p.id for p in protocols() if principal.institution_code in institutions_of(p)]
        stmt = stmt.where(TaskRow.protocol_id.in_(ids))
    else:
        mine = TaskRow.assignee == principal.actor_id
        # EXISTS (a primary-key probe per row walked in deadline order) rather than IN (a
        # list of every task id, open or closed, ever given to these groups).
        in_groups = exists().where(
            TaskGroup.task_id == TaskRow.task_id,
            TaskGroup.group_name.in_(list(principal.groups)),
        )
        stmt = stmt.where(or_(mine, in_groups))
    if query.group:
        stmt = stmt.where(
            TaskRow.task_id.in_(
                select(TaskGroup.task_id).where(TaskGroup.group_name == query.group)
            )
        )
    if query.assignee == "me":
        stmt = stmt.where(TaskRow.assignee == principal.actor_id)
    elif query.assignee == "none":
        stmt = stmt.where(TaskRow.assignee.is_(None))
    if query.protocol_id:
        stmt = stmt.where(TaskRow.protocol_id == query.protocol_id)
    if query.due_before:
        stmt = stmt.where(TaskRow.due_at < query.due_before)
    if query.due_after:
        stmt = stmt.where(TaskRow.due_at >= query.due_after)
    if query.overdue is not None:
        stmt = stmt.where(TaskRow.deadline_missed.is_(query.overdue))
    column = TaskRow.due_at if query.sort == "due" else TaskRow.opened_at
    # Overdue and soonest first; tasks without a deadline last, by id. Two queries (dated,
    # then undated) rather than ORDER BY column IS NULL: that expression forced a sort of
    # every open task (~90 ms at 10,000 open cases on SQLite), while ORDER BY column, task_id
    # walks ix_tasks_status_due and stops after one page (bench/RESULTS.md, task API).
    last: datetime | None = None
    last_id: str | None = None
    if query.cursor:
        last, last_id = _decode_cursor(query.cursor)
    want = query.limit + 1
    async with services.sessions() as session:
        rows: list[TaskRow] = []
        if last_id is None or last is not None:
            dated = stmt.where(column.is_not(None))
            if last is not None:
                dated = dated.where(column >= last, or_(column > last, TaskRow.task_id > last_id))
            rows = list(
                (
                    await session.execute(dated.order_by(column, TaskRow.task_id).limit(want))
                ).scalars()
            )
        if len(rows) < want:
            undated = stmt.where(column.is_(None))
            if last is None and last_id is not None:
                undated = undated.where(TaskRow.task_id > last_id)
            rows += list(
                (
                    await session.execute(undated.order_by(TaskRow.task_id).limit(want - len(rows)))
                ).scalars()
            )
        page, more = rows[: query.limit], len(rows) > query.limit
        groups: dict[str, list[str]] = {r.task_id: [] for r in page}
        if page:
            for task_id, group in await session.execute(
                select(TaskGroup.task_id, TaskGroup.group_name).where(
                    TaskGroup.task_id.in_(list(groups))
                )
            ):
                groups[task_id].append(group)
    hashes = {p.key: p for p in protocols()}
    items = [
        task_summary(r, groups[r.task_id], hashes[f"{r.protocol_id}@{r.protocol_version}"], lang)
        for r in page
    ]
    next_cursor = None
    if more and page:
        last_row = page[-1]
        value = last_row.due_at if query.sort == "due" else last_row.opened_at
        next_cursor = _encode_cursor([value.isoformat() if value else None, last_row.task_id])
    return {"items": items, "next_cursor": next_cursor}
