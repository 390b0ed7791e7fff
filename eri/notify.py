"""Notifications: a pluggable channel. Content is PII-free (ids, codes, groups) and every
notice carries an idempotency key, so a retried activity never notifies twice downstream."""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from eri.logging import get_logger
from eri.settings import Settings

log = get_logger("eri.notify")


class Channel(Protocol):
    async def send(self, key: str, notice: dict[str, Any]) -> None: ...


class LogChannel:
    """The default: one structured log line per notice."""

    async def send(self, key: str, notice: dict[str, Any]) -> None:
        log.info(
            "notification",
            action=notice.get("notice"),
            case_id=notice.get("case_id"),
            task_id=notice.get("task_id"),
            step_id=notice.get("step_id"),
            count=len(notice.get("targets", [])),
        )


class WebhookChannel:
    """POSTs the notice as JSON with an ``Idempotency-Key`` header; raises on failure so the
    activity retries.

    One HTTP client for the channel's life, made on first use: building one (its TLS context)
    takes about a quarter of a second, which a client per notice added to every update that
    opens a task.
    """

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self._url = url
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def send(self, key: str, notice: dict[str, Any]) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        response = await self._client.post(self._url, json=notice, headers={"Idempotency-Key": key})
        response.raise_for_status()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def channel_from_settings(settings: Settings) -> Channel:
    return (
        WebhookChannel(settings.notify_webhook_url) if settings.notify_webhook_url else LogChannel()
    )
