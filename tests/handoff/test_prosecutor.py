"""End to end on the real dev server and database: a case handed to a prosecutor's office,
downloaded, verified, opened and acknowledged; consent refused first; only the addressed
office sees it; every custody event in the ledger."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from eri import ledger
from eri.auth import Role, mint
from eri.handoff import service
from eri.handoff.keys import (
    InstitutionPrivateKey,
    RecipientPrivateKey,
    institution_key_from_settings,
)
from eri.handoff.notices import make_ack
from eri.handoff.package import open_package, verify_package
from eri.runtime import Runtime
from eri.settings import Settings
from eri.vault import Vault
from tests.handoff.support import open_gt_case, serving, set_fact
from workflows.handoff import HandoffWorkflow, handoff_workflow_id

PHOTO = b"\xff\xd8synthetic-jpeg" + bytes(range(256)) * 8
STATEMENT = "Declaración sintética: persona ficticia de prueba."


@dataclass
class Api:
    http: httpx.AsyncClient
    settings: Settings

    def auth(self, role: Role, institution: str, subject: str = "usr_test0001") -> dict[str, str]:
        return {
            "Authorization": "Bearer " + mint(self.settings, subject, role, institution),
            "Accept-Language": "en",
        }


@pytest.fixture
async def api(
    temporal_env: WorkflowEnvironment, runtime: Runtime, tmp_path: Path
) -> AsyncIterator[tuple[Api, str]]:
    async with serving(temporal_env.client, runtime) as served:
        yield Api(served.http, served.settings), served.queue


async def _wait_inbox(api: Api, headers: dict[str, str], count: int) -> list[dict[str, object]]:
    for _ in range(200):
        r = await api.http.get("/v1/handoffs/inbox", headers=headers)
        assert r.status_code == 200, r.text
        items: list[dict[str, object]] = r.json()["items"]
        if len(items) >= count:
            return items
        await asyncio.sleep(0.05)
    raise AssertionError("the package never reached the inbox")


async def test_case_to_prosecutor_verified_opened_acknowledged(
    temporal_env: WorkflowEnvironment, runtime: Runtime, api: tuple[Api, str]
) -> None:
    client, (http, queue) = temporal_env.client, api
    mp_open, mp_sign = RecipientPrivateKey.generate(), InstitutionPrivateKey.generate()
    await service.register_party(runtime.sessions, mp_open.public(), "MP-FETP")
    await service.register_party(runtime.sessions, mp_sign.public(), "MP-FETP")

    case_id = await open_gt_case(client, queue, {"minor": False, "foreign_national": False})
    await Vault(runtime.keyring, runtime.sessions).put(case_id, "statement.victim", STATEMENT)
    coord = http.auth(Role.COORDINATOR, "SVET", "usr_coord001")
    r = await http.http.post(
        f"/v1/cases/{case_id}/evidence",
        content=PHOTO,
        headers={**coord, "Content-Type": "image/jpeg", "X-Evidence-Name": "foto.jpg"},
    )
    assert r.status_code == 201, r.text
    evidence = r.json()
    assert evidence["sha256"] == hashlib.sha256(PHOTO).hexdigest()
    r = await http.http.post(
        f"/v1/cases/{case_id}/evidence",
        content=PHOTO,
        headers=http.auth(Role.PROSECUTOR, "MP") | {"Content-Type": "image/jpeg"},
    )
    assert r.status_code == 403
    r = await http.http.post(f"/v1/cases/{case_id}/evidence", content=PHOTO, headers=coord)
    assert r.status_code == 415 and "Content-Type" in r.json()["detail"]
    r = await http.http.post(
        "/v1/cases/case_doesnotexist0001/evidence",
        content=PHOTO,
        headers=coord | {"Content-Type": "image/jpeg"},
    )
    assert r.status_code == 404

    body = {
        "recipient_institution": "MP-FETP",
        "purpose": "prosecution",
        "statements": ["statement.victim"],
        "ack_within_hours": 48,
    }
    # No consent recorded: refused with the reason, nothing delivered.
    r = await http.http.post(f"/v1/cases/{case_id}/handoffs", json=body, headers=coord)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "consent_missing" and "not consented" in r.json()["detail"]
    # court order without its reference: refused too
    r = await http.http.post(
        f"/v1/cases/{case_id}/handoffs", json=body | {"legal_basis": "court_order"}, headers=coord
    )
    assert r.status_code == 422 and r.json()["code"] == "reference_missing"

    await set_fact(client, case_id, "consent", "given")
    once = coord | {"Idempotency-Key": "start-handoff-0001"}
    r = await http.http.post(f"/v1/cases/{case_id}/handoffs", json=body, headers=once)
    assert r.status_code == 202, r.text
    handoff_id = r.json()["handoff_id"]
    assert r.json()["basis"] == "consent"
    # a client retrying after a lost answer gets the same handoff, and nothing starts twice
    r = await http.http.post(f"/v1/cases/{case_id}/handoffs", json=body, headers=once)
    assert r.status_code == 202 and r.json()["handoff_id"] == handoff_id
    assert r.headers["Idempotent-Replayed"] == "true"

    prosecutor = http.auth(Role.PROSECUTOR, "MP-FETP", "usr_fisc0001")
    (item,) = await _wait_inbox(http, prosecutor, 1)
    assert item["handoff_id"] == handoff_id and item["status"] == "delivered"
    # Another prosecutor's office sees nothing and cannot download it.
    other = http.auth(Role.PROSECUTOR, "MP-OTHER", "usr_fisc0002")
    r = await http.http.get("/v1/handoffs/inbox", headers=other)
    assert r.json()["items"] == []
    r = await http.http.get(f"/v1/handoffs/inbox/{handoff_id}/package", headers=other)
    assert r.status_code == 404
    r = await http.http.get(f"/v1/handoffs/inbox/{handoff_id}/package", headers=coord)
    assert r.status_code == 404  # a coordinator of SVET is not the addressee either

    r = await http.http.get(f"/v1/handoffs/inbox/{handoff_id}/package", headers=prosecutor)
    assert r.status_code == 200
    package = r.content
    sender = institution_key_from_settings(http.settings).public()
    opened = open_package(package, mp_open, trusted=[sender])
    assert opened.json("facts")["consent"] == "given"
    assert opened.json("statements") == {"statement.victim": STATEMENT}
    assert opened.parts[f"evidence/{evidence['evidence_id']}"] == PHOTO
    (custody,) = opened.json("custody")
    assert custody["sha256"] == evidence["sha256"]
    assert opened.manifest["case"]["pseudonym"] == service.pseudonym(case_id, "MP-FETP")
    assert case_id.encode() not in package  # the internal case id is not shared
    timeline = opened.json("timeline")
    assert timeline[0]["action"] == "case.opened"

    # A forged ack (signed by a key not registered for MP-FETP) is refused.
    forged = make_ack(verify_package(package), InstitutionPrivateKey.generate(), "MP-FETP")
    r = await http.http.post(
        f"/v1/handoffs/inbox/{handoff_id}/ack", content=forged, headers=prosecutor
    )
    assert r.status_code == 422 and r.json()["code"] == "bad_notice"
    ack = make_ack(verify_package(package, [sender]), mp_sign, "MP-FETP")
    r = await http.http.post(
        f"/v1/handoffs/inbox/{handoff_id}/ack", content=ack, headers=prosecutor
    )
    assert r.status_code == 200, r.text
    handle = client.get_workflow_handle_for(
        HandoffWorkflow.run, handoff_workflow_id(case_id, handoff_id)
    )
    result = await handle.result()
    assert (result.status, result.basis, result.escalations) == ("acknowledged", "consent", 0)
    r = await http.http.post(
        f"/v1/handoffs/inbox/{handoff_id}/ack", content=ack, headers=prosecutor
    )
    assert r.status_code == 409
    r = await http.http.get(f"/v1/cases/{case_id}/handoffs/{handoff_id}", headers=coord)
    assert r.json()["status"] == "acknowledged"

    steps = [
        e.step_id
        for e in await ledger.entries(runtime.sessions, case_id=case_id)
        if e.action == "handoff.custody"
    ]
    assert steps == [
        "evidence.received",
        "handoff.refused:consent_missing",
        "handoff.refused:reference_missing",
        "handoff.created:consent",
        "handoff.sealed",
        "handoff.delivered",
        "handoff.downloaded",
        "handoff.acknowledged",
    ]


async def test_recall_of_an_unopened_package(
    temporal_env: WorkflowEnvironment, runtime: Runtime, api: tuple[Api, str]
) -> None:
    client, (http, queue) = temporal_env.client, api
    await service.register_party(runtime.sessions, RecipientPrivateKey.generate().public(), "MP-R")
    case_id = await open_gt_case(client, queue, {"minor": True})
    coord = http.auth(Role.COORDINATOR, "SVET", "usr_coord001")
    body = {"recipient_institution": "MP-R", "purpose": "prosecution"}
    # a minor without recorded consent: the child-protection basis allows it, and is recorded
    r = await http.http.post(
        f"/v1/cases/{case_id}/handoffs",
        json=body | {"legal_basis": "child_protection"},
        headers=coord,
    )
    assert r.status_code == 202, r.text
    handoff_id = r.json()["handoff_id"]
    prosecutor = http.auth(Role.PROSECUTOR, "MP-R", "usr_fisc0003")
    await _wait_inbox(http, prosecutor, 1)
    responder = http.auth(Role.RESPONDER, "SVET", "usr_resp0009")
    url = f"/v1/cases/{case_id}/handoffs/{handoff_id}/recall"
    assert (await http.http.post(url, headers=responder)).status_code == 403
    r = await http.http.post(url, headers=coord)
    assert r.status_code == 200, r.text
    r = await http.http.get(f"/v1/handoffs/inbox/{handoff_id}/package", headers=prosecutor)
    assert r.status_code == 410 and "recalled" in r.json()["detail"]
    handle = client.get_workflow_handle_for(
        HandoffWorkflow.run, handoff_workflow_id(case_id, handoff_id)
    )
    assert (await handle.result()).status == "recalled"
    r = await http.http.post(url, headers=coord)
    assert r.status_code == 409 and r.json()["code"] == "not_recallable"
    steps = [
        e.step_id
        for e in await ledger.entries(runtime.sessions, case_id=case_id)
        if e.action == "handoff.custody"
    ]
    assert steps == [
        "handoff.created:child_protection",
        "handoff.sealed",
        "handoff.delivered",
        "handoff.recalled",
    ]


async def test_prosecutor_rejects_with_a_reason(
    temporal_env: WorkflowEnvironment, runtime: Runtime, api: tuple[Api, str]
) -> None:
    client, (http, queue) = temporal_env.client, api
    await service.register_party(runtime.sessions, RecipientPrivateKey.generate().public(), "MP-X")
    case_id = await open_gt_case(client, queue, {"minor": False, "consent": "given"})
    coord = http.auth(Role.COORDINATOR, "SVET", "usr_coord001")
    r = await http.http.post(
        f"/v1/cases/{case_id}/handoffs",
        json={"recipient_institution": "MP-X", "purpose": "prosecution"},
        headers=coord,
    )
    assert r.status_code == 202, r.text
    handoff_id = r.json()["handoff_id"]
    prosecutor = http.auth(Role.PROSECUTOR, "MP-X", "usr_fisc0004")
    await _wait_inbox(http, prosecutor, 1)
    url = f"/v1/handoffs/inbox/{handoff_id}/reject"
    r = await http.http.post(url, json={"reason": "Nombre Apellido"}, headers=prosecutor)
    assert r.status_code == 422 and "Nombre" not in r.text
    r = await http.http.post(url, json={"reason": "wrong_jurisdiction"}, headers=prosecutor)
    assert r.status_code == 200, r.text
    handle = client.get_workflow_handle_for(
        HandoffWorkflow.run, handoff_workflow_id(case_id, handoff_id)
    )
    result = await handle.result()
    assert (result.status, result.reason) == ("rejected", "wrong_jurisdiction")
    r = await http.http.post(url, json={"reason": "again"}, headers=prosecutor)
    assert r.status_code == 409
    entries = [
        e
        for e in await ledger.entries(runtime.sessions, case_id=case_id)
        if e.step_id == "handoff.rejected"
    ]
    assert [e.outcome for e in entries] == ["rejected"]
