"""The task API end to end: users and tokens, HTTP calls only, the real dev server and worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from eri import ledger
from eri.ledger import Action
from eri.runtime import Runtime
from tests.api.casework_support import (
    GT_ADULT,
    Team,
    do_task,
    drive_to_closure,
    form_for,
    open_case,
    running_api,
)


@pytest.fixture
async def team(
    temporal_env: WorkflowEnvironment, runtime: Runtime, session_tmp: Path, tmp_path: Path
) -> AsyncIterator[Team]:
    async with running_api(temporal_env, runtime, session_tmp, tmp_path) as t:
        yield t


async def test_a_team_drives_a_guatemalan_case_to_closure_over_http(team: Team) -> None:
    protocols = await team.client.get("/v1/protocols", headers=team.h("ts.pgn"))
    assert {p["id"] for p in protocols.json()["items"]} == {"gt-eri", "hn-cicesct"}
    opened = await open_case(team, "coord.svet", GT_ADULT, intake={"alias": "Persona Sintética"})
    assert [t["step_id"] for t in opened["open_tasks"]] == ["detection"]
    assert opened["open_tasks"][0]["title"] == "Detección de una posible víctima"
    steps = await drive_to_closure(team, opened, GT_ADULT)
    assert steps[0] == "detection" and steps[-1] == "case_closure"
    assert sorted(steps) == sorted(
        [
            "detection",
            "eri_activation",
            "identification",
            "immediate_safety",
            "first_order_care",
            "language_and_rights",
            "consent_recorded",
            "risk_assessment",
            "adult_care_plan",
            "adult_shelter_referral",
            "complaint_to_prosecutor",
            "victim_statement",
            "second_order_care",
            "life_plan",
            "follow_up",
            "case_closure",
        ]
    )
    case_id = opened["case_id"]
    case = await team.client.get(f"/v1/cases/{case_id}", headers=team.h("coord.svet"))
    assert case.status_code == 200, case.text
    assert case.json()["status"] == "closed"
    assert case.json()["data"]["intake"] == {"alias": "Persona Sintética"}
    timeline = await team.client.get(f"/v1/cases/{case_id}/timeline", headers=team.h("ts.pgn"))
    actions = [e["action"] for e in timeline.json()["items"]]
    assert actions[0] == "case.opened" and "case.closed" in actions
    assert actions.count("task.completed") == len(steps)
    assert actions[-1] == "case.viewed"  # the coordinator's read above
    assert "Persona" not in timeline.text


async def test_a_team_drives_a_honduran_case_to_closure_over_http(team: Team) -> None:
    """Every Honduran institution's responder with a token of their own, HTTP calls only."""
    opened = await open_case(
        team,
        "coord.cicesct",
        GT_ADULT,
        intake={"alias": "Persona Sintética"},
        protocol_id="hn-cicesct",
    )
    assert [t["step_id"] for t in opened["open_tasks"]] == ["detection_and_report"]
    steps = await drive_to_closure(team, opened, GT_ADULT)
    assert steps[0] == "detection_and_report" and steps[-1] == "case_closure"
    assert set(steps) == {
        "detection_and_report",
        "eri_activation",
        "identification",
        "immediate_safety",
        "primary_care",
        "language_and_rights",
        "consent_recorded",
        "risk_assessment",
        "adult_shelter_referral",
        "complaint_to_prosecutor",
        "victim_statement",
        "secondary_care",
        "reintegration_plan",
        "follow_up",
        "case_closure",
    }
    case_id = opened["case_id"]
    timeline = await team.client.get(
        f"/v1/cases/{case_id}/timeline", headers=team.h("fiscal.mp.hn")
    )
    assert timeline.status_code == 200, timeline.text
    actions = [e["action"] for e in timeline.json()["items"]]
    assert actions.count("task.completed") == len(steps) and "case.closed" in actions
    # A Guatemalan coordinator belongs to another commission: the case does not exist for them.
    elsewhere = await team.client.get(f"/v1/cases/{case_id}", headers=team.h("coord.svet"))
    assert elsewhere.status_code == 404, elsewhere.text
    case = await team.client.get(f"/v1/cases/{case_id}", headers=team.h("coord.cicesct"))
    assert case.json()["status"] == "closed"


async def test_the_identification_form_answering_under_18_starts_the_child_route(
    team: Team,
) -> None:
    """Opened not knowing the person's age, the case learns it from the identification form:
    the child route starts with that completion, no separate fact call needed."""
    unknown_age = {k: v for k, v in GT_ADULT.items() if k != "minor"}
    view = await open_case(team, "coord.svet", unknown_age)
    child = {**GT_ADULT, "minor": True}
    for _ in range(3):  # detection, ERI activation, identification
        (task,) = view["open_tasks"]
        view = await do_task(team, task["task_id"], task["candidate_groups"], facts=child)
    assert task["step_id"] == "identification"
    steps = {t["step_id"] for t in view["open_tasks"]}
    assert "child_pgn_intervention" in steps and "adult_care_plan" not in steps
    seen = await team.client.get(
        f"/v1/tasks/{task['task_id']}", headers=team.h(team.who_can(task["candidate_groups"]).name)
    )
    records = {f["id"]: f["sets_fact"] for f in seen.json()["form"]["fields"]}
    assert records["minor"] == "minor" and records["nationality"] is None
    case = await team.client.get(f"/v1/cases/{view['case_id']}", headers=team.h("coord.svet"))
    assert case.json()["protocol"]["version"] == "1.1.0"
    assert case.json()["facts"]["minor"] is True
    timeline = await team.client.get(
        f"/v1/cases/{view['case_id']}/timeline", headers=team.h("coord.svet")
    )
    facts_recorded = [e for e in timeline.json()["items"] if e["action"] == "fact.changed"]
    assert [e["step_id"] for e in facts_recorded] == ["identification"]


