"""ProbeWorkflow: an end-to-end liveness probe of server, worker and data converter.

Operators start one with ``eri probe start`` to see that a deployment runs workflows, and that
they survive a restart; ``eri probe finish`` ends it. It carries no case data.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow


@workflow.defn
class ProbeWorkflow:
    def __init__(self) -> None:
        self._beats = 0
        self._finished = False

    @workflow.run
    async def run(self, max_wait_seconds: int) -> int:
        """Wait for ``finish`` (or ``max_wait_seconds``); return the number of beats."""
        with contextlib.suppress(asyncio.TimeoutError):
            await workflow.wait_condition(
                lambda: self._finished, timeout=timedelta(seconds=max_wait_seconds)
            )
        return self._beats

    @workflow.update
    def beat(self) -> int:
        self._beats += 1
        return self._beats

    @workflow.signal
    def finish(self) -> None:
        self._finished = True

    @workflow.query
    def beats(self) -> int:
        return self._beats
