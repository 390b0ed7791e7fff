"""structlog set-up: JSON lines in production, console in development.

Every line carries its request or workflow context (opaque ids only, bound with
``structlog.contextvars``). A processor drops every key that is not on the allow-list of
non-identifying keys, and exceptions are reduced to their type name: exception text can hold
user input, so it is never logged raw.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from eri.settings import Settings

#: Keys a log line may carry. Values are opaque ids, codes, counts and durations only.
ALLOWED_KEYS = frozenset(
    {
        "event",
        "level",
        "timestamp",
        "logger",
        "component",
        "request_id",
        "case_id",
        "task_id",
        "handoff_id",
        "workflow_id",
        "run_id",
        "workflow_type",
        "activity_type",
        "update_name",
        "protocol_id",
        "protocol_version",
        "step_id",
        "action",
        "actor_id",
        "role",
        "institution",
        "method",
        "route",
        "status",
        "duration_ms",
        "error_type",
        "attempt",
        "count",
        "address",
        "namespace",
        "task_queue",
        "port",
        "pid",
        "service",
        "revision",
        "backend",
    }
)
DROPPED = "dropped_keys"


def drop_unlisted_keys(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Keep only allow-listed keys; report how many were dropped, never their values."""
    exc = event_dict.pop("exc_info", None)
    if exc:
        exc_type = (
            sys.exc_info()[0]
            if exc is True
            else type(exc)
            if isinstance(exc, BaseException)
            else None
        )
        if exc_type is not None:
            event_dict.setdefault("error_type", exc_type.__name__)
    dropped = [k for k in event_dict if k not in ALLOWED_KEYS]
    for key in dropped:
        del event_dict[key]
    if dropped:
        event_dict[DROPPED] = len(dropped)
    return event_dict


def _stdlib_filter(record: logging.LogRecord) -> bool:
    # Third-party libraries log with arguments we do not control: keep only the static message
    # template, never the interpolated arguments (they can hold request data).
    record.args = None
    record.exc_info = None
    record.exc_text = None
    return True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stdlib handler that writes to the current ``sys.stderr`` (see ``_stderr_logger``)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    # Resolve stderr per call: a redirected stream (tests, daemons) is honoured.
    return structlog.PrintLogger(sys.stderr)


def configure_logging(settings: Settings, *, component: str = "eri") -> None:
    renderer: Any
    if settings.effective_log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False, exception_formatter=lambda *_: None)
    level = logging.getLevelName(settings.log_level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            drop_unlisted_keys,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            level if isinstance(level, int) else 20
        ),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(component=component)
    handler = _StderrHandler()
    handler.addFilter(_stdlib_filter)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
