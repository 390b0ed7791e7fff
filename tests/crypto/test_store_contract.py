from __future__ import annotations

from eri.crypto.keys import DataKeyStore
from eri.crypto.testing import MemoryDataKeyStore
from tests.crypto.store_contract import check_store_contract


async def test_memory_store_meets_the_contract() -> None:
    assert isinstance(MemoryDataKeyStore(), DataKeyStore)
    await check_store_contract(MemoryDataKeyStore)
