"""ERI on the embedded default for the benches: the dev server, ``eri worker`` and ``eri api``.

One :class:`Stack` runs the three processes the way ``eri up`` does (eri/supervisor.py): the
Temporal dev server from :func:`eri.temporal.dev_server_command` (so with ERI's
``DEV_SERVER_TUNING``), the migrations, then ``python -m eri.cli worker`` and ``python -m eri.cli
api`` (uvicorn), every one on a free port, with a data directory of its own. It can kill -9 and
restart each process (fault runs) and reads their CPU time and memory from ``/proc``.

Also here: the synthetic team of a protocol (users with tokens, ``eri/users.py``), valid form
data from a step's field definitions, percentiles and ``uptime`` load averages.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from temporalio.api.enums.v1 import TaskQueueType  # noqa: E402
from temporalio.api.taskqueue.v1 import TaskQueue  # noqa: E402
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest  # noqa: E402
from temporalio.client import Client  # noqa: E402

from eri import temporal, users  # noqa: E402
from eri.crypto.wiring import kek_from_settings  # noqa: E402
from eri.db import create_engine, session_factory, upgrade  # noqa: E402
from eri.settings import Settings  # noqa: E402
from eri.supervisor import _die_with_parent, prepare_temporal  # noqa: E402
from protocols.model import Protocol  # noqa: E402
from tests.api.casework_support import form_for  # noqa: E402  (one home for synthetic forms)

__all__ = ["Member", "Stack", "Team", "form_for", "make_team", "percentile"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# --- processes ------------------------------------------------------------------------------


@dataclass
class Usage:
    cpu_s: float = 0.0  # user + system, summed over every incarnation
    peak_rss_mb: float = 0.0  # the largest VmHWM of any incarnation
    rss_mb: float = 0.0  # VmRSS now


def read_proc(pid: int) -> tuple[float, float, float] | None:
    """(cpu seconds, VmRSS MB, VmHWM MB) of a live process, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    mem = {
        line.split(":")[0]: int(line.split()[1])
        for line in status.splitlines()
        if line.startswith(("VmRSS", "VmHWM"))
    }
    return cpu, mem.get("VmRSS", 0) / 1024, mem.get("VmHWM", 0) / 1024


