"""Case activities: write what the interpreter decided, all idempotent.

``record_case_changes`` runs as a local activity after each applied event: vault writes (form
values marked ``pii`` and the intake), one ledger entry per audit action (idempotency key
``<case>:<event>:<index>``, the event's identity being the same in every attempt of a workflow
task, so a retry writes nothing twice), the case and task projection, and
notifications (PII-free, with the same idempotency key). A vault field whose latest version
already holds the value is not written again (a retry after a crash adds no version). The
writes are separate transactions, each idempotent: a crash between them is repaired by the
retry, never duplicated.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from temporalio import activity

from eri import ledger
from eri.db.models import CaseRow, TaskGroup, TaskRow
from eri.ledger import Action as LedgerAction
from eri.ledger import Outcome, Record
from eri.notify import Channel
from eri.runtime import Runtime
from eri.vault import Vault
from workflows.case import CaseChanges
from workflows.interpreter import Audit, Notify, Task, TaskChanged, TaskOpened, VaultWrite


def _event_key(changes: CaseChanges) -> str:
    return changes.event_key or str(changes.seq)


class CaseActivities:
    def __init__(self, runtime: Runtime, channel: Channel) -> None:
        self._rt = runtime
        self._vault = Vault(runtime.keyring, runtime.sessions)
        self._channel = channel

    @activity.defn(name="record_case_changes")
    async def record_case_changes(self, changes: CaseChanges) -> int:
        """Returns the number of ledger entries of this change."""
        case_id = changes.case_id
        # A retry (the worker died mid-activity) finds its own earlier writes current.
        if changes.intake:
            await self._vault.put(case_id, "intake", changes.intake, unless_current=True)
        for action in changes.actions:
            if isinstance(action, VaultWrite):
                await self._vault.put(case_id, action.field, action.value, unless_current=True)
        entries = 0
        for index, action in enumerate(changes.actions):
            if isinstance(action, Audit):
                await ledger.append(self._rt.sessions, self._record(changes, index, action))
                entries += 1
        await self._project(changes)
        for index, action in enumerate(changes.actions):
            if isinstance(action, Notify):
                notice: dict[str, Any] = {"case_id": case_id, **action.model_dump(mode="json")}
                await self._channel.send(f"{case_id}:{_event_key(changes)}:{index}", notice)
        return entries

    @staticmethod
    def _record(changes: CaseChanges, index: int, action: Audit) -> Record:
        return Record(
            idempotency_key=f"{changes.case_id}:{_event_key(changes)}:{index}",
            action=LedgerAction(action.action),
            outcome=Outcome(action.outcome),
            case_id=changes.case_id,
            protocol_id=changes.protocol_id,
            protocol_version=changes.protocol_version,
            step_id=action.step_id,
            actor_id=action.actor.actor_id if action.actor else None,
            actor_role=action.actor.role if action.actor else None,
            actor_institution=action.actor.institution if action.actor else None,
            deadline_status=action.deadline_status,
            detail_hash=ledger.detail_hash(action.detail) if action.detail else None,
            recorded_at=changes.at,
        )

    async def _project(self, changes: CaseChanges) -> None:
        tasks: dict[str, Task] = {}
        for action in changes.actions:
            if isinstance(action, TaskOpened | TaskChanged):
                tasks[action.task.task_id] = action.task  # the last version wins
        async with self._rt.sessions.begin() as session:
            case = await session.get(CaseRow, changes.case_id)
            if case is None:
                case = CaseRow(
                    case_id=changes.case_id,
                    protocol_id=changes.protocol_id,
                    protocol_version=changes.protocol_version,
                    protocol_hash=changes.protocol_hash,
                    country=changes.country,
                    opened_at=changes.opened_at,
                    opened_by_institution=changes.opened_by_institution,
                    status="open",
                    revision=0,
                )
                session.add(case)
            if changes.revision >= case.revision:
                case.revision = changes.revision
                case.closed_at = changes.closed_at
                case.status = "closed" if changes.closed_at else "open"
            for task in tasks.values():
                row = await session.get(TaskRow, task.task_id)
                if row is not None and row.revision >= task.revision:
                    continue  # a retry or an older version: already projected
                values = {
                    "case_id": changes.case_id,
                    "protocol_id": changes.protocol_id,
                    "protocol_version": changes.protocol_version,
                    "step_id": task.step_id,
                    "occurrence": task.occurrence,
                    "status": task.status,
                    "assignee": task.assignee,
                    "opened_at": task.opened_at,
                    "due_at": task.due_at,
                    "closed_at": task.closed_at,
                    "deadline_missed": task.deadline_missed,
                    "rungs_fired": task.rungs_fired,
                    "revision": task.revision,
                }
                if row is None:
                    session.add(TaskRow(task_id=task.task_id, **values))
                    await session.execute(
                        delete(TaskGroup).where(TaskGroup.task_id == task.task_id)
                    )
                    session.add_all(
                        TaskGroup(task_id=task.task_id, group_name=g) for g in task.candidate_groups
                    )
                else:
                    for key, value in values.items():
                        setattr(row, key, value)
