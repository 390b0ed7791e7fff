"""Real ERI processes for the tests that kill them: the dev server and ``eri worker``.

Each process runs in a session of its own (its process group is the one the test kills) and
asks the kernel to end it if the test process dies (``PR_SET_PDEATHSIG``, through
``eri.supervisor.spawn``), so an interrupted run leaves nothing holding a port. Spawn from the
main thread only: the kernel ties that signal to the thread that forked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from temporalio.client import Client

from eri import temporal
from eri.settings import Settings
from eri.supervisor import spawn
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        found.append(child)
        found.extend(descendants(child))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def eri_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "eri.cli", *args]


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without any ERI_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERI_")}
    env.update(extra)
    return env


def dev_server_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings for a dev server of the test's own: free ports, its SQLite file in ``data_dir``."""
    return Settings(
        data_dir=data_dir,
        temporal_address=f"127.0.0.1:{free_port()}",
        temporal_ui_port=free_port(),
        temporal_http_port=free_port(),
        temporal_metrics_port=free_port(),
        api_port=free_port(),
        **overrides,  # type: ignore[arg-type]
    )


def settings_environ(settings: Settings) -> dict[str, str]:
    """The ERI_* variables that give a child process the same settings."""
    values = {
        "ERI_TEMPORAL_ADDRESS": settings.temporal_address,
        "ERI_TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "ERI_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "ERI_DATA_DIR": str(settings.data_dir),
        "ERI_KEYS_DIR": str(settings.effective_keys_dir),
        "ERI_DATABASE_URL": settings.effective_database_url,
        "ERI_LOG_FORMAT": "json",
        "ERI_LOG_LEVEL": "WARNING",
    }
    return clean_environ(**values)


class Service:
    """One child process, started and SIGKILLed as often as the test wants."""

    def __init__(self, name: str, cmd: list[str], log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.cmd = cmd
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        with self.log.open("ab") as out:
            self.proc = spawn(
                self.cmd, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the process and everything in its group; return once all of it is gone."""
        if self.proc is None:
            return
        pids = [self.proc.pid, *descendants(self.proc.pid)]
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # own session: group id == pid
                os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in pids[1:]:  # a descendant that left the group
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(p) for p in pids), f"{self.name}: {pids} outlived SIGKILL"

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def dev_server(settings: Settings, log: Path) -> Service:
    """``temporal server start-dev`` exactly as ``eri up`` runs it (eri.temporal)."""
    return Service("temporal", temporal.dev_server_command(settings), log, clean_environ())


def worker(settings: Settings, log: Path) -> Service:
    """``eri worker`` with ``settings`` given through ERI_* variables."""
    return Service("worker", eri_command("worker"), log, settings_environ(settings))


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float, what: str, every: float = 0.1
) -> T:
    """Poll ``probe`` until it returns something other than None (or fail after ``timeout``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = await probe()
        if found is not None:
            return found
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(every)


async def polling(client: Client, settings: Settings, service: Service, timeout: float) -> None:
    """Wait until ``service`` (an ``eri worker``) polls ERI's task queue."""

    async def found() -> bool | None:
        identities = await temporal.pollers(client, settings)
        return True if any(i.startswith(f"{service.pid}@") for i in identities) else None

    await eventually(found, timeout=timeout, what=f"{service.name} {service.pid} to poll")