@dataclass
class Managed:
    """One child process that can be killed and started again; usage survives restarts."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    past_cpu: float = 0.0
    past_peak: float = 0.0
    restarts: int = 0

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 (our own argv)
            self.argv,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )
        out.close()

    def sample(self) -> Usage:
        now = read_proc(self.proc.pid) if self.proc is not None else None
        if now is None:
            return Usage(self.past_cpu, self.past_peak, 0.0)
        cpu, rss, hwm = now
        return Usage(self.past_cpu + cpu, max(self.past_peak, hwm), rss)

    def kill9(self) -> None:
        assert self.proc is not None
        last = self.sample()
        self.proc.kill()
        self.proc.wait()
        self.past_cpu, self.past_peak = last.cpu_s, last.peak_rss_mb
        self.restarts += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Stack:
    """ERI on free ports under ``data_dir``: ``await stack.start()``, then ``stack.stop()``."""

    def __init__(
        self, data_dir: Path, database_url: str | None = None, *, server_tuning: bool = True
    ) -> None:
        """``server_tuning=False``: the dev server without ``DEV_SERVER_TUNING`` (its defaults:
        rollback journal, synchronous=FULL, 4 task-queue partitions), to measure the trade-off."""
        self.data_dir = data_dir
        port = free_port()
        env = {
            "ERI_ENVIRONMENT": "development",
            "ERI_DATA_DIR": str(data_dir),
            "ERI_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
            "ERI_TEMPORAL_HTTP_PORT": str(free_port()),
            "ERI_TEMPORAL_METRICS_PORT": str(free_port()),
            "ERI_TEMPORAL_UI_PORT": str(free_port()),
            "ERI_API_PORT": str(free_port()),
            "ERI_TOKEN_TTL_MINUTES": "1440",
            "ERI_LOG_LEVEL": "WARNING",
        }
        if database_url:
            env["ERI_DATABASE_URL"] = database_url
        self.env = {**os.environ, **env}
        # The bench process reads the same environment, so it sees the same settings.
        os.environ.update(env)
        self.settings = Settings()
        self.url = f"http://{self.settings.api_host}:{self.settings.api_port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        eri = [sys.executable, "-m", "eri.cli"]
        self.temporal = Managed(
            "temporal",
            temporal.dev_server_command(self.settings, tuning=server_tuning),
            self.env,
            data_dir / "temporal.log",
        )
        self.worker = Managed("worker", [*eri, "worker"], self.env, data_dir / "worker.log")
        self.api = Managed("api", [*eri, "api"], self.env, data_dir / "api.log")
        self.client: Client | None = None

    @property
    def procs(self) -> list[Managed]:
        return [self.temporal, self.worker, self.api]

    async def start(self) -> None:
        os.umask(0o077)
        self.settings.ensure_dirs()
        kek_from_settings(self.settings)
        self.temporal.start()
        await prepare_temporal(self.settings)
        await asyncio.to_thread(upgrade, self.settings.effective_database_url)  # runs its own loop
        self.worker.start()
        self.api.start()
        self.client = await temporal.connect_with_retry(self.settings)
        await self.wait_ready()

    async def wait_ready(self, timeout: float = 90.0) -> None:
        """The API answers /readyz and a worker polls ERI's task queue."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as http:
            while True:
                try:
                    ready = (await http.get("/readyz")).status_code == 200
                    ready = ready and await self.worker_polling()
                except (httpx.HTTPError, OSError, RuntimeError):
                    ready = False
                if ready:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"ERI not ready after {timeout:.0f}s; see {self.data_dir}/*.log"
                    )
                await asyncio.sleep(0.25)

    async def worker_polling(self) -> bool:
        if self.client is None:
            self.client = await temporal.connect_with_retry(self.settings, timeout=5)
        resp = await self.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.settings.temporal_namespace,
                task_queue=TaskQueue(name=self.settings.temporal_task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        return len(resp.pollers) > 0

    async def restart(self, which: Managed) -> float:
        """kill -9 one process, start it again, wait until ERI is ready; seconds it took."""
        began = time.monotonic()
        which.kill9()
        which.start()
        if which is self.temporal:
            await prepare_temporal(self.settings)
        await self.wait_ready()
        return time.monotonic() - began

    def usage(self) -> dict[str, Usage]:
        return {p.name: p.sample() for p in self.procs}

    def stop(self) -> None:
        for proc in (self.api, self.worker, self.temporal):
            proc.stop()


# --- the team -------------------------------------------------------------------------------


@dataclass
class Member:
    name: str
    role: str
    groups: list[str]
    headers: dict[str, str]


@dataclass
class Team:
    """One coordinator and one responder per institution of a protocol, holding every group
    of that institution that a step names."""

    protocol_id: str
    coordinator: Member
    responders: list[Member] = field(default_factory=list)

    def who_can(self, groups: Sequence[str]) -> Member:
        for member in self.responders:
            if set(member.groups) & set(groups):
                return member
        return self.coordinator


async def make_team(settings: Settings, protocol: Protocol, suffix: str) -> Team:
    engine = create_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    try:
        by_institution: dict[str, set[str]] = {}
        for step in protocol.steps:
            for group in step.responsible:
                by_institution.setdefault(group.split(":")[0], set()).add(group)

        async def member(name: str, role: str, institution: str, groups: list[str]) -> Member:
            user = await users.add(sessions, f"{name}.{suffix}", role, institution, groups)
            token = users.token(settings, user, ttl_minutes=settings.token_ttl_minutes)
            return Member(name, role, groups, {"Authorization": f"Bearer {token}"})

        leads = [i for i, gs in by_institution.items() if any("coordinator" in g for g in gs)]
        lead = sorted(leads or by_institution)[0]
        coordinator = await member(
            f"coord-{protocol.id}", "coordinator", lead, sorted(by_institution[lead])
        )
        team = Team(protocol.id, coordinator)
        for inst, groups in sorted(by_institution.items()):
            team.responders.append(
                await member(f"{inst}-{protocol.id}", "responder", inst, sorted(groups))
            )
        return team
    finally:
        await engine.dispose()
