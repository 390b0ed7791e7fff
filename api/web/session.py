"""Web sessions: a server-side session per signed-in browser, and CSRF tokens.

The cookie ``eri_session`` holds a random token (``HttpOnly``, ``SameSite=Lax``, ``Secure``
outside development); the database keeps only its SHA-256 with the principal copied at sign-in
(the same :class:`eri.auth.Principal` the bearer tokens give). A session ends after
``ERI_WEB_SESSION_IDLE_MINUTES`` without a request, after ``ERI_WEB_SESSION_MAX_HOURS`` in
any case, and at sign-out (the row is deleted, so a copied cookie is worthless).

CSRF: every form carries ``csrf``, an HMAC of the session (or, before sign-in, of the
``eri_pre`` cookie) under the development secret ``web-csrf``; htmx sends the same value in
``X-CSRF-Token``. :func:`csrf_guard` checks it on every POST of the page routers
(:func:`page_router`) and answers 403 on a mismatch.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import delete

from api.deps import Services, ServicesDep
from api.problems import Problem
from eri.auth import Principal, Role
from eri.db.models import WebSession
from eri.settings import Settings

PREFIX = "/web"
SESSION_COOKIE = "eri_session"
PRE_COOKIE = "eri_pre"  # binds the sign-in form's CSRF token before there is a session
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_SECRET = "web-csrf"  # noqa: S105 (a file name, not a secret)
#: last_seen_at is written at most this often (a page view is not a database write each time).
TOUCH_EVERY = timedelta(seconds=30)


class SignInRequired(Exception):
    """No valid session: the page handler redirects to the sign-in page."""

    def __init__(self, expired: bool = False) -> None:
        super().__init__("sign-in required")
        self.expired = expired


@dataclass(frozen=True)
class SignedInSession:
    principal: Principal
    session_hash: str
    csrf: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(settings: Settings, binding: str) -> str:
    secret = settings.dev_secret(CSRF_SECRET)
    return hmac.new(secret, f"csrf\n{binding}".encode(), hashlib.sha256).hexdigest()


def cookie_secure(settings: Settings) -> bool:
    return not settings.is_development


def set_cookie(
    response: Response, settings: Settings, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        secure=cookie_secure(settings),
        samesite="lax",
    )


def clear_cookie(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(
        name, path="/", httponly=True, secure=cookie_secure(settings), samesite="lax"
    )


async def start(services: Services, response: Response, principal: Principal) -> str:
    """Open a session for ``principal`` and set its cookie; returns the session hash."""
    settings = services.settings
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    async with services.sessions.begin() as session:
        session.add(
            WebSession(
                session_hash=_hash(token),
                subject=principal.subject,
                role=principal.role.value,
                institution=principal.institution,
                groups=" ".join(principal.groups),
                created_at=now,
                last_seen_at=now,
            )
        )
    set_cookie(response, settings, SESSION_COOKIE, token, settings.web_session_max_hours * 3600)
    clear_cookie(response, settings, PRE_COOKIE)
    return _hash(token)


async def end(services: Services, request: Request, response: Response) -> Principal | None:
    """Sign out: delete the session row and the cookie; returns who it was, if anyone."""
    token = request.cookies.get(SESSION_COOKIE)
    found = await _load(services, token, touch=False) if token else None
    if token:
        async with services.sessions.begin() as session:
            await session.execute(delete(WebSession).where(WebSession.session_hash == _hash(token)))
    clear_cookie(response, services.settings, SESSION_COOKIE)
    return found.principal if found else None


async def _load(services: Services, token: str, *, touch: bool) -> SignedInSession | None:
    settings = services.settings
    if len(token) > 128:
        return None
    key = _hash(token)
    now = datetime.now(UTC)
    expired = False
    async with services.sessions.begin() as session:
        row = await session.get(WebSession, key)
        if row is None:
            return None
        idle = timedelta(minutes=settings.web_session_idle_minutes)
        oldest = timedelta(hours=settings.web_session_max_hours)
        if now - row.last_seen_at > idle or now - row.created_at > oldest:
            await session.delete(row)
            expired = True
        elif touch and now - row.last_seen_at > TOUCH_EVERY:
            row.last_seen_at = now
        principal = Principal(
            subject=row.subject,
            role=Role(row.role),
            institution=row.institution,
            groups=tuple(row.groups.split()),
        )
    if expired:  # raised after the commit: the expired row is really deleted
        raise SignInRequired(expired=True)
    return SignedInSession(principal, key, csrf_token(settings, key))


async def purge_expired(services: Services) -> int:
    """Delete sessions idle for longer than the setting (the CLI or a schedule may call it)."""
    cutoff = datetime.now(UTC) - timedelta(minutes=services.settings.web_session_idle_minutes)
    async with services.sessions.begin() as session:
        result = await session.execute(delete(WebSession).where(WebSession.last_seen_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


async def optional_session(request: Request, services: ServicesDep) -> SignedInSession | None:
    """The signed-in session, or None (an expired one is deleted and gives None)."""
    cached = getattr(request.state, "web_session", None)
    if cached is not None:
        assert isinstance(cached, SignedInSession)
        return cached
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        found = await _load(services, token, touch=True)
    except SignInRequired:
        request.state.session_expired = True
        return None
    request.state.web_session = found
    if found is not None:
        request.state.csrf = found.csrf
    return found


async def require_session(request: Request, services: ServicesDep) -> SignedInSession:
    found = await optional_session(request, services)
    if found is None:
        raise SignInRequired(expired=bool(getattr(request.state, "session_expired", False)))
    return found


async def require_principal(
    session: Annotated[SignedInSession, Depends(require_session)],
) -> Principal:
    return session.principal


#: The signed-in session (principal + CSRF token), or a redirect to the sign-in page.
SignedIn = Annotated[SignedInSession, Depends(require_session)]
#: The signed-in principal (as ``api.auth.Authenticated`` gives for a bearer token).
WebPrincipal = Annotated[Principal, Depends(require_principal)]
MaybeSignedIn = Annotated[SignedInSession | None, Depends(optional_session)]


def pre_session(request: Request, response: Response, settings: Settings) -> str:
    """Before sign-in: the ``eri_pre`` cookie's value (set if missing); returns the CSRF."""
    value = request.cookies.get(PRE_COOKIE)
    if not value or len(value) > 64:
        value = secrets.token_urlsafe(24)
        set_cookie(response, settings, PRE_COOKIE, value, 30 * 60)
    token = csrf_token(settings, "pre:" + value)
    request.state.csrf = token
    return token


