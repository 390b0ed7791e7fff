"""``eri users password`` and ``eri users link``, then signing in to the pages with them."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import select

from api.app import create_app
from eri.db.models import User, WebLoginLink
from eri.settings import Settings


def _eri(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eri.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _csrf(client: httpx.AsyncClient) -> str:
    page = await client.get("/web/signin")
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert match
    return match.group(1)


async def test_a_password_and_a_one_time_link_from_the_cli_sign_in(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERI_")}
    env["ERI_DATA_DIR"] = str(tmp_path)
    added = await asyncio.to_thread(
        _eri, env, "users", "add", "ana.svet", "--role", "responder", "--institution", "svet"
    )
    assert added.returncode == 0, added.stderr
    short = await asyncio.to_thread(
        _eri, env, "users", "password", "ana.svet", "--stdin", stdin="corta\n"
    )
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    done = await asyncio.to_thread(
        _eri, env, "users", "password", "ana.svet", "--stdin", stdin="una clave sintética larga\n"
    )
    assert done.returncode == 0, done.stderr
    link = await asyncio.to_thread(_eri, env, "users", "link", "ana.svet")
    assert link.returncode == 0, link.stderr
    url = link.stdout.strip()
    assert url.startswith("http://127.0.0.1:8000/web/signin/link?token=")
    token = url.split("token=", 1)[1]

    app = create_app(Settings(data_dir=tmp_path))
    async with app.router.lifespan_context(app):
        sessions = app.state.services.sessions
        async with sessions() as session:
            user = (await session.execute(select(User).where(User.name == "ana.svet"))).scalar_one()
            links = list((await session.execute(select(WebLoginLink))).scalars())
        assert user.password_hash and user.password_hash.startswith("scrypt$")
        assert "una clave" not in user.password_hash
        assert [row.token_hash for row in links] != [token]  # only the token's hash is kept
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://eri.test") as client:
            form = {
                "csrf": await _csrf(client),
                "name": "ana.svet",
                "password": "una clave sintética larga",
            }
            signed = await client.post("/web/signin", data=form)
            assert signed.status_code == 303 and signed.headers["location"] == "/web/inbox"
            assert (await client.get("/web/inbox")).status_code == 200
        async with httpx.AsyncClient(transport=transport, base_url="http://eri.test") as client:
            csrf = await _csrf(client)
            first = await client.post("/web/signin/link", data={"csrf": csrf, "token": token})
            assert first.status_code == 303
            client.cookies.clear()
            csrf = await _csrf(client)
            again = await client.post("/web/signin/link", data={"csrf": csrf, "token": token})
            assert again.status_code == 401
