"""Bearer tokens: valid ones become a Principal; every kind of bad token gets 401."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from api.app import create_app
from api.auth import Authenticated
from eri.auth import Principal, Role, TokenError, Verifier, mint
from eri.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/e.db")


def test_minted_token_verifies_to_a_principal(settings: Settings) -> None:
    token = mint(settings, "usr_ana00001", Role.RESPONDER, "PGN")
    principal = Verifier(settings).verify(token)
    assert principal == Principal("usr_ana00001", Role.RESPONDER, "PGN")
    assert principal.group == "PGN:responder"
    assert (settings.effective_keys_dir / "jwt-signing").stat().st_mode & 0o777 == 0o600


def _claims(settings: Settings, **over: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": "usr_x0000001",
        "iat": now,
        "exp": now + 600,
        "role": "responder",
        "institution": "PGN",
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(
    settings: Settings, claims: dict[str, object], key: Ed25519PrivateKey | None = None
) -> str:
    own = Ed25519PrivateKey.from_private_bytes(settings.dev_secret("jwt-signing"))
    return jwt.encode(claims, key or own, algorithm="EdDSA")


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "expired"),
        ("wrong_signer", "signature"),
        ("wrong_audience", "audience"),
        ("wrong_issuer", "issuer"),
        ("malformed", "malformed"),
        ("alg_none", "malformed"),
        ("no_role", "role"),
        ("unknown_role", "role"),
        ("no_institution", "institution"),
        ("no_exp", "malformed"),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(settings: Settings, case: str, reason: str) -> None:
    tokens = {
        "expired": lambda: mint(
            settings, "usr_x0000001", Role.ADMIN, "SVET", now=time.time() - 3600, ttl_seconds=60
        ),
        "wrong_signer": lambda: _sign(settings, _claims(settings), Ed25519PrivateKey.generate()),
        "wrong_audience": lambda: _sign(settings, _claims(settings, aud="other-api")),
        "wrong_issuer": lambda: _sign(settings, _claims(settings, iss="https://evil.invalid")),
        "malformed": lambda: "not.a.token",
        "alg_none": lambda: jwt.encode(_claims(settings), None, algorithm="none"),
        "no_role": lambda: _sign(settings, _claims(settings, role=None)),
        "unknown_role": lambda: _sign(settings, _claims(settings, role="superuser")),
        "no_institution": lambda: _sign(settings, _claims(settings, institution=None)),
        "no_exp": lambda: _sign(settings, _claims(settings, exp=None)),
    }
    with pytest.raises(TokenError) as err:
        Verifier(settings).verify(tokens[case]())
    assert err.value.reason == reason


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings)

    @app.get("/whoami")
    async def whoami(principal: Authenticated) -> dict[str, str]:
        return {"sub": principal.subject, "group": principal.group}

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


async def test_route_gets_the_principal(client: httpx.AsyncClient, settings: Settings) -> None:
    token = mint(settings, "usr_ana00001", Role.COORDINATOR, "SVET")
    r = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert r.json() == {"sub": "usr_ana00001", "group": "SVET:coordinator"}


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer ", "Bearer garbage"])
async def test_missing_or_bad_bearer_is_401_problem(
    client: httpx.AsyncClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    r = await client.get("/whoami", headers={**headers, "Accept-Language": "en"})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["type"].endswith("/unauthorized")
    assert r.json()["detail"]
