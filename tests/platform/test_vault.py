"""The vault on SQLite and PostgreSQL with the real keyring and SQL key store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from eri.canary import LeakScanner
from eri.crypto.errors import DecryptionError, KeyShreddedError
from eri.crypto.kek import LocalFileKEK
from eri.crypto.keys import Keyring
from eri.crypto.sql_store import SqlDataKeyStore
from eri.db import create_engine, session_factory
from eri.db.models import VaultRecord
from eri.vault import Vault, VaultFieldError

CASE_A, CASE_B = "case_vaultaaaa0001", "case_vaultbbbb0002"
INTAKE = {"name": "Ximena Quetzal-Canarió", "passport": "XQ7719034C", "phone": "+502 5550 1234"}


@dataclass
class Env:
    vault: Vault
    keyring: Keyring
    sessions: async_sessionmaker[AsyncSession]
    url: str


@pytest.fixture
async def env(database_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    keyring = Keyring(
        SqlDataKeyStore(engine, sessions), LocalFileKEK.create_if_missing(tmp_path / "kek")
    )
    try:
        yield Env(Vault(keyring, sessions), keyring, sessions, database_url)
    finally:
        await engine.dispose()


async def test_round_trip_and_versions(env: Env) -> None:
    assert await env.vault.put(CASE_A, "intake", INTAKE) == 1
    assert await env.vault.put(CASE_A, "intake", {**INTAKE, "phone": None}) == 2
    assert await env.vault.get(CASE_A, "intake") == {**INTAKE, "phone": None}
    assert await env.vault.get(CASE_A, "intake", version=1) == INTAKE
    await env.vault.put(CASE_A, "statement", "Relato sintético de prueba.")
    assert await env.vault.get_all(CASE_A) == {
        "intake": {**INTAKE, "phone": None},
        "statement": "Relato sintético de prueba.",
    }
    with pytest.raises(KeyError):
        await env.vault.get(CASE_B, "intake")


async def test_unless_current_skips_only_the_value_already_latest(env: Env) -> None:
    assert await env.vault.put(CASE_A, "intake", INTAKE, unless_current=True) == 1
    assert await env.vault.put(CASE_A, "intake", INTAKE, unless_current=True) == 1  # a retry
    changed = {**INTAKE, "phone": None}
    assert await env.vault.put(CASE_A, "intake", changed, unless_current=True) == 2
    assert await env.vault.put(CASE_A, "intake", INTAKE, unless_current=True) == 3  # back again
    assert await env.vault.put(CASE_A, "intake", INTAKE) == 4  # without it: always a version
    assert await env.vault.get(CASE_A, "intake", version=3) == INTAKE


async def test_nothing_is_stored_in_plaintext(env: Env) -> None:
    await env.vault.put(CASE_A, "intake", INTAKE)
    assert await LeakScanner(INTAKE).scan_database(env.url) == []


async def _ciphertext(env: Env, case: str, field: str) -> bytes:
    async with env.sessions() as s:
        row = (
            await s.execute(
                select(VaultRecord).where(VaultRecord.case_id == case, VaultRecord.field == field)
            )
        ).scalar_one()
        return row.ciphertext


async def _overwrite(env: Env, case: str, field: str, ciphertext: bytes) -> None:
    async with env.sessions.begin() as s:
        await s.execute(
            update(VaultRecord)
            .where(VaultRecord.case_id == case, VaultRecord.field == field)
            .values(ciphertext=ciphertext)
        )


async def test_a_row_copied_into_another_case_does_not_decrypt(env: Env) -> None:
    await env.vault.put(CASE_A, "intake", INTAKE)
    await env.vault.put(CASE_B, "intake", {"name": "Otra Persona Sintética"})
    await _overwrite(env, CASE_B, "intake", await _ciphertext(env, CASE_A, "intake"))
    with pytest.raises(DecryptionError) as err:
        await env.vault.get(CASE_B, "intake")
    assert "Ximena" not in str(err.value)


async def test_a_row_copied_into_another_field_does_not_decrypt(env: Env) -> None:
    await env.vault.put(CASE_A, "intake", INTAKE)
    await env.vault.put(CASE_A, "contact", {"phone": "+502 0000 0000"})
    await _overwrite(env, CASE_A, "contact", await _ciphertext(env, CASE_A, "intake"))
    with pytest.raises(DecryptionError):
        await env.vault.get(CASE_A, "contact")


async def test_a_tampered_byte_is_detected(env: Env) -> None:
    await env.vault.put(CASE_A, "intake", INTAKE)
    ct = bytearray(await _ciphertext(env, CASE_A, "intake"))
    ct[-5] ^= 0x01
    await _overwrite(env, CASE_A, "intake", bytes(ct))
    with pytest.raises(DecryptionError):
        await env.vault.get(CASE_A, "intake")


async def test_shredding_a_case_leaves_others_intact(env: Env) -> None:
    await env.vault.put(CASE_A, "intake", INTAKE)
    await env.vault.put(CASE_B, "intake", {"name": "Otra Persona Sintética"})
    result = await env.keyring.shred_case(CASE_A)
    assert result.destroyed
    with pytest.raises(KeyShreddedError):
        await env.vault.get(CASE_A, "intake")
    with pytest.raises(KeyShreddedError):
        await env.vault.put(CASE_A, "intake", INTAKE)
    assert (await env.vault.get(CASE_B, "intake"))["name"] == "Otra Persona Sintética"


@pytest.mark.parametrize("field", ["Ximena", "intake name", "", "x" * 97])
async def test_field_names_must_be_codes(env: Env, field: str) -> None:
    with pytest.raises(VaultFieldError):
        await env.vault.put(CASE_A, field, "x")
