"""Every side effect of a workflow. ``build_activities`` gives what the ERI worker registers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.keys import KeyActivities
from eri.runtime import Runtime


def build_activities(runtime: Runtime) -> list[Callable[..., Any]]:
    keys = KeyActivities(runtime)
    return [keys.shred_case]
