"""The ERI worker (``eri worker``): runs the workflows and activities on ERI's task queue."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities import build_activities
from eri import temporal
from eri.audit.schedule import ensure_schedule
from eri.logging import get_logger
from eri.runtime import Runtime, open_runtime
from eri.settings import Settings
from protocols.registry import load_definitions
from workflows import WORKFLOWS

log = get_logger("eri.worker")


def build_worker(client: Client, runtime: Runtime) -> Worker:
    return Worker(
        client,
        task_queue=runtime.settings.temporal_task_queue,
        workflows=WORKFLOWS,
        activities=build_activities(runtime),
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def run_worker(settings: Settings) -> None:
    loaded = load_definitions()  # the protocol versions cases can pin
    log.info("protocols_loaded", count=len(loaded))
    async with open_runtime(settings) as runtime:
        client = await temporal.connect_with_retry(settings, runtime.keyring)
        worker = build_worker(client, runtime)
        await ensure_schedule(client, settings)  # the audit log's periodic checkpoints
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info(
            "worker_started",
            task_queue=settings.temporal_task_queue,
            namespace=settings.temporal_namespace,
        )
        async with worker:
            await stop.wait()
        log.info("worker_stopped")