async def test_the_inbox_shows_each_group_its_tasks_only(team: Team) -> None:
    opened = await open_case(team, "coord.svet", GT_ADULT)
    detection = opened["open_tasks"][0]["task_id"]
    for name, sees in [("ts.pgn", True), ("agente.pnc", True), ("psi.svet", False)]:
        r = await team.client.get("/v1/tasks", headers=team.h(name))
        assert (detection in [t["task_id"] for t in r.json()["items"]]) is sees, name
    r = await team.client.get(f"/v1/tasks/{detection}", headers=team.h("psi.svet"))
    assert r.status_code == 404
    gz = await team.client.get("/v1/tasks", headers=team.h("ts.pgn", **{"Accept-Encoding": "gzip"}))
    assert gz.headers["content-encoding"] == "gzip"
    r = await team.client.get(f"/v1/tasks/{detection}", headers=team.h("ts.pgn"))
    assert r.status_code == 200
    assert r.json()["form"]["fields"][0]["label"]
    en = await team.client.get(
        f"/v1/tasks/{detection}", headers=team.h("ts.pgn", **{"Accept-Language": "en"})
    )
    assert en.json()["title"] == "Detection of a possible victim"


async def test_a_retry_with_the_same_idempotency_key_changes_nothing_twice(team: Team) -> None:
    headers = team.idem("coord.svet")
    body = {"protocol_id": "gt-eri", "facts": GT_ADULT, "intake": {}}
    first = await team.client.post("/v1/cases", json=body, headers=headers)
    again = await team.client.post("/v1/cases", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = await team.client.post(
        "/v1/cases", json={**body, "facts": {"minor": True}}, headers=headers
    )
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")
    entries = await ledger.entries(team.services.sessions, case_id=first.json()["case_id"])
    assert [e.action for e in entries].count(Action.CASE_OPENED) == 1
    missing = await team.client.post("/v1/cases", json=body, headers=team.h("coord.svet"))
    assert missing.status_code == 428

    task_id = first.json()["open_tasks"][0]["task_id"]
    claim_headers = team.idem("ts.pgn")
    first_claim = await team.client.post(f"/v1/tasks/{task_id}/claim", headers=claim_headers)
    retry = await team.client.post(f"/v1/tasks/{task_id}/claim", headers=claim_headers)
    assert first_claim.status_code == retry.status_code == 200
    assert retry.json() == first_claim.json()
    entries = await ledger.entries(team.services.sessions, case_id=first.json()["case_id"])
    assert [e.action for e in entries].count(Action.TASK_CLAIMED) == 1


async def test_two_people_claim_at_once_and_exactly_one_wins(team: Team) -> None:
    opened = await open_case(team, "coord.svet", GT_ADULT)
    task_id = opened["open_tasks"][0]["task_id"]
    results = await asyncio.gather(
        team.client.post(f"/v1/tasks/{task_id}/claim", headers=team.idem("ts.pgn")),
        team.client.post(f"/v1/tasks/{task_id}/claim", headers=team.idem("agente.pnc")),
    )
    assert sorted(r.status_code for r in results) == [200, 409]
    loser = next(r for r in results if r.status_code == 409)
    assert loser.json()["type"].endswith("/claimed-by-other")
    winner = next(r for r in results if r.status_code == 200)
    task = await team.client.get(f"/v1/tasks/{task_id}", headers=team.h("coord.svet"))
    assert task.json()["assignee"] == winner.json()["task"]["assignee"]


async def test_a_stale_write_is_refused_with_412(team: Team) -> None:
    opened = await open_case(team, "coord.svet", GT_ADULT)
    task_id = opened["open_tasks"][0]["task_id"]
    seen = await team.client.get(f"/v1/tasks/{task_id}", headers=team.h("ts.pgn"))
    stale_tag = seen.headers["etag"]
    claimed = await team.client.post(
        f"/v1/tasks/{task_id}/claim", headers=team.idem("ts.pgn", **{"If-Match": stale_tag})
    )
    assert claimed.status_code == 200
    assert claimed.headers["etag"] != stale_tag
    stale = await team.client.post(
        f"/v1/tasks/{task_id}/complete",
        json={"form": form_for(seen.json()["form"])},
        headers=team.idem("ts.pgn", **{"If-Match": stale_tag}),
    )
    assert stale.status_code == 412
    assert stale.json()["type"].endswith("/stale-task")
    fresh = await team.client.post(
        f"/v1/tasks/{task_id}/complete",
        json={"form": form_for(seen.json()["form"])},
        headers=team.idem("ts.pgn", **{"If-Match": claimed.headers["etag"]}),
    )
    assert fresh.status_code == 200, fresh.text


async def test_a_bad_form_is_refused_naming_each_field_and_never_echoing_values(
    team: Team,
) -> None:
    opened = await open_case(team, "coord.svet", GT_ADULT)
    task_id = opened["open_tasks"][0]["task_id"]
    secret = "Nombre Planteado Quetzal"
    r = await team.client.post(
        f"/v1/tasks/{task_id}/complete",
        json={"form": {"unexpected field": secret, "also_unknown": secret}},
        headers=team.idem("ts.pgn"),
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["type"].endswith("/form-invalid")
    fields = {e["field"]: e["code"] for e in body["errors"]}
    assert fields["also_unknown"] == "unknown_field"
    assert fields["_invalid_name"] == "unknown_field"
    assert any(code == "required" for code in fields.values())
    assert secret not in r.text and "unexpected field" not in r.text
