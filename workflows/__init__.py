"""Deterministic Temporal workflows. ``WORKFLOWS`` is what the ERI worker registers."""

from workflows.probe import ProbeWorkflow
from workflows.purge import PurgeWorkflow

WORKFLOWS: list[type] = [ProbeWorkflow, PurgeWorkflow]

__all__ = ["WORKFLOWS", "ProbeWorkflow", "PurgeWorkflow"]
