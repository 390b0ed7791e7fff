"""The committee API on both databases: roles, entries, proofs, checkpoints, reports, access
history, and no victim data through any of it."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from api import casework
from api.routes import audit as audit_routes
from eri import ledger
from eri.audit import log, merkle, note
from eri.auth import Role, mint
from eri.canary import LeakScanner
from eri.db.models import CaseRow
from eri.ledger import Action, Outcome, Record
from eri.settings import Settings
from eri.vault import Vault
from protocols.lock import content_hash
from tests.audit.conftest import T0, WITNESS, Api, audit_api

K = 11
CASE = "case_apiaudit0001"
PLANTED = {
    "name": "Ximena Quetzal-Auditoría",
    "passport": "XQ5512098A",
    "statement": "Relato sintético para la auditoría del comité.",
}


@pytest.fixture
async def api(database_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with audit_api(database_url, tmp_path, K) as a:
        yield a


def bearer(settings: Settings, role: Role, institution: str = "CIT") -> dict[str, str]:
    token = mint(settings, f"usr_{role.value[:4]}0042", role, institution)
    return {"Authorization": f"Bearer {token}"}


async def _record(api: Api, key: str, action: Action, **fields: object) -> None:
    await ledger.append(api.services.sessions, Record(idempotency_key=key, action=action, **fields))  # type: ignore[arg-type]


async def _seed(api: Api) -> None:
    """A case with victim data in the vault; tasks completed by two institutions: SVET k-1,
    PGN k, MP 1 (so SVET and MP hide each other and PGN stays shown)."""
    await Vault(api.services.keyring, api.services.sessions).put(CASE, "intake", PLANTED)
    gt = casework.protocol("gt-eri")
    async with api.services.sessions.begin() as session:
        session.add(
            CaseRow(
                case_id=CASE,
                protocol_id=gt.id,
                protocol_version=gt.version,
                protocol_hash=content_hash(gt),
                country="GT",
                status="open",
                opened_at=T0,
                opened_by_institution="svet",
                revision=1,
            )
        )
    n = 0
    for institution, count in (("SVET", K - 1), ("PGN", K), ("MP", 1)):
        for c in range(count):
            case = f"case_api{institution.lower()}{c:03d}"
            at = T0 + timedelta(hours=n)
            common = {"case_id": case, "protocol_id": "gt-eri", "protocol_version": "1.0.0"}
            await _record(
                api,
                f"{case}:1",
                Action.CASE_OPENED,
                recorded_at=at,
                actor_id="usr_open0001",
                actor_institution=institution,
                **common,
            )
            await _record(
                api, f"{case}:2", Action.TASK_OPENED, recorded_at=at, step_id="activation", **common
            )
            await _record(
                api,
                f"{case}:3",
                Action.TASK_COMPLETED,
                recorded_at=at + timedelta(hours=2),
                step_id="activation",
                actor_id="usr_done0001",
                actor_role="coordinator",
                actor_institution=institution,
                deadline_status="on_time",
                **common,
            )
            n += 1
    await _record(
        api,
        "test:view:0001",
        Action.CASE_VIEWED,
        case_id=CASE,
        actor_id="usr_coor0001",
        actor_role="coordinator",
        actor_institution="SVET",
        recorded_at=T0,
    )
    await _record(
        api,
        "test:decode:0001",
        Action.PAYLOAD_DECODED,
        case_id=CASE,
        actor_id="usr_coor0001",
        actor_role="coordinator",
        actor_institution="SVET",
        recorded_at=T0,
    )
    await _record(
        api,
        "test:deny:0001",
        Action.ACCESS_DENIED,
        outcome=Outcome.DENIED,
        case_id=CASE,
        step_id="codec.decode",
        actor_id="usr_resp0001",
        actor_role="responder",
        actor_institution="PNC",
        recorded_at=T0,
    )
    await _record(
        api,
        "test:task:0001",
        Action.TASK_OPENED,
        case_id=CASE,
        step_id="activation",
        protocol_id="gt-eri",
        recorded_at=T0,
    )


PERIOD = {"from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}


async def test_roles_unauthenticated_and_denials_are_recorded(api: Api) -> None:
    assert (await api.client.get("/audit/checkpoint")).status_code == 401
    for role in (Role.RESPONDER, Role.PROSECUTOR, Role.COORDINATOR):
        r = await api.client.get(
            "/audit/entries", params=PERIOD, headers=bearer(api.settings, role)
        )
        assert r.status_code == 403, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    denials = [
        e for e in await ledger.entries(api.services.sessions) if e.action == Action.ACCESS_DENIED
    ]
    assert [(e.step_id, e.actor_role) for e in denials] == [
        ("audit.entries", "responder"),
        ("audit.entries", "prosecutor"),
        ("audit.entries", "coordinator"),
    ]
    r = await api.client.get(
        f"/audit/cases/{CASE}/access", headers=bearer(api.settings, Role.COMMITTEE)
    )
    assert r.status_code == 403
    (denied,) = await ledger.entries(api.services.sessions, case_id=CASE)
    assert (denied.action, denied.step_id) == (Action.ACCESS_DENIED, "audit.access")
    bad = await api.client.get(
        "/audit/entries",
        params={"from": "2026-04-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
        headers=bearer(api.settings, Role.COMMITTEE),
    )
    assert bad.status_code == 400
    assert "period" in bad.json()["detail"].lower()


async def test_entries_proofs_checkpoint_and_cosignature(api: Api) -> None:
    await _seed(api)
    committee = bearer(api.settings, Role.COMMITTEE)
    signed, _ = await log.checkpoint(api.services.sessions, api.settings)
    r = await api.client.get("/audit/entries", params={"case": CASE}, headers=committee)
    assert r.status_code == 200
    got = r.json()["entries"]
    assert [e["action"] for e in got] == [
        "case.viewed",
        "payload.decoded",
        "access.denied",
        "task.opened",
    ]
    r = await api.client.get(
        "/audit/entries", params={**PERIOD, "limit": 5, "after": 10}, headers=committee
    )
    assert [e["seq"] for e in r.json()["entries"]] == [11, 12, 13, 14, 15]

    checkpoint = note.Note.parse(
        (await api.client.get("/audit/checkpoint", headers=committee)).text
    )
    body = note.Checkpoint.parse_body(checkpoint.text)
    note.verify(checkpoint, log.log_verifier_key(api.settings))
    assert body.size == signed.size
    entry = got[0]
    proof = (
        await api.client.get(
            "/audit/proofs/inclusion", params={"index": entry["seq"]}, headers=committee
        )
    ).json()
    hashes = [base64.b64decode(h) for h in proof["proof"]]
    assert merkle.verify_inclusion(
        entry["seq"], body.size, bytes.fromhex(entry["leaf_hash"]), hashes, body.root
    )
    consistency = (
        await api.client.get("/audit/proofs/consistency", params={"first": 7}, headers=committee)
    ).json()
    assert merkle.verify_consistency(
        7,
        body.size,
        base64.b64decode(consistency["first_root_hash"]),
        body.root,
        [base64.b64decode(h) for h in consistency["proof"]],
    )
    too_far = await api.client.get(
        "/audit/proofs/inclusion", params={"index": 10_000}, headers=committee
    )
    assert too_far.status_code == 400

    cosigned = checkpoint.with_signature(note.cosign(checkpoint, WITNESS, 1_780_000_000)).render()
    r = await api.client.post("/audit/checkpoint/cosignatures", content=cosigned, headers=committee)
    assert r.status_code == 201 and r.json() == {"stored": ["cit.gt/comite-1"]}
    served = note.Note.parse((await api.client.get("/audit/checkpoint", headers=committee)).text)
    note.verify(served, WITNESS.verifier)
    junk = await api.client.post(
        "/audit/checkpoint/cosignatures", content="hola\n", headers=committee
    )
    assert junk.status_code == 422


async def test_compliance_report_suppresses_k_minus_1_and_shows_k(api: Api) -> None:
    await _seed(api)
    committee = bearer(api.settings, Role.COMMITTEE)
    result = (
        await api.client.get("/audit/reports/compliance", params=PERIOD, headers=committee)
    ).json()
    cells = {
        (r["step_id"], r["institution"]): r for r in result["tasks"] if r["protocol_id"] == "gt-eri"
    }
    assert cells[("activation", "SVET")]["tasks_completed"] is None
    assert cells[("activation", "MP")]["tasks_completed"] is None
    assert cells[("activation", "PGN")]["tasks_completed"] == K
    assert cells[("activation", "PGN")]["median_hours"] == 2.0
    assert cells[("activation", "PGN")]["within_deadline_share"] == 1.0
    assert cells[("activation", "*")]["tasks_completed"] == 2 * K
    csv_text = (
        await api.client.get(
            "/audit/reports/compliance", params={**PERIOD, "format": "csv"}, headers=committee
        )
    ).text
    assert "gt-eri,activation,PGN,,11," in csv_text
    svg = await api.client.get("/audit/reports/compliance.svg", params=PERIOD, headers=committee)
    assert (
        svg.headers["content-type"] == "image/svg+xml" and "<svg" in svg.text and "PGN" in svg.text
    )


async def test_access_history_for_coordinators(api: Api) -> None:
    await _seed(api)
    r = await api.client.get(
        f"/audit/cases/{CASE}/access", headers=bearer(api.settings, Role.COORDINATOR, "SVET")
    )
    assert r.status_code == 200
    assert [(a["action"], a["actor_id"]) for a in r.json()["accesses"]] == [
        ("case.viewed", "usr_coor0001"),
        ("payload.decoded", "usr_coor0001"),
        ("access.denied", "usr_resp0001"),
    ]
    # A coordinator of another commission (Honduras) gets 404, recorded as a denial.
    other = await api.client.get(
        f"/audit/cases/{CASE}/access", headers=bearer(api.settings, Role.COORDINATOR, "SENAF")
    )
    assert other.status_code == 404
    assert (
        await api.client.get(
            "/audit/cases/not-a-case/access", headers=bearer(api.settings, Role.COORDINATOR)
        )
    ).status_code == 422


async def test_no_victim_identifier_is_reachable_through_any_committee_route(api: Api) -> None:
    await _seed(api)
    await log.checkpoint(api.services.sessions, api.settings)
    scanner = LeakScanner(PLANTED)
    calls = {
        "/audit/entries": [{"case": CASE}, PERIOD],
        "/audit/proofs/inclusion": [{"index": 0}],
        "/audit/proofs/consistency": [{"first": 1}],
        "/audit/checkpoint": [{}],
        "/audit/checkpoint/cosignatures": [{}],
        "/audit/reports/compliance": [PERIOD, {**PERIOD, "format": "csv"}],
        "/audit/reports/compliance.svg": [PERIOD],
        "/audit/cases/{case_id}/access": [{}],
    }
    routes = {r.path for r in audit_routes.router.routes if isinstance(r, APIRoute)}
    assert routes == set(calls), "a new committee route must be added to this test"
    bodies = 0
    for role in (Role.COMMITTEE, Role.ADMIN, Role.COORDINATOR):
        for path, variants in calls.items():
            for params in variants:
                url = path.replace("{case_id}", CASE)
                if path.endswith("cosignatures"):
                    r = await api.client.post(
                        url, content="x\n", headers=bearer(api.settings, role)
                    )
                else:
                    r = await api.client.get(url, params=params, headers=bearer(api.settings, role))
                assert r.status_code < 500
                assert scanner.scan_bytes(r.content, f"{role} {url}") == []
                bodies += 1
    assert bodies == 3 * 10
    # The scan can fail: the planted values are in the system (encrypted), and the scanner
    # finds them in any plaintext body.
    vault = Vault(api.services.keyring, api.services.sessions)
    assert await vault.get(CASE, "intake") == PLANTED
    assert scanner.scan_bytes(json.dumps({"x": PLANTED}).encode(), "control")
