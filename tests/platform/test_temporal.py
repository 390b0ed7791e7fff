"""The test harness reaches the real servers, and the worker runs ERI's registered workflows."""

from __future__ import annotations

import uuid

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from eri import search_attributes
from eri.runtime import Runtime
from tests.conftest import worker_on_new_queue
from workflows.probe import ProbeWorkflow


async def test_probe_runs_on_the_dev_server_with_the_eri_worker(
    temporal_env: WorkflowEnvironment, runtime: Runtime
) -> None:
    worker, queue = worker_on_new_queue(temporal_env.client, runtime)
    async with worker:
        handle = await temporal_env.client.start_workflow(
            ProbeWorkflow.run, 3600, id="probe_" + uuid.uuid4().hex, task_queue=queue
        )
        assert await handle.execute_update(ProbeWorkflow.beat) == 1
        assert await handle.execute_update(ProbeWorkflow.beat) == 2
        assert await handle.query(ProbeWorkflow.beats) == 2
        await handle.signal(ProbeWorkflow.finish)
        assert await handle.result() == 2
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_dev_server_has_the_eri_search_attributes(temporal_env: WorkflowEnvironment) -> None:
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    resp = await temporal_env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="eri")
    )
    assert {k.name for k in search_attributes.ALL} <= set(resp.custom_attributes)


async def test_time_skipping_server_skips_a_day(
    time_skipping_env: WorkflowEnvironment, runtime: Runtime
) -> None:
    worker, queue = worker_on_new_queue(time_skipping_env.client, runtime)
    async with worker:
        before = await time_skipping_env.get_current_time()
        beats = await time_skipping_env.client.execute_workflow(
            ProbeWorkflow.run, 86400, id="probe_" + uuid.uuid4().hex, task_queue=queue
        )
        elapsed = await time_skipping_env.get_current_time() - before
    assert beats == 0
    assert elapsed.total_seconds() >= 86400
