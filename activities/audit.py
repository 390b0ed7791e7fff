"""Audit activities: sign a checkpoint of the ledger's Merkle tree."""

from __future__ import annotations

from temporalio import activity

from eri.audit import log
from eri.runtime import Runtime
from workflows.checkpoint import CheckpointResult


class AuditActivities:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    @activity.defn(name="audit_checkpoint")
    async def audit_checkpoint(self) -> CheckpointResult:
        signed, created = await log.checkpoint(self._rt.sessions, self._rt.settings)
        return CheckpointResult(signed.size, signed.root.hex(), created)
