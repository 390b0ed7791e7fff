"""Rendering pages: the Jinja2 environment, ``render()``, and the headers every page gets."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.web import i18n

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

#: No inline script or style, nothing from elsewhere; forms post to this origin only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
NO_STORE = "no-store"

env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def new_idempotency_key() -> str:
    """A fresh key for a form's hidden ``idem`` field (a double tap reuses it)."""
    return "web-" + uuid.uuid4().hex


def context(request: Request, extra: dict[str, Any]) -> dict[str, Any]:
    lang = i18n.lang(request)
    session = getattr(request.state, "web_session", None)
    words: dict[str, tuple[str, str]] = extra.get("words", {})
    return {
        "w": lambda key: i18n.pick(words[key], lang),
        "request": request,
        "lang": lang,
        "t": lambda key: i18n.t(key, lang),
        "pick": lambda pair: i18n.pick(pair, lang),
        "csrf": getattr(request.state, "csrf", ""),
        "principal": session.principal if session is not None else None,
        "path": request.url.path,
        "now": datetime.now(UTC),
        "nav": nav_for(session.principal.role.value if session is not None else None),
        **extra,
    }


#: Links of the top bar, per role: (path, message key). Other pages add theirs here.
NAV: dict[str, list[tuple[str, str]]] = {
    "responder": [("/web/inbox", "nav.inbox"), ("/web/cases/new", "nav.open_case")],
    "coordinator": [("/web/inbox", "nav.inbox"), ("/web/cases/new", "nav.open_case")],
}
#: Where "/web/" sends a signed-in user, per role (default: the inbox).
HOME: dict[str, str] = {}


def nav_for(role: str | None) -> list[tuple[str, str]]:
    return NAV.get(role or "", [])


def home_for(role: str) -> str:
    return HOME.get(role, "/web/inbox")


def render(
    request: Request,
    template: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> HTMLResponse:
    """The page ``template`` with the common context; ``Cache-Control: no-store`` always (the
    pages show victim data or who is signed in; nothing of them belongs in a cache)."""
    html = env.get_template(template).render(context(request, extra))
    response = HTMLResponse(html, status_code=status, headers=headers)
    response.headers["Content-Language"] = i18n.lang(request)
    return response


def redirect(request: Request, to: str) -> Response:
    """303 to a local path (htmx follows it and swaps the page it lands on)."""
    if not to.startswith("/") or to.startswith("//"):
        to = "/web/"
    return RedirectResponse(to, status_code=303)


def safe_next(value: str | None) -> str:
    """A post-sign-in target: a local page path only (never another origin)."""
    if value and value.startswith("/web/") and "//" not in value and "\\" not in value:
        return value
    return "/web/"