CSRF_REFUSED = Problem(
    403,
    "forbidden",
    (
        "El formulario caducó o no es de esta sesión. Vuelva a cargar la página e "
        "inténtelo otra vez.",
        "The form has expired or is not from this session. Reload the page and try again.",
    ),
    {"code": "csrf"},
)


async def csrf_guard(request: Request, services: ServicesDep) -> None:
    """On every POST of a page router: the form's (or htmx header's) token must match."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    expected: list[str] = []
    try:
        found = await optional_session(request, services)
    except SignInRequired:
        found = None
    if found is not None:
        expected.append(found.csrf)
    pre = request.cookies.get(PRE_COOKIE)
    if pre and len(pre) <= 64:
        expected.append(csrf_token(services.settings, "pre:" + pre))
    if not sent or not any(hmac.compare_digest(sent, e) for e in expected):
        if found is None and request.cookies.get(SESSION_COOKIE):
            raise SignInRequired(expired=True)  # the session ended: sign in again first
        raise CSRF_REFUSED


def page_router(**kwargs: object) -> APIRouter:
    """A router for pages: under /web, out of the OpenAPI document, CSRF-checked POSTs."""
    return APIRouter(
        prefix=PREFIX,
        include_in_schema=False,
        dependencies=[Depends(csrf_guard)],
        **kwargs,  # type: ignore[arg-type]
    )
