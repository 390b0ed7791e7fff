"""``eri up`` as a user runs it: real processes, the real dev server, kill -9 and restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.support.processes import alive, clean_environ, descendants, eri_command

READY_WITHIN = 90.0


@pytest.fixture
def up_env(tmp_path: Path) -> dict[str, str]:
    return clean_environ(
        ERI_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        ERI_TEMPORAL_UI_PORT=str(free_port()),
        ERI_TEMPORAL_HTTP_PORT=str(free_port()),
        ERI_TEMPORAL_METRICS_PORT=str(free_port()),
        ERI_API_PORT=str(free_port()),
        ERI_LOG_FORMAT="json",
    )


async def _retention_days(address: str) -> int:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    client = await Client.connect(address, namespace="eri")
    resp = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace="eri")
    )
    return resp.config.workflow_execution_retention_ttl.ToTimedelta().days


def _start(env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            eri_command("up"), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _wait_ready(env: dict[str, str], proc: subprocess.Popen[bytes], log: Path) -> float:
    started = time.monotonic()
    url = f"http://127.0.0.1:{env['ERI_API_PORT']}/readyz"
    while time.monotonic() - started < READY_WITHIN:
        assert proc.poll() is None, f"eri up exited early:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"not ready within {READY_WITHIN}s:\n{log.read_text()[-3000:]}")


def _run(env: dict[str, str], cwd: Path, *args: str) -> str:
    out = subprocess.run(
        eri_command(*args), cwd=cwd, env=env, capture_output=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    return out.stdout.decode().strip()


def test_up_serves_survives_kill_9_and_stops_on_ctrl_c(
    up_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "up.log"
    proc = _start(up_env, tmp_path, log)
    try:
        elapsed = _wait_ready(up_env, proc, log)
        print(f"ready after {elapsed:.1f}s")
        ui = httpx.get(f"http://127.0.0.1:{up_env['ERI_TEMPORAL_UI_PORT']}/", timeout=5)
        assert ui.status_code == 200
        assert (tmp_path / "data" / "temporal.db").exists()
        assert (tmp_path / "data" / "eri.db").exists()
        assert (tmp_path / "data").stat().st_mode & 0o077 == 0
        kek = tmp_path / "data" / "keys" / "kek"
        assert kek.stat().st_mode & 0o777 == 0o600
        first_kek = kek.read_bytes()

        assert asyncio.run(_retention_days(up_env["ERI_TEMPORAL_ADDRESS"])) == 30

        probe = _run(up_env, tmp_path, "probe", "start")
        assert probe.startswith("probe_")

        # kill -9 of everything: the supervisor and every process below it
        pids = [proc.pid, *descendants(proc.pid)]
        assert len(pids) >= 4, pids  # supervisor, temporal, worker, api
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(p) for p in pids)

        proc = _start(up_env, tmp_path, log)
        _wait_ready(up_env, proc, log)
        assert _run(up_env, tmp_path, "probe", "finish", probe) == "0"
        assert kek.read_bytes() == first_kek  # the development key survives restarts

        children = descendants(proc.pid)
        proc.send_signal(signal.SIGINT)  # what one Ctrl-C delivers
        assert proc.wait(40) == 0, log.read_text()[-3000:]
        assert not any(alive(p) for p in children)
    finally:
        if proc.poll() is None:
            for pid in descendants(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.kill()


def test_killing_the_supervisor_takes_its_children_down(
    up_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "up.log"
    proc = _start(up_env, tmp_path, log)
    try:
        _wait_ready(up_env, proc, log)
        children = descendants(proc.pid)
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 20
        while any(alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(p) for p in children), "orphans would hold the ports"
    finally:
        for pid in descendants(proc.pid):
            os.kill(pid, signal.SIGKILL)
