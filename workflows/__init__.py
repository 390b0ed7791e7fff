"""Deterministic Temporal workflows. ``WORKFLOWS`` is what the ERI worker registers."""

from workflows.case import CaseWorkflow
from workflows.checkpoint import CheckpointWorkflow
from workflows.handoff import HandoffWorkflow
from workflows.probe import ProbeWorkflow
from workflows.purge import PurgeWorkflow

WORKFLOWS: list[type] = [
    CaseWorkflow,
    ProbeWorkflow,
    PurgeWorkflow,
    CheckpointWorkflow,
    HandoffWorkflow,
]

__all__ = [
    "WORKFLOWS",
    "CaseWorkflow",
    "CheckpointWorkflow",
    "HandoffWorkflow",
    "ProbeWorkflow",
    "PurgeWorkflow",
]
