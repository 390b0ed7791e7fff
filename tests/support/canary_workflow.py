"""A test-only workflow that carries victim-like data through every payload path: workflow
input, an update and its result, an activity input and result, a query, and failures (an
activity failure and the workflow's own). Its id is a case id, so its payloads take the case
key. No import-time side effects (the sandbox re-imports this module)."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError


@activity.defn
async def canary_echo(text: str) -> str:
    return f"echo: {text}"


@activity.defn
async def canary_fail(text: str) -> str:
    raise ApplicationError(f"could not file statement: {text}", non_retryable=True)


@workflow.defn
class CanaryWorkflow:
    def __init__(self) -> None:
        self._notes: list[str] = []
        self._done = False

    @workflow.run
    async def run(self, intake: dict[str, str]) -> str:
        echoed = await workflow.execute_activity(
            canary_echo, intake["statement"], start_to_close_timeout=timedelta(seconds=30)
        )
        self._notes.append(echoed)
        with contextlib.suppress(ActivityError):
            await workflow.execute_activity(
                canary_fail,
                intake["passport"],
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        await workflow.wait_condition(lambda: self._done)
        raise ApplicationError(f"intake rejected for {intake['name']}", non_retryable=True)

    @workflow.update
    def add_note(self, note: str) -> str:
        self._notes.append(note)
        return f"noted: {note}"

    @workflow.signal
    def finish(self) -> None:
        self._done = True

    @workflow.query
    def notes(self) -> list[str]:
        return list(self._notes)
