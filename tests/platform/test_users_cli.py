"""``eri users add|token|list``: the local issuer's users, as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from eri.auth import Principal, Role, Verifier
from eri.settings import Settings


def _eri(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eri.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_add_a_user_and_mint_a_token_the_api_accepts(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERI_")}
    env["ERI_DATA_DIR"] = str(tmp_path)
    added = _eri(
        env,
        "users",
        "add",
        "ana.pgn",
        "--role",
        "responder",
        "--institution",
        "pgn",
        "--group",
        "pgn:social_worker",
    )
    assert added.returncode == 0, added.stderr
    assert "added ana.pgn (usr_" in added.stdout
    again = _eri(env, "users", "add", "ana.pgn", "--role", "responder", "--institution", "pgn")
    assert again.returncode == 2
    assert "exists already" in again.stderr
    bad = _eri(env, "users", "add", "x.y", "--role", "chief", "--institution", "pgn")
    assert bad.returncode == 2 and "role 'chief' is not one of" in bad.stderr
    bad_group = _eri(
        env, "users", "add", "b.c", "--role", "responder", "--institution", "pgn", "--group", "pgn"
    )
    assert bad_group.returncode == 2 and "institution:role" in bad_group.stderr

    token = _eri(env, "users", "token", "ana.pgn")
    assert token.returncode == 0, token.stderr
    principal = Verifier(Settings(data_dir=tmp_path)).verify(token.stdout.strip())
    assert principal.role is Role.RESPONDER and principal.institution == "pgn"
    assert principal.groups == ("pgn:social_worker",)
    assert principal.subject.startswith("usr_")
    assert isinstance(principal, Principal)

    unknown = _eri(env, "users", "token", "nobody")
    assert unknown.returncode == 2 and "no user named 'nobody'" in unknown.stderr
    listed = _eri(env, "users", "list")
    assert listed.stdout.startswith("ana.pgn\tusr_")
