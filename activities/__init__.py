"""Every side effect of a workflow. ``build_activities`` gives what the ERI worker registers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.audit import AuditActivities
from activities.case import CaseActivities
from activities.handoff import HandoffActivities
from activities.keys import KeyActivities
from eri.notify import channel_from_settings
from eri.runtime import Runtime


def build_activities(runtime: Runtime) -> list[Callable[..., Any]]:
    keys = KeyActivities(runtime)
    case = CaseActivities(runtime, channel_from_settings(runtime.settings))
    audit = AuditActivities(runtime)
    handoff = HandoffActivities(runtime, channel_from_settings(runtime.settings))
    return [
        keys.shred_case,
        case.record_case_changes,
        audit.audit_checkpoint,
        handoff.prepare,
        handoff.seal,
        handoff.deliver,
        handoff.escalate,
        handoff.recall,
    ]
