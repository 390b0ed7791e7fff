"""Deterministic Temporal workflows. ``WORKFLOWS`` is what the ERI worker registers."""

from workflows.case import CaseWorkflow
from workflows.handoff import HandoffWorkflow
from workflows.probe import ProbeWorkflow
from workflows.purge import PurgeWorkflow

WORKFLOWS: list[type] = [CaseWorkflow, HandoffWorkflow, ProbeWorkflow, PurgeWorkflow]

__all__ = ["WORKFLOWS", "CaseWorkflow", "HandoffWorkflow", "ProbeWorkflow", "PurgeWorkflow"]
