"""Case activities: write what the interpreter decided, all idempotent.

``record_case_changes`` runs as a local activity after each applied event: vault writes (form
values marked ``pii`` and the intake), one ledger entry per audit action (idempotency key
``<case>:<event>:<index>``, the event's identity being the same in every attempt of a workflow
task, so a retry writes nothing twice), the case and task projection, and notifications
(PII-free, with the same idempotency key).

The vault, ledger and projection writes are one transaction, so a change is recorded whole or
not at all. It takes the ledger's lock first (serialised with every other append; SQLite never
has to upgrade a read to a write), then writes the entries, the vault fields and the
projection. A retry after a crash before the commit writes it all; a retry after the commit
writes nothing again (the ledger keys exist, and a vault field whose latest version already
holds the value is not written again). Notifications go after the commit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
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
        writes: list[tuple[str, Any]] = [("intake", changes.intake)] if changes.intake else []
        writes += [(a.field, a.value) for a in changes.actions if isinstance(a, VaultWrite)]
        records = [
            self._record(changes, index, action)
            for index, action in enumerate(changes.actions)
            if isinstance(action, Audit)
        ]
        if writes:  # the key exists before the lock (creating it writes through another session)
            await self._rt.keyring.case_key(case_id)
        async with self._rt.sessions() as session, session.begin():
            # The ledger's lock first (append_all takes it before anything else).
            await (ledger.append_all(session, records) if records else ledger.lock(session))
            await self._vault.put_all(session, case_id, writes, unless_current=True)
            await self._project(session, changes)
        for index, action in enumerate(changes.actions):
            if isinstance(action, Notify):
                notice: dict[str, Any] = {"case_id": case_id, **action.model_dump(mode="json")}
                await self._channel.send(f"{case_id}:{_event_key(changes)}:{index}", notice)
        return len(records)

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

    @staticmethod
    async def _project(session: AsyncSession, changes: CaseChanges) -> None:
        """The case and task rows the API reads (``tasks``, ``task_groups``, ``cases``)."""
        tasks: dict[str, Task] = {}
        for action in changes.actions:
            if isinstance(action, TaskOpened | TaskChanged):
                tasks[action.task.task_id] = action.task  # the last version wins
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
        if not tasks:
            return
        rows = {
            row.task_id: row
            for row in (
                await session.execute(select(TaskRow).where(TaskRow.task_id.in_(tasks)))
            ).scalars()
        }
        new_groups: list[dict[str, str]] = []
        for task in tasks.values():
            row = rows.get(task.task_id)
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
                new_groups += (
                    {"task_id": task.task_id, "group_name": g} for g in task.candidate_groups
                )
            else:
                for key, value in values.items():
                    setattr(row, key, value)
        if new_groups:
            fresh = {g["task_id"] for g in new_groups}
            await session.execute(delete(TaskGroup).where(TaskGroup.task_id.in_(fresh)))
            await session.execute(insert(TaskGroup), new_groups)
