"""Shared services of the API process and their FastAPI dependencies (Annotated aliases)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

import httpx
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from eri import temporal
from eri.auth import Verifier
from eri.crypto.keys import Keyring
from eri.settings import Settings


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    verifier: Verifier
    keyring: Keyring
    #: How the API reaches another ERI deployment (handoff notices); None: the network.
    peer_transport: httpx.AsyncBaseTransport | None = None
    _client: Client | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def temporal_client(self, timeout: float = 2.0) -> Client:
        """The process's Temporal client, connected on first use (the API may start first)."""
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await asyncio.wait_for(
                        temporal.connect(self.settings, self.keyring), timeout
                    )
        return self._client


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, on every request.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
