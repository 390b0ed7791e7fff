"""Production sign-in: the OIDC authorization code flow with PKCE, against a tiny real provider.

The provider below is a small OpenID Connect server run over HTTP on a free port (discovery,
authorize, token, JWKS); it checks the PKCE verifier against the challenge (S256), the client
secret and the redirect URI, and signs ID tokens with its own P-256 key. ERI is configured with
its issuer and talks to it over the network like to any provider; nothing of ERI is mocked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import func, select

from api.app import create_app
from eri.db.models import LedgerEntry
from eri.runtime import Runtime
from eri.settings import Settings
from tests.conftest import free_port
from tests.web.browser_support import serve_http

CLIENT_ID = "eri-web"
CLIENT_SECRET = "synthetic-client-secret-for-tests"
ERI = "http://eri.test"


@dataclass
class Provider:
    issuer: str = ""
    claims: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    #: Misbehaviours a test switches on: a wrong nonce, a key not in the JWKS.
    wrong_nonce: bool = False
    foreign_key: bool = False
    tokens_issued: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        async def discovery() -> dict[str, Any]:
            return {
                "issuer": self.issuer,
                "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token",
                "jwks_uri": self.issuer + "/jwks",
                "code_challenge_methods_supported": ["S256"],
            }

        @app.get("/jwks")
        async def jwks() -> dict[str, Any]:
            public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
            return {"keys": [{**public, "kid": "k1", "use": "sig", "alg": "ES256"}]}

        @app.get("/authorize")
        async def authorize(request: Request) -> Any:
            q = request.query_params
            if (
                q.get("client_id") != CLIENT_ID
                or q.get("response_type") != "code"
                or q.get("code_challenge_method") != "S256"
                or "openid" not in (q.get("scope") or "").split()
                or not q.get("code_challenge")
            ):
                return JSONResponse({"error": "invalid_request"}, status_code=400)
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "challenge": q["code_challenge"],
                "nonce": q.get("nonce"),
                "redirect_uri": q["redirect_uri"],
            }
            target = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})
            return RedirectResponse(target, status_code=302)

        @app.post("/token")
        async def token(
            request: Request,
            grant_type: str = Form(),
            code: str = Form(),
            redirect_uri: str = Form(),
            code_verifier: str = Form(),
        ) -> Any:
            expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if request.headers.get("authorization") != expected:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            saved = self.codes.pop(code, None)  # a code is good once
            challenge = (
                base64.urlsafe_b64encode(hashlib.sha256(code_verifier.encode()).digest())
                .decode()
                .rstrip("=")
            )
            if (
                grant_type != "authorization_code"
                or saved is None
                or saved["redirect_uri"] != redirect_uri
                or saved["challenge"] != challenge
            ):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            now = int(time.time())
            claims = {
                "iss": self.issuer,
                "aud": CLIENT_ID,
                "iat": now,
                "exp": now + 300,
                "nonce": "not-the-nonce" if self.wrong_nonce else saved["nonce"],
                **self.claims,
            }
            key = ec.generate_private_key(ec.SECP256R1()) if self.foreign_key else self.key
            id_token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})
            self.tokens_issued += 1
            return {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "id_token": id_token,
            }

        return app


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    port = free_port()
    p = Provider(issuer=f"http://127.0.0.1:{port}")
    async with serve_http(p.app(), port):
        yield p


@pytest.fixture
async def eri(
    provider: Provider, runtime: Runtime, session_tmp: Path, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        data_dir=tmp_path,
        keys_dir=session_tmp,
        database_url=runtime.settings.database_url,
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        web_public_url=ERI,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=ERI) as client:
            client.app_services = app.state.services  # type: ignore[attr-defined]
            yield client


async def _through_provider(
    eri: httpx.AsyncClient, next_path: str = "/web/inbox"
) -> httpx.Response:
    """The browser's trip: ERI -> provider -> ERI's callback; returns the callback's answer."""
    start = await eri.get("/web/oidc/start", params={"next": next_path})
    assert start.status_code == 303
    target = urlparse(start.headers["location"])
    query = parse_qs(target.query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert "code_verifier" not in query  # the verifier never leaves ERI before the token call
    async with httpx.AsyncClient() as browser:
        authorized = await browser.get(start.headers["location"])
    assert authorized.status_code == 302
    back = urlparse(authorized.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == ERI + "/web/oidc/callback"
    return await eri.get("/web/oidc/callback?" + back.query)


async def _signed_in_entries(eri: httpx.AsyncClient, actor_id: str) -> int:
    sessions = eri.app_services.sessions  # type: ignore[attr-defined]
    async with sessions() as session:
        return int(
            (
                await session.execute(
                    select(func.count())
                    .select_from(LedgerEntry)
                    .where(
                        LedgerEntry.action == "session.signed_in",
                        LedgerEntry.actor_id == actor_id,
                    )
                )
            ).scalar_one()
        )


async def test_oidc_code_flow_with_pkce_signs_a_responder_in(
    provider: Provider, eri: httpx.AsyncClient
) -> None:
    provider.claims = {
        "sub": "ana.lopez@pgn.example",  # an e-mail subject: ERI records only its digest
        "role": "responder",
        "institution": "PGN",
        "groups": ["pgn:social_worker"],
    }
    signin = await eri.get("/web/signin")
    assert "/web/oidc/start" in signin.text and 'name="password"' not in signin.text
    done = await _through_provider(eri)
    assert done.status_code == 303 and done.headers["location"] == "/web/inbox"
    assert "eri_session=" in done.headers.get("set-cookie", "")
    inbox = await eri.get("/web/inbox")
    assert inbox.status_code == 200 and "<h1>Mis tareas</h1>" in inbox.text
    digest = "sub_" + hashlib.sha256(b"ana.lopez@pgn.example").hexdigest()[:32]
    assert await _signed_in_entries(eri, digest) == 1


@pytest.mark.parametrize(
    "misbehaviour", ["wrong_nonce", "foreign_key", "state", "replay_elsewhere"]
)
async def test_oidc_refuses_what_it_cannot_verify(
    provider: Provider, eri: httpx.AsyncClient, misbehaviour: str
) -> None:
    provider.claims = {"sub": "usr_oidc1234", "role": "responder", "institution": "PGN"}
    if misbehaviour in ("wrong_nonce", "foreign_key"):
        setattr(provider, misbehaviour, True)
        done = await _through_provider(eri)
    elif misbehaviour == "state":
        start = await eri.get("/web/oidc/start")
        async with httpx.AsyncClient() as browser:
            authorized = await browser.get(start.headers["location"])
        query = parse_qs(urlparse(authorized.headers["location"]).query)
        done = await eri.get(
            "/web/oidc/callback", params={"code": query["code"][0], "state": "forged"}
        )
    else:
        start = await eri.get("/web/oidc/start")
        async with httpx.AsyncClient() as browser:
            authorized = await browser.get(start.headers["location"])
        callback = "/web/oidc/callback?" + urlparse(authorized.headers["location"]).query
        first = await eri.get(callback)
        assert first.status_code == 303
        eri.cookies.clear()
        done = await eri.get(callback)  # the same code again, from a browser without the cookie
    assert done.status_code == 401
    assert "No se pudo iniciar sesión con el proveedor" in done.text
    assert "eri_session=" not in done.headers.get("set-cookie", "")
    assert (await eri.get("/web/inbox")).status_code == 303  # still signed out
