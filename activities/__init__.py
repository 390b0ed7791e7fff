"""Every side effect of a workflow. ``ACTIVITIES`` is what the ERI worker registers."""

from collections.abc import Callable
from typing import Any

ACTIVITIES: list[Callable[..., Any]] = []
