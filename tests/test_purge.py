"""Crypto-shredding: a purged case's history, vault rows and API data become unreadable at once;
other cases are untouched; a shred receipt is in the ledger."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.converter import WorkflowSerializationContext
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from eri import ledger
from eri.crypto.errors import KeyShreddedError
from eri.crypto.keys import case_key_id
from eri.ledger import Action
from eri.runtime import Runtime
from eri.vault import Vault
from tests.conftest import worker_on_new_queue
from tests.support.canary_workflow import CanaryWorkflow, canary_echo, canary_fail
from workflows.purge import PurgeRequest, PurgeWorkflow, ShredReceipt, purge_workflow_id

INTAKE = {"name": "Persona Sintética Uno", "passport": "SYN0000001", "statement": "Relato."}


def _order(case_id: str, **overrides: Any) -> PurgeRequest:
    fields: dict[str, Any] = {
        "case_id": case_id,
        "reason": "lawful_order",
        "authorized_by": "usr_coord0001",
        "authorized_role": "coordinator",
        "authorized_institution": "SVET",
        "order_ref": "ORD-2026-0042",
    }
    return PurgeRequest(**(fields | overrides))


async def _run_case(client: Client, case_id: str) -> None:
    queue = "q-" + uuid.uuid4().hex
    async with Worker(
        client, task_queue=queue, workflows=[CanaryWorkflow], activities=[canary_echo, canary_fail]
    ):
        handle = await client.start_workflow(
            CanaryWorkflow.run, INTAKE, id=case_id, task_queue=queue
        )
        await handle.signal(CanaryWorkflow.finish)
        with pytest.raises(WorkflowFailureError):
            await handle.result()


async def _decode_input(client: Client, case_id: str) -> object:
    history = await client.get_workflow_handle(case_id).fetch_history()
    started = next(
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    )
    payloads = started.workflow_execution_started_event_attributes.input.payloads
    context = WorkflowSerializationContext(namespace="eri", workflow_id=case_id)
    (value,) = await client.data_converter.with_context(context).decode(payloads, [dict])
    return value


async def test_a_lawful_order_shreds_one_case_and_leaves_a_receipt(
    temporal_env: WorkflowEnvironment, runtime: Runtime
) -> None:
    client = temporal_env.client
    doomed, kept = "case_purge" + uuid.uuid4().hex[:12], "case_keep" + uuid.uuid4().hex[:12]
    vault = Vault(runtime.keyring, runtime.sessions)
    for case_id in (doomed, kept):
        await _run_case(client, case_id)
        await vault.put(case_id, "intake", INTAKE)
    assert await _decode_input(client, doomed) == INTAKE

    worker, queue = worker_on_new_queue(client, runtime)
    async with worker:
        receipt = await client.execute_workflow(
            PurgeWorkflow.run, _order(doomed), id=purge_workflow_id(doomed), task_queue=queue
        )
    assert isinstance(receipt, ShredReceipt)
    assert (receipt.case_id, receipt.key_id) == (doomed, case_key_id(doomed))

    # the history still exists, but cannot be decoded; the vault refuses; the other case is intact
    assert (await client.get_workflow_handle(doomed).describe()).id == doomed
    with pytest.raises(KeyShreddedError):
        await _decode_input(client, doomed)
    with pytest.raises(KeyShreddedError):
        await vault.get(doomed, "intake")
    assert await _decode_input(client, kept) == INTAKE
    assert await vault.get(kept, "intake") == INTAKE

    (entry,) = [
        e
        for e in await ledger.entries(runtime.sessions, case_id=doomed)
        if e.action == Action.CASE_SHREDDED
    ]
    assert (entry.actor_id, entry.actor_role, entry.step_id, entry.seq) == (
        "usr_coord0001",
        "coordinator",
        "lawful_order",
        receipt.ledger_seq,
    )
    assert entry.detail_hash == ledger.detail_hash(
        {"key_id": case_key_id(doomed), "order_ref": "ORD-2026-0042"}
    )


async def test_retention_expiry_shreds_at_the_retention_time(
    time_skipping_env: WorkflowEnvironment, runtime: Runtime
) -> None:
    client = time_skipping_env.client
    case_id = "case_retain" + uuid.uuid4().hex[:12]
    vault = Vault(runtime.keyring, runtime.sessions)
    await vault.put(case_id, "intake", INTAKE)
    start = await time_skipping_env.get_current_time()
    # per-protocol retention from settings (the time-skipping server caps runs at 10 years)
    settings = runtime.settings.model_copy(update={"retention_days": {"gt-eri": 1825}})
    assert settings.retention("hn-cicesct") == timedelta(days=3650)  # the default
    retention = settings.retention("gt-eri")
    assert retention == timedelta(days=1825)
    request = _order(
        case_id, reason="retention_expired", order_ref=None, not_before=start + retention
    )
    worker, queue = worker_on_new_queue(client, runtime)
    async with worker:
        receipt = await client.execute_workflow(
            PurgeWorkflow.run, request, id=purge_workflow_id(case_id), task_queue=queue
        )
        assert await time_skipping_env.get_current_time() >= start + retention
    assert receipt.case_id == case_id
    with pytest.raises(KeyShreddedError):
        await vault.get(case_id, "intake")
