"""The leak canary through the HTTP API: a synthetic case driven to closure by a team, with
planted values in the intake, in every sensitive form field, in drafts and in requests that
fail validation. No planted value may appear in any answer (except the decrypted case and
draft, to those allowed), any log line, ERI's database or Temporal's file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from eri.canary import LeakScanner
from eri.logging import configure_logging
from eri.runtime import Runtime
from eri.settings import Settings
from tests.api.casework_support import GT_ADULT, Team, form_for, running_api
from tests.test_leak_canary import planted_person


class Recorder:
    """Keeps every answer the team receives."""

    def __init__(self, team: Team) -> None:
        self.team = team
        self.bodies: list[str] = []

    async def __call__(
        self, method: str, path: str, name: str, *, json: Any = None, idem: bool = True, **h: str
    ) -> httpx.Response:
        headers = self.team.idem(name, **h) if idem else self.team.h(name, **h)
        r = await self.team.client.request(method, path, json=json, headers=headers)
        assert r.status_code < 500, r.text
        self.bodies.append(r.text)
        return r


@pytest.mark.parametrize(
    ("protocol_id", "coordinator", "responder"),
    [("gt-eri", "coord.svet", "ts.pgn"), ("hn-cicesct", "coord.cicesct", "psi.cicesct")],
)
async def test_no_planted_value_leaks_through_the_task_api(
    protocol_id: str,
    coordinator: str,
    responder: str,
    temporal_env: WorkflowEnvironment,
    runtime: Runtime,
    session_tmp: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    person = planted_person()
    configure_logging(Settings(log_format="json"), component="canary-http")
    async with running_api(temporal_env, runtime, session_tmp, tmp_path) as team:
        call = Recorder(team)
        # Requests that fail validation, carrying the planted values as values and as keys.
        for value in person.values():
            await call("POST", "/v1/cases", coordinator, json={"protocol_id": value})
            await call(
                "POST",
                "/v1/cases",
                coordinator,
                json={
                    "protocol_id": protocol_id,
                    "intake": {value: value},
                    "facts": {value: value},
                },
            )
            await call("GET", f"/v1/cases/case_{value}", coordinator, idem=False)
        await call(
            "POST", "/v1/tasks/x/claim", responder, **{"Idempotency-Key": person["passport"]}
        )
        opened = await call(
            "POST",
            "/v1/cases",
            coordinator,
            json={"protocol_id": protocol_id, "facts": GT_ADULT, "intake": person},
        )
        assert opened.status_code == 201, opened.text
        case_id = opened.json()["case_id"]
        await call(
            "POST",
            f"/v1/cases/{case_id}/facts",
            coordinator,
            json={"fact": "risk_level", "value": person["name"]},
        )
        view = opened.json()
        sensitive_fields = 0
        while not view["closed"]:
            task = view["open_tasks"][0]
            member = team.who_can(task["candidate_groups"])
            detail = await team.client.get(
                f"/v1/tasks/{task['task_id']}", headers=team.h(member.name)
            )
            schema = detail.json()["form"]
            sensitive_fields += sum(f["sensitive"] for f in (schema or {"fields": []})["fields"])
            path = f"/v1/tasks/{task['task_id']}"
            await call(
                "PUT",
                f"{path}/draft",
                member.name,
                json={"form": form_for(schema, person["statement"], GT_ADULT)},
                idem=False,
            )
            bad = await call(
                "POST",
                f"{path}/complete",
                member.name,
                json={"form": {"x": person["passport"], **{person["name"]: 1}}},
            )
            assert bad.status_code == 422
            await call("POST", f"{path}/claim", member.name)
            done = await call(
                "POST",
                f"{path}/complete",
                member.name,
                json={"form": form_for(schema, person["statement"], GT_ADULT)},
            )
            assert done.status_code == 200, done.text
            view = done.json()
        assert sensitive_fields >= 5  # the path really carried planted values in forms
        case = await team.client.get(f"/v1/cases/{case_id}", headers=team.h(coordinator))
        assert case.json()["data"]["intake"]["name"] == person["name"]  # readable to those allowed
        await call("GET", f"/v1/cases/{case_id}/timeline", responder, idem=False)
        await call("GET", "/v1/tasks?status=completed", responder, idem=False)

    scanner = LeakScanner(person)
    findings = scanner.scan_texts(call.bodies, "api answers")
    findings += scanner.scan_sqlite_files(session_tmp / "temporal.db")
    findings += scanner.scan_sqlite_files(Path(runtime.settings.database_url.split("///", 1)[1]))
    captured = capfd.readouterr()
    findings += scanner.scan_text(captured.out + captured.err, "captured output")
    assert '"route": "/v1/cases"' in captured.err or "/v1/cases" in captured.err
    assert findings == []
