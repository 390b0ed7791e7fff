"""The leak canary: planted identifiers must appear nowhere outside the vault's ciphertext.

One synthetic person's data goes through the real worker, codec and Temporal dev server
(workflow input, an update and its result, an activity input and result, an activity failure and
a workflow failure), into vault rows, into log calls and into bad API requests. Then the scanner
looks for every planted value, in every encoding, in the Temporal SQLite file and its WAL, in
ERI's database (SQLite and PostgreSQL), in every captured log line, in every API error body, in
workflow ids and in search attributes. It must find nothing. The control run does the same with
the codec switched off and must find the values in Temporal's file: the scan sees what it seeks.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import httpx
import pytest
import structlog
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from eri.auth import Role, mint
from eri.canary import Finding, LeakScanner
from eri.crypto.keys import Keyring
from eri.crypto.sql_store import SqlDataKeyStore
from eri.db import create_engine, session_factory
from eri.logging import configure_logging, get_logger
from eri.settings import Settings
from eri.vault import Vault
from tests.support.canary_workflow import CanaryWorkflow, canary_echo, canary_fail


def planted_person() -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {
        "name": f"Ximena Quetzal-Canarió {tag}",
        "passport": f"XQ{tag.upper()}C",
        "phone": f"+502 5550 {tag[:4]} {tag[4:]}",
        "birth_date": f"1931-07-19/{tag}",
        "statement": f"Me llevaron a la finca cerca del río {tag} y no me dejaban salir.",
    }


async def run_case(client: Client, person: dict[str, str]) -> str:
    """Drive one case workflow through every payload path; return its (case) workflow id."""
    case_id = "case_canary" + uuid.uuid4().hex[:12]
    queue = "q-" + uuid.uuid4().hex
    async with Worker(
        client, task_queue=queue, workflows=[CanaryWorkflow], activities=[canary_echo, canary_fail]
    ):
        handle = await client.start_workflow(
            CanaryWorkflow.run, person, id=case_id, task_queue=queue
        )
        assert (
            await handle.execute_update(CanaryWorkflow.add_note, person["phone"])
            == f"noted: {person['phone']}"
        )
        assert person["birth_date"] not in await handle.query(CanaryWorkflow.notes)
        await handle.signal(CanaryWorkflow.finish)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    return case_id


def temporal_files(session_tmp: Path) -> Path:
    return session_tmp / "temporal.db"


async def test_no_planted_value_leaks_anywhere(
    temporal_env: WorkflowEnvironment,
    keyring: Keyring,
    session_tmp: Path,
    database_url: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    person = planted_person()
    scanner = LeakScanner(person)
    configure_logging(Settings(log_format="json"), component="canary")

    # 1. Temporal: every payload path, through the real worker and codec
    case_id = await run_case(temporal_env.client, person)

    # 2. Vault rows in ERI's database (this backend), under the same keyring's keys
    engine = create_engine(database_url)
    try:
        vault = Vault(
            Keyring(SqlDataKeyStore(engine, session_factory(engine)), keyring.kek),
            session_factory(engine),
        )
        await vault.put(case_id, "intake", person)
        await vault.put(case_id, "statement", person["statement"])
        assert (await vault.get(case_id, "intake"))["name"] == person["name"]
    finally:
        await engine.dispose()

    # 3. Log calls that carelessly pass victim data, and a logged exception holding it
    log = get_logger("canary")
    log.info("intake_received", case_id=case_id, name=person["name"], passport=person["passport"])
    try:
        raise ValueError(f"bad phone {person['phone']}")
    except ValueError:
        log.exception("intake_failed", case_id=case_id)
    logging.getLogger("thirdparty").warning("rejected %s", person["statement"])
    structlog.contextvars.clear_contextvars()

    # 4. API error bodies for requests carrying the planted values
    settings = Settings(
        data_dir=tmp_path,
        keys_dir=session_tmp,
        database_url=f"sqlite+aiosqlite:///{session_tmp / 'keys.db'}",
        temporal_address=temporal_env.client.service_client.config.target_host,
    )
    app = create_app(settings)
    bodies: list[str] = []
    token = mint(settings, "usr_coord0001", Role.COORDINATOR, "SVET")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        auth = {"Authorization": f"Bearer {token}"}
        for value in person.values():
            requests = [
                lambda v=value: http.post(
                    "/codec/decode",
                    content=f'{{"payloads": "{v}"',
                    headers={**auth, "content-type": "application/json"},
                ),
                # not an encrypted payload: passed through, as Temporal codec servers do
                lambda v=value: http.post(
                    "/codec/decode", json={"payloads": [{"data": v}]}, headers=auth
                ),
                lambda v=value: http.post(
                    "/codec/encode", json={}, headers={"Authorization": f"Bearer {v}".encode()}
                ),
                lambda v=value: http.get(f"/no-such/{v}"),
            ]
            for send in requests:
                response = await send()
                assert response.status_code < 500, response.text
                bodies.append(response.text)

    # 5. Scan everything
    findings: list[Finding] = []
    findings += scanner.scan_sqlite_files(temporal_files(session_tmp))
    findings += await scanner.scan_database(database_url)
    if database_url.startswith("sqlite"):
        findings += scanner.scan_sqlite_files(Path(database_url.split("///", 1)[1]))
    findings += scanner.scan_sqlite_files(session_tmp / "keys.db")
    captured = capfd.readouterr()
    findings += scanner.scan_text(captured.out + captured.err, "captured output")
    findings += scanner.scan_texts(bodies, "api bodies")
    description = await temporal_env.client.get_workflow_handle(case_id).describe()
    findings += scanner.scan_text(
        description.id + repr(description.typed_search_attributes) + repr(description.memo),
        "workflow id and search attributes",
    )
    async for wf in temporal_env.client.list_workflows(f"WorkflowId = '{case_id}'"):
        findings += scanner.scan_text(wf.id + repr(wf.typed_search_attributes), "visibility")
    assert "intake_received" in captured.err  # the log lines were captured
    assert findings == []


async def test_control_with_the_codec_off_finds_the_planted_values(
    temporal_env: WorkflowEnvironment, session_tmp: Path
) -> None:
    person = planted_person()
    plain = await Client.connect(
        temporal_env.client.service_client.config.target_host, namespace="eri"
    )
    await run_case(plain, person)
    found = {f.label for f in LeakScanner(person).scan_sqlite_files(temporal_files(session_tmp))}
    assert {"name", "passport", "phone", "statement"} <= found
