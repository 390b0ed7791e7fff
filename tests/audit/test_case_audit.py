"""A case driven through the engine lands in the verifiable log: every entry of the case is a
leaf of the signed tree, in order, and the offline verifier accepts the whole export."""

from __future__ import annotations

from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from eri import ledger
from eri.audit import leaf, log
from eri.audit.verify import verify_export
from eri.runtime import Runtime
from tests.conftest import worker_on_new_queue
from tests.workflows.test_case_workflow import _now, do, open_case, task_of
from tests.workflows.test_interpreter import RESPONDER
from workflows.case import CaseWorkflow
from workflows.interpreter import Claim


async def test_a_driven_case_is_in_the_signed_log(
    temporal_env: WorkflowEnvironment, runtime: Runtime, tmp_path: Path
) -> None:
    client = temporal_env.client
    worker, queue = worker_on_new_queue(client, runtime)
    async with worker:
        case_id, view = await open_case(
            client, queue, {"minor": True}, intake={"name": "Persona Auditada Sintética"}
        )
        activate = task_of(view, "activate")
        await do(
            client, case_id, CaseWorkflow.claim, Claim(at=_now(), actor=RESPONDER, task_id=activate)
        )
    entries = await ledger.entries(runtime.sessions, case_id=case_id)
    assert [e.action for e in entries] == ["case.opened", "task.opened", "task.claimed"]
    assert [e.case_seq for e in entries] == [1, 2, 3]

    signed, _ = await log.checkpoint(runtime.sessions, runtime.settings)
    export = tmp_path / "audit.jsonl"
    with export.open("wb") as fh:
        await log.export(runtime.sessions, fh)
    report = verify_export(export, log.log_verifier_key(runtime.settings))
    assert report.ok, report.summary()
    assert report.covered == signed.size >= entries[-1].seq + 1
    lines = export.read_bytes().split(b"\n")[1:-2]
    for entry in entries:
        assert lines[entry.seq] == leaf.encode(entry)
        assert leaf.decode(lines[entry.seq])["case_id"] == case_id
    # the intake went to the vault; the whole export holds ids and codes only
    assert b"Persona Auditada" not in export.read_bytes()
