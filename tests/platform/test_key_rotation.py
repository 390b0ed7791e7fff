"""``eri keys rotate --new-kek`` while another process, holding the old KEK, keeps working."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from eri import ledger
from eri.crypto.keys import Keyring
from eri.crypto.sql_store import SqlDataKeyStore
from eri.crypto.wiring import KEK_FILE, PREVIOUS_PREFIX, LocalKEKDirectory
from eri.db import create_engine, session_factory
from eri.ledger import Action
from eri.vault import Vault

CASES = [f"case_rot{i:04d}abcd" for i in range(5)]


def _eri(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eri.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_rotation_with_a_running_process(database_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        # "the worker": loaded before the rotation, no cache so every read unwraps
        running_kek = LocalKEKDirectory(keys, create=True)
        old_id = running_kek.key_id
        running = Keyring(SqlDataKeyStore(engine, sessions), running_kek, cache_ttl=0)
        vault = Vault(running, sessions)
        for case in CASES:
            await vault.put(case, "intake", {"case": case})
        assert await running.kek_usage() == {old_id: len(CASES)}

        env = {k: v for k, v in os.environ.items() if not k.startswith("ERI_")}
        env.update(
            ERI_DATA_DIR=str(tmp_path), ERI_KEYS_DIR=str(keys), ERI_DATABASE_URL=database_url
        )
        out = _eri(env, "keys", "rotate", "--new-kek")
        assert out.returncode == 0, out.stderr[-2000:]
        assert f"{len(CASES)} re-wrapped" in out.stdout

        new_id = LocalKEKDirectory(keys, create=False).key_id
        assert new_id != old_id
        assert (keys / f"{PREVIOUS_PREFIX}{old_id}").exists()
        assert (keys / KEK_FILE).stat().st_mode & 0o777 == 0o600
        assert await running.kek_usage() == {new_id: len(CASES)}
        status = _eri(env, "keys", "status")
        assert f"{new_id}={len(CASES)}" in status.stdout

        # the running process reads keys re-wrapped under a KEK it had not loaded...
        for case in CASES:
            assert await vault.get(case, "intake") == {"case": case}
        # ...and wraps new case keys under the new KEK
        await vault.put("case_rotnew0001", "intake", {"case": "new"})
        assert await running.kek_usage() == {new_id: len(CASES) + 1}

        assert [e.action for e in await ledger.entries(sessions)] == [Action.KEYS_ROTATED]

        # a second pass finds nothing left to do
        again = _eri(env, "keys", "rotate")
        assert again.returncode == 0
        assert "0 re-wrapped" in again.stdout
    finally:
        await engine.dispose()
