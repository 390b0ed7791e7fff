"""Record one CaseWorkflow history per protocol, branch and policy, by driving the real
workflows (ERI's production worker, the time-skipping server) through
:mod:`tests.workflows.protocol_runs`, and write them as ``<protocol>/<branch>.<policy>.json.gz``.

Run: ``.venv/bin/python -m tests.histories.record`` (about a minute). The payloads are written
with the production payload converter *without* the encrypting codec (``PLAIN_CONVERTER``), so
replaying them needs no key; every value in them is synthetic (``FICTICIO ...``).
"""

from __future__ import annotations

import asyncio
import gzip
import sys
import tempfile
import time
from pathlib import Path

from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from eri import search_attributes, temporal
from tests.conftest import free_port, scratch_runtime
from tests.workflows.protocol_runs import (
    BRANCHES,
    DEADLINE_BRANCHES,
    PLAIN_CONVERTER,
    PROTOCOL_IDS,
    Branch,
    Policy,
    RunResult,
    engine,
    run_case,
)

HERE = Path(__file__).resolve().parent

RUNS: list[tuple[Branch, Policy]] = [(b, "prompt") for b in BRANCHES] + [
    (DEADLINE_BRANCHES[0], "at_deadline"),
    (DEADLINE_BRANCHES[1], "at_deadline"),
    (DEADLINE_BRANCHES[1], "full_ladder"),
]


async def plain_time_skipping_env() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=PLAIN_CONVERTER,
        test_server_existing_path=temporal.find_binary("temporal-test-server"),
        port=free_port(),
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={k.name: k.indexed_value_type for k in search_attributes.ALL},
        )
    )
    return env


async def drive_all() -> list[RunResult]:
    """Every protocol x (branch, policy) run, checked as the tests check them."""
    results = []
    env = await plain_time_skipping_env()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with scratch_runtime(Path(tmp)) as runtime, engine(env, runtime) as eng:
                for protocol_id in PROTOCOL_IDS:
                    for branch, policy in RUNS:
                        start = "now" if policy == "prompt" else "eve_of_holiday"
                        results.append(
                            await run_case(eng, protocol_id, branch, policy, start=start)
                        )
    finally:
        await env.shutdown()
    return results


def path_of(result: RunResult) -> Path:
    return HERE / result.protocol_id / f"{result.branch}.{result.policy}.json.gz"


async def main() -> None:
    started = time.monotonic()
    results = await drive_all()
    for result in results:
        path = path_of(result)
        path.parent.mkdir(exist_ok=True)
        # gzip'd (about a tenth of the size); ``gunzip -c`` shows WorkflowHistory.to_json()
        path.write_bytes(gzip.compress(result.history_json.encode(), mtime=0))
        print(f"{path.relative_to(HERE.parent.parent)}: {result.history_events} events")
    print(f"{len(results)} histories in {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
    import os

    os._exit(0)  # sdk-python issue 300 (see tests/conftest.py)
