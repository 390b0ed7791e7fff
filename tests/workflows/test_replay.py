"""Replay every committed CaseWorkflow history (``tests/histories/``) against the production
workflow list: a change to workflow code that running cases would not survive (a command
added, dropped or reordered without ``workflow.patched``) fails here.

The histories come from ``python -m tests.histories.record`` (real runs of both protocols,
every branch, on time and late); their payloads are plain (see ``PLAIN_CONVERTER``).
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.histories.record import RUNS
from tests.workflows.protocol_runs import PLAIN_CONVERTER, PROTOCOL_IDS, protocols
from workflows import WORKFLOWS

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
FILES = sorted(HISTORIES.glob("*/*.json.gz"))


def test_a_history_is_committed_for_every_protocol_branch_and_policy() -> None:
    wanted = {f"{p}/{b.name}.{policy}.json.gz" for p in PROTOCOL_IDS for b, policy in RUNS}
    assert {str(f.relative_to(HISTORIES)) for f in FILES} == wanted


async def test_every_history_replays() -> None:
    protocols()  # the versions the histories pinned must be loadable
    histories = []
    for path in FILES:
        text = gzip.decompress(await asyncio.to_thread(path.read_bytes)).decode()
        history = WorkflowHistory.from_json(f"{path.parent.name}/{path.name}", text)
        # each is a whole case: opened, worked and closed
        assert history.events[-1].HasField("workflow_execution_completed_event_attributes")
        histories.append(history)
    replayer = Replayer(workflows=WORKFLOWS, data_converter=PLAIN_CONVERTER)
    failures = {}
    async with replayer.workflow_replay_iterator(_each(histories)) as replayed:
        async for result in replayed:
            if result.replay_failure is not None:
                failures[result.history.workflow_id] = repr(result.replay_failure)[:500]
    assert failures == {}


async def _each(histories: list[WorkflowHistory]) -> AsyncIterator[WorkflowHistory]:
    for history in histories:
        yield history
