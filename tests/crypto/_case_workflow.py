"""A small case workflow for the codec tests on the real dev server (workflow id = case id)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError


@activity.defn
async def acknowledge(statement: str) -> str:
    return "recorded: " + statement


@activity.defn
async def reject(text: str) -> str:
    raise ApplicationError("activity refused " + text, non_retryable=True)


@workflow.defn
class CaseProbeWorkflow:
    def __init__(self) -> None:
        self._notes: list[str] = []
        self._done = False

    @workflow.run
    async def run(self, intake: dict[str, str]) -> dict[str, Any]:
        ack = await workflow.execute_activity(
            acknowledge, intake["statement"], start_to_close_timeout=timedelta(seconds=30)
        )
        local = await workflow.execute_local_activity(
            acknowledge, intake["name"], start_to_close_timeout=timedelta(seconds=30)
        )
        refused = ""
        try:
            await workflow.execute_activity(
                reject, intake["passport"], start_to_close_timeout=timedelta(seconds=30)
            )
        except Exception as err:  # the activity failure, decoded through the codec
            cause = err.__cause__
            refused = str(cause) if cause is not None else str(err)
        await workflow.wait_condition(lambda: self._done and workflow.all_handlers_finished())
        return {"ack": ack, "local": local, "refused": refused, "notes": list(self._notes)}

    @workflow.update
    async def add_note(self, note: str) -> int:
        self._notes.append(note)
        return len(self._notes)

    @workflow.update
    async def fail_with(self, text: str) -> None:
        raise ApplicationError("update rejected for " + text)

    @workflow.query
    def notes(self) -> list[str]:
        return list(self._notes)

    @workflow.signal
    def finish(self) -> None:
        self._done = True
