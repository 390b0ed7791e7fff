"""``eri up`` and ``eri temporal``: run ERI on the embedded default from one command.

``eri up`` starts the Temporal dev server (SQLite under the data directory), waits until it
answers, sets the namespace retention, runs the database migrations, then starts the worker and
the API as child processes. One Ctrl-C (or SIGTERM) stops the API, the worker and the server in
that order. Every child asks the kernel to end it if the supervisor dies (``PR_SET_PDEATHSIG``),
so a kill -9 of ``eri up`` leaves nothing holding the ports; a second run resumes every running
workflow from the SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from eri import temporal
from eri.crypto.wiring import kek_from_settings
from eri.db import upgrade
from eri.logging import get_logger
from eri.settings import Settings

log = get_logger("eri.up")
_PR_SET_PDEATHSIG = 1
STOP_TIMEOUT = 15.0


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(cmd: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """Start a child in its own session that the kernel ends when this process dies.

    Own session: a terminal's Ctrl-C reaches only the supervisor, which stops children in
    order. ``popen`` passes on (env, cwd, stdout): the crash tests start their processes here.
    """
    return subprocess.Popen(  # noqa: S603 (our own argv)
        list(cmd), preexec_fn=_die_with_parent, start_new_session=True, **popen
    )


def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process in the given order, waiting for it; SIGKILL after a timeout."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def prepare_temporal(settings: Settings, timeout: float = 60.0) -> None:
    client = await temporal.connect_with_retry(settings, timeout=timeout)
    await temporal.set_retention(
        client, settings.temporal_namespace, settings.temporal_retention_days
    )


def _eri(*args: str) -> list[str]:
    return [sys.executable, "-m", "eri.cli", *args]


def run_temporal(settings: Settings) -> int:
    """``eri temporal``: the dev server alone, in the foreground."""
    os.umask(0o077)
    settings.ensure_dirs()
    server = spawn(temporal.dev_server_command(settings))
    return _supervise(settings, [server], start_rest=False)


def up(settings: Settings) -> int:
    os.umask(0o077)  # the data directory holds case data: private to the service user
    settings.ensure_dirs()
    kek_from_settings(settings)  # development: the local KEK is created 0600 on first run
    server = spawn(temporal.dev_server_command(settings))
    return _supervise(settings, [server], start_rest=True)


def _supervise(
    settings: Settings, procs: list[subprocess.Popen[bytes]], *, start_rest: bool
) -> int:
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        asyncio.run(prepare_temporal(settings))
        host, port = settings.temporal_host_port
        log.info("temporal_ready", address=f"{host}:{port}", port=settings.temporal_ui_port)
        if start_rest:
            upgrade(settings.effective_database_url)
            log.info("database_migrated")
            procs.append(spawn(_eri("worker")))
            procs.append(spawn(_eri("api")))
            log.info("eri_up", address=f"http://{settings.api_host}:{settings.api_port}")
        while not stopping:
            for proc in procs:
                if proc.poll() is not None:
                    log.error("child_exited", pid=proc.pid, status=proc.returncode)
                    stopping = True
            time.sleep(0.2)
        return 0 if all(p.poll() is None for p in procs) else 1
    except Exception as exc:
        log.error("start_failed", error_type=type(exc).__name__)
        return 1
    finally:
        log.info("stopping")
        stop(list(reversed(procs)))
        log.info("stopped")
