"""Deterministic Temporal workflows. ``WORKFLOWS`` is what the ERI worker registers."""

from workflows.probe import ProbeWorkflow

WORKFLOWS: list[type] = [ProbeWorkflow]

__all__ = ["WORKFLOWS", "ProbeWorkflow"]
