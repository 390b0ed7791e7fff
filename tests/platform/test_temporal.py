"""The test harness reaches the real servers, and the worker runs ERI's registered workflows."""

from __future__ import annotations

import uuid
from pathlib import Path

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from eri import search_attributes
from eri.settings import Settings
from eri.worker import build_worker
from workflows.probe import ProbeWorkflow


def _settings(tmp_path: Path, queue: str) -> Settings:
    return Settings(data_dir=tmp_path, temporal_task_queue=queue)


async def test_probe_runs_on_the_dev_server_with_the_eri_worker(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    queue = "q-" + uuid.uuid4().hex
    async with build_worker(temporal_env.client, _settings(tmp_path, queue)):
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
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    queue = "q-" + uuid.uuid4().hex
    async with build_worker(time_skipping_env.client, _settings(tmp_path, queue)):
        before = await time_skipping_env.get_current_time()
        beats = await time_skipping_env.client.execute_workflow(
            ProbeWorkflow.run, 86400, id="probe_" + uuid.uuid4().hex, task_queue=queue
        )
        elapsed = await time_skipping_env.get_current_time() - before
    assert beats == 0
    assert elapsed.total_seconds() >= 86400
