"""Bad input gets a clear 4xx problem+json and changes nothing.

An oversized body, malformed JSON, wrong content types, unicode edge
cases, and an Idempotency-Key replayed with a different body.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from eri.db.models import CaseRow
from eri.runtime import Runtime
from tests.api.casework_support import GT_ADULT, Team, open_case, running_api


@pytest.fixture
async def team(
    temporal_env: WorkflowEnvironment, runtime: Runtime, session_tmp: Path, tmp_path: Path
) -> AsyncIterator[Team]:
    async with running_api(temporal_env, runtime, session_tmp, tmp_path) as t:
        yield t


async def cases(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(CaseRow))).scalar())


def is_problem(r: object) -> bool:
    return r.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]


async def test_an_oversized_body_is_413(team: Team, runtime: Runtime) -> None:
    before = await cases(runtime)
    big = json.dumps(
        {"protocol_id": "gt-eri", "facts": GT_ADULT, "intake": {"alias": "x" * 400_000}}
    ).encode()
    r = await team.client.post(
        "/v1/cases",
        content=big,
        headers=team.idem("coord.svet", **{"Content-Type": "application/json"}),
    )
    assert r.status_code == 413 and is_problem(r), r.text

    assert await cases(runtime) == before


async def test_an_oversized_chunked_body_is_413_though_it_declares_no_length(
    team: Team, runtime: Runtime
) -> None:
    """A body sent in chunks (Transfer-Encoding: chunked) has no Content-Length to refuse it
    by: it is stopped as it is read, past the limit, and nothing is opened."""
    before = await cases(runtime)
    piece = json.dumps({"alias": "x" * 1000}).encode()
    limit = team.settings.max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"protocol_id": "gt-eri", "facts": {}, "intake": {"parts": ['
        for _ in range(limit // len(piece) + 2):
            yield piece + b","
        yield b"{}]}}"

    r = await team.client.post(
        "/v1/cases",
        content=chunks(),
        headers=team.idem("coord.svet", **{"Content-Type": "application/json"}),
    )
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in r.request.headers
    assert r.status_code == 413 and is_problem(r), r.text
    assert r.json()["type"].endswith("payload-too-large")
    assert await cases(runtime) == before


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"protocol_id": "gt-eri", "facts": {', "application/json"),  # truncated
        (b"\xff\xfe not utf-8", "application/json"),
        (b'{"protocol_id": "gt-eri", "facts": {"minor": NaN}}', "application/json"),
        (b"protocol_id=gt-eri", "application/x-www-form-urlencoded"),
        (b'{"protocol_id": "gt-eri", "facts": {}, "intake": {}}', "text/plain"),
        (b"[]", "application/json"),
        (b'"\\ud800"', "application/json"),  # a lone surrogate
    ],
)
async def test_malformed_bodies_and_wrong_content_types_are_4xx(
    team: Team, runtime: Runtime, body: bytes, content_type: str
) -> None:
    before = await cases(runtime)
    r = await team.client.post(
        "/v1/cases", content=body, headers=team.idem("coord.svet", **{"Content-Type": content_type})
    )
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert is_problem(r)
    assert await cases(runtime) == before


@pytest.mark.parametrize(
    "value",
    ["\u0000", "\ud800", "a\u202eb", "🧪" * 1000, "\ufeff", "é" * 20_000],
)
async def test_unicode_edge_cases_in_a_form_are_accepted_or_refused_never_500(
    team: Team, value: str
) -> None:
    opened = await open_case(team, "coord.svet", GT_ADULT)
    task = opened["open_tasks"][0]
    member = team.who_can(task["candidate_groups"])
    got = await team.client.get(f"/v1/tasks/{task['task_id']}", headers=team.h(member.name))
    fields = [f for f in got.json()["form"]["fields"] if f["type"] == "text"]
    form = {f["id"]: value for f in fields} or {"unknown": value}
    body = json.dumps({"form": form}, ensure_ascii=True).encode()
    r = await team.client.put(
        f"/v1/tasks/{task['task_id']}/draft",
        content=body,
        headers=team.h(member.name, **{"Content-Type": "application/json"}),
    )
    assert r.status_code < 500, (r.status_code, r.text[:300])
    assert value not in r.text  # never echoed
    segment = quote(value[:40].encode("utf-8", "surrogatepass"), safe="")
    path = await team.client.get(f"/v1/tasks/{segment}", headers=team.h(member.name))
    assert path.status_code in (404, 422), path.status_code


async def test_an_idempotency_key_replayed_with_another_body_is_refused(
    team: Team, runtime: Runtime
) -> None:
    headers = team.idem("coord.svet")
    body = {"protocol_id": "gt-eri", "facts": GT_ADULT, "intake": {}}
    first = await team.client.post("/v1/cases", json=body, headers=headers)
    assert first.status_code == 201
    after_first = await cases(runtime)
    other = {**body, "facts": {**GT_ADULT, "minor": True}}
    r = await team.client.post("/v1/cases", json=other, headers=headers)
    assert r.status_code == 422 and is_problem(r), r.text
    assert r.json()["type"].endswith("idempotency-key-reused")
    again = await team.client.post("/v1/cases", json=body, headers=headers)
    assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
    assert again.json()["case_id"] == first.json()["case_id"]
    assert await cases(runtime) == after_first
    for bad in (b"short", ("ñ" * 20).encode("latin-1"), b"x" * 129, b"a b c d e f g h"):
        r = await team.client.post(
            "/v1/cases", json=body, headers={**team.h("coord.svet"), "Idempotency-Key": bad}
        )
        assert r.status_code == 400 and is_problem(r), (bad, r.status_code)
