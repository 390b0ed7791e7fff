"""The baseline: a bare Temporal workflow that takes updates (no ERI logic, codec or API).

``python bench/bare.py worker --address HOST:PORT --namespace NS --task-queue Q`` runs its
worker (a process of its own, like ``eri worker``); :func:`drive` (used by bench/load.py)
starts ``cases`` workflows with update-with-start and sends each ``updates`` more updates,
``concurrency`` at a time, the same shape of traffic as ERI's cases.

The module has no import-time side effects: the workflow sandbox re-imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from temporalio import workflow
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy


@workflow.defn(name="BareWorkflow")
class BareWorkflow:
    def __init__(self) -> None:
        self.count = 0
        self.done = False

    @workflow.run
    async def run(self, expected: int) -> int:
        await workflow.wait_condition(lambda: self.count >= expected)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.count

    @workflow.update
    async def step(self, n: int) -> int:
        self.count += 1
        return self.count

    @step.validator
    def _check_step(self, n: int) -> None:
        if n < 0:
            raise ValueError("negative step")


async def drive(
    client: Client, task_queue: str, cases: int, updates: int, concurrency: int
) -> dict[str, float]:
    """Updates per second over ``cases`` workflows of 1 + ``updates`` updates each."""
    slots = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one() -> None:
        wid = "bare-" + uuid.uuid4().hex
        start = WithStartWorkflowOperation(
            BareWorkflow.run,
            updates + 1,
            id=wid,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        async with slots:
            began = time.perf_counter()
            await client.execute_update_with_start_workflow(
                BareWorkflow.step, 0, start_workflow_operation=start
            )
            latencies.append(time.perf_counter() - began)
        handle = await start.workflow_handle()
        for i in range(updates):
            async with slots:
                began = time.perf_counter()
                await handle.execute_update(BareWorkflow.step, i + 1)
                latencies.append(time.perf_counter() - began)
        await handle.result()

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(cases)))
    wall = time.perf_counter() - began
    latencies.sort()
    return {
        "updates": len(latencies),
        "wall_s": wall,
        "updates_per_s": len(latencies) / wall,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


async def _worker(address: str, namespace: str, task_queue: str) -> None:
    from temporalio.worker import Worker

    client = await Client.connect(address, namespace=namespace)
    async with Worker(client, task_queue=task_queue, workflows=[BareWorkflow]):
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The bare workflow's worker")
    parser.add_argument("role", choices=["worker"])
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    asyncio.run(_worker(args.address, args.namespace, args.task_queue))
