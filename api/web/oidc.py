"""Production sign-in: OpenID Connect authorization code flow with PKCE (RFC 7636, S256).

``ERI_OIDC_ISSUER`` names the provider; its discovery document
(``/.well-known/openid-configuration``) gives the endpoints. The browser is sent to the
provider with ``state``, ``nonce`` and a ``code_challenge``; those three and the verifier wait
in a short-lived signed cookie (``eri_oidc``). On return the code is exchanged for tokens, the
ID token is verified (signature by the provider's JWKS, issuer, audience = client id, expiry,
nonce) and its ERI claims (role, institution, groups; as bearer tokens carry) make the session's
:class:`eri.auth.Principal`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from eri.auth import ALGORITHMS, CLOCK_SKEW_SECONDS, Principal, TokenError, principal_from_claims
from eri.settings import Settings

STATE_COOKIE = "eri_oidc"
STATE_SECRET = "web-oidc"  # noqa: S105 (a file name, not a secret)
STATE_TTL_SECONDS = 600
CALLBACK = "/web/oidc/callback"


class OidcError(Exception):
    """The sign-in with the provider failed; ``reason`` is a code (never a token's content)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = _b64(secrets.token_bytes(32))
    return verifier, _b64(hashlib.sha256(verifier.encode()).digest())


def _sign(settings: Settings, payload: dict[str, Any]) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    mac = hmac.new(settings.dev_secret(STATE_SECRET), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def _unsign(settings: Settings, value: str) -> dict[str, Any]:
    body, _, mac = value.partition(".")
    expected = hmac.new(settings.dev_secret(STATE_SECRET), body.encode(), hashlib.sha256).digest()
    if not mac or not hmac.compare_digest(_b64(expected), mac):
        raise OidcError("state")
    payload: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    if payload.get("exp", 0) < time.time():
        raise OidcError("state")
    return payload


class OidcClient:
    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        if not settings.oidc_issuer or not settings.oidc_client_id:
            raise OidcError("not_configured")
        self._settings = settings
        self._transport = transport
        self._discovery: dict[str, Any] | None = None
        self._jwks: jwt.PyJWKSet | None = None

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self._transport, timeout=10.0)

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            issuer = str(self._settings.oidc_issuer).rstrip("/")
            async with self._http() as http:
                r = await http.get(issuer + "/.well-known/openid-configuration")
            if r.status_code != 200:
                raise OidcError("discovery")
            doc: dict[str, Any] = r.json()
            if doc.get("issuer", "").rstrip("/") != issuer:
                raise OidcError("discovery")
            self._discovery = doc
        return self._discovery

    async def start(self, redirect_uri: str, next_path: str) -> tuple[str, str]:
        """(the provider URL to send the browser to, the signed state cookie's value)."""
        doc = await self.discovery()
        verifier, challenge = pkce_pair()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        cookie = _sign(
            self._settings,
            {
                "state": state,
                "nonce": nonce,
                "verifier": verifier,
                "next": next_path,
                "exp": int(time.time()) + STATE_TTL_SECONDS,
            },
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._settings.oidc_client_id,
                "redirect_uri": redirect_uri,
                "scope": self._settings.oidc_scopes,
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{doc['authorization_endpoint']}?{query}", cookie

    async def finish(
        self, *, code: str, state: str, cookie: str | None, redirect_uri: str
    ) -> tuple[Principal, str]:
        """Exchange the code and verify the ID token: (the principal, the next path)."""
        if not cookie:
            raise OidcError("state")
        saved = _unsign(self._settings, cookie)
        if not hmac.compare_digest(str(saved.get("state", "")), state):
            raise OidcError("state")
        doc = await self.discovery()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": str(self._settings.oidc_client_id),
            "code_verifier": saved["verifier"],
        }
        secret = self._settings.oidc_client_secret
        async with self._http() as http:
            if secret is not None:  # a confidential client: HTTP Basic (client_secret_basic)
                basic = httpx.BasicAuth(
                    str(self._settings.oidc_client_id), secret.get_secret_value()
                )
                r = await http.post(doc["token_endpoint"], data=form, auth=basic)
            else:  # a public client: PKCE alone
                r = await http.post(doc["token_endpoint"], data=form)
        if r.status_code != 200:
            raise OidcError("token")
        id_token = r.json().get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("token")
        claims = await self._verify(id_token, doc)
        if not hmac.compare_digest(str(claims.get("nonce", "")), str(saved["nonce"])):
            raise OidcError("nonce")
        try:
            principal = principal_from_claims(claims)
        except TokenError as exc:
            raise OidcError(exc.reason) from None
        return principal, str(saved.get("next", "/web/"))

    async def _keys(self, doc: dict[str, Any], refresh: bool = False) -> jwt.PyJWKSet:
        if self._jwks is None or refresh:
            async with self._http() as http:
                r = await http.get(doc["jwks_uri"])
            if r.status_code != 200:
                raise OidcError("jwks")
            self._jwks = jwt.PyJWKSet.from_dict(r.json())
        return self._jwks

    async def _verify(self, id_token: str, doc: dict[str, Any]) -> dict[str, Any]:
        try:
            kid = jwt.get_unverified_header(id_token).get("kid")
        except jwt.PyJWTError:
            raise OidcError("id_token") from None
        keys = await self._keys(doc)
        if kid not in {k.key_id for k in keys.keys}:
            keys = await self._keys(doc, refresh=True)  # the provider rotated its keys
        matching = [k for k in keys.keys if k.key_id == kid] or keys.keys[:1]
        if not matching:
            raise OidcError("id_token")
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                matching[0].key,
                algorithms=ALGORITHMS,
                audience=self._settings.oidc_client_id,
                issuer=doc["issuer"],
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError:
            raise OidcError("id_token") from None
        return claims
