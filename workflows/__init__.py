"""Deterministic Temporal workflows. ``WORKFLOWS`` is what the ERI worker registers."""

from workflows.case import CaseWorkflow
from workflows.probe import ProbeWorkflow
from workflows.purge import PurgeWorkflow

WORKFLOWS: list[type] = [CaseWorkflow, ProbeWorkflow, PurgeWorkflow]

__all__ = ["WORKFLOWS", "CaseWorkflow", "ProbeWorkflow", "PurgeWorkflow"]
