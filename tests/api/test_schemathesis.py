"""schemathesis against the served OpenAPI, with a real token: no 5xx, no schema violation."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import uvicorn
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from eri.runtime import Runtime
from eri.settings import Settings
from tests.api.casework_support import GT_ADULT, running_api
from tests.conftest import free_port

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    temporal_env: WorkflowEnvironment, runtime: Runtime, session_tmp: Path, tmp_path: Path
) -> None:
    async with running_api(temporal_env, runtime, session_tmp, tmp_path) as team:
        # A real case, so that generated calls can also reach existing cases and tasks.
        r = await team.client.post(
            "/v1/cases",
            json={"protocol_id": "gt-eri", "facts": GT_ADULT, "intake": {}},
            headers=team.idem("coord.svet"),
        )
        assert r.status_code == 201
        settings: Settings = team.settings
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
        )
        serving = asyncio.create_task(server.serve())
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        try:
            st = Path(sys.executable).with_name("schemathesis")
            proc = await asyncio.create_subprocess_exec(
                str(st),
                "run",
                f"http://127.0.0.1:{port}/openapi.json",
                "--checks",
                CHECKS,
                "--header",
                team.h("coord.svet")["Authorization"].join(["Authorization: ", ""]),
                "--max-examples",
                "8",
                "--phases",
                "examples,coverage,fuzzing",
                "--seed",
                "20261122",
                "--request-timeout",
                "20",
                "--exclude-path-regex",
                "^/codec/",  # the codec endpoint has its own tests (tests/api/test_codec.py)
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"},
            )
            out, _ = await proc.communicate()
        finally:
            server.should_exit = True
            await serving
        report = out.decode(errors="replace")

        assert proc.returncode == 0, report[-6000:]
        assert "No issues found" in report or "passed" in report, report[-3000:]
