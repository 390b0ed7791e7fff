"""Fixtures of the crypto tests: real keys and real AES-GCM throughout, no crypto mocks.

``ring`` is a function-scoped in-memory keyring; it is deliberately not called ``keyring``, which
is the session keyring of the root conftest (SQL store) that ``temporal_env`` uses.
"""

from __future__ import annotations

import base64
import os

import pytest

from eri.crypto.kek import EnvKEK
from eri.crypto.keys import Keyring
from eri.crypto.testing import MemoryDataKeyStore


class FakeClock:
    """Monotonic seconds under the test's control (cache TTL tests)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def random_env_kek() -> EnvKEK:
    return EnvKEK(base64.b64encode(os.urandom(32)).decode("ascii"))


@pytest.fixture
def kek() -> EnvKEK:
    return random_env_kek()


@pytest.fixture
def store() -> MemoryDataKeyStore:
    return MemoryDataKeyStore()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ring(store: MemoryDataKeyStore, kek: EnvKEK, clock: FakeClock) -> Keyring:
    return Keyring(store, kek, cache_ttl=30.0, cache_size=64, clock=clock)
