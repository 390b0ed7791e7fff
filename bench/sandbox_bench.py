"""The workflow sandbox's cost: CPU per workflow task, replaying the committed case histories
with Temporal's sandboxed runner (ERI's worker) and with the unsandboxed one.

Run: ``.venv/bin/python bench/sandbox_bench.py [--rounds 3]``

The histories are ``tests/histories/`` (28 whole cases of both protocols, every branch; plain
payloads, so no codec). Each round replays all of them once per runner, the runners
interleaved; the figure is the process CPU time (all threads, the SDK's Rust core included)
divided by the workflow tasks replayed, median over the rounds. Replay runs the same workflow
code and the same SDK path as a live worker, minus the server round trips and the activities.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.client import WorkflowHistory  # noqa: E402
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, WorkflowRunner  # noqa: E402

from tests.workflows.protocol_runs import PLAIN_CONVERTER, protocols  # noqa: E402
from workflows import WORKFLOWS  # noqa: E402


async def replay(histories: list[WorkflowHistory], runner: WorkflowRunner | None) -> float:
    """CPU seconds to replay every history (``runner`` None: the SDK's default, sandboxed)."""
    extra = {} if runner is None else {"workflow_runner": runner}
    replayer = Replayer(workflows=WORKFLOWS, data_converter=PLAIN_CONVERTER, **extra)

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            yield history

    began = time.process_time()
    async with replayer.workflow_replay_iterator(each()) as results:
        async for result in results:
            if result.replay_failure is not None:
                raise RuntimeError(f"{result.history.workflow_id}: {result.replay_failure!r}")
    return time.process_time() - began


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    protocols()  # the versions the histories pinned
    histories = [
        WorkflowHistory.from_json(path.name, gzip.decompress(path.read_bytes()).decode())
        for path in sorted((ROOT / "tests" / "histories").glob("*/*.json.gz"))
    ]
    tasks = sum(
        1
        for h in histories
        for e in h.events
        if e.HasField("workflow_task_completed_event_attributes")
    )
    events = sum(len(h.events) for h in histories)
    print(f"{len(histories)} histories, {events} events, {tasks} workflow tasks")
    spent: dict[str, list[float]] = {"sandboxed": [], "unsandboxed": []}
    for _ in range(args.rounds):
        spent["sandboxed"].append(await replay(histories, None))
        spent["unsandboxed"].append(await replay(histories, UnsandboxedWorkflowRunner()))
    for name, seconds in spent.items():
        per_task = 1000 * statistics.median(seconds) / tasks
        rounds = ", ".join(f"{s:.1f}" for s in seconds)
        print(f"{name}: {per_task:.2f} ms CPU per workflow task (rounds: {rounds} s)")


if __name__ == "__main__":
    asyncio.run(main())
