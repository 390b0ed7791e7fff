"""The web pages: server-rendered HTML beside the JSON routes, in the same app.

Pages call the same service functions as the JSON routes (``api.casework``, the audit and
handoff modules) with the principal of the browser's session (``api.web.session``), so the
authorization (``api.authz``) and the ledger entries are the same. Every page router is made
with :func:`api.web.session.page_router` (CSRF-checked POSTs) and registered in
:func:`install`. Errors on pages are pages: a :class:`api.problems.Problem` raised under
``/web/`` renders ``error.html`` with the same status and message, and a missing or expired
session redirects to the sign-in page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast
from urllib.parse import quote

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import TITLES, Problem
from api.web import render
from api.web.session import PREFIX, SignInRequired

Handler = Callable[[Request, Exception], Awaitable[Response]]


def _is_page_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def _is_page(request: Request) -> bool:
    return _is_page_path(request.url.path)


class PageHeaders:
    """Security headers on every page, and no caching of pages (static files a day).

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware``
    runs the rest of the app in a task of its own with memory streams, which cost more CPU per
    request than the route itself (bench/load.py, py-spy)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_page_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(PREFIX + "/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in render.SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if static:
                    headers.setdefault("Cache-Control", "public, max-age=86400")
                else:
                    headers["Cache-Control"] = render.NO_STORE
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error_page(
    request: Request, status: int, type_: str, detail: tuple[str, str] | None
) -> Response:
    title = TITLES.get(type_, TITLES["internal-error"])
    return render.render(request, "error.html", status=status, title_pair=title, detail=detail)


def install(app: FastAPI) -> None:
    """Mount the static files and the page routers; make errors under /web pages."""
    from api.web import committee, prosecutor, responders, signin

    app.mount(PREFIX + "/static", StaticFiles(directory=render.STATIC), name="web-static")
    app.include_router(signin.router)
    app.include_router(responders.router)
    app.include_router(committee.router)
    app.include_router(prosecutor.router)

    json_problem = cast(Handler, app.exception_handlers[Problem])
    json_http = cast(Handler, app.exception_handlers[StarletteHTTPException])

    async def on_problem(request: Request, exc: Exception) -> Response:
        if not _is_page(request):
            return await json_problem(request, exc)
        assert isinstance(exc, Problem)
        if exc.status == 401:
            return render.redirect(request, "/web/signin")
        return _error_page(request, exc.status, exc.type, exc.detail)

    async def on_http(request: Request, exc: Exception) -> Response:
        if not _is_page(request):
            return await json_http(request, exc)
        assert isinstance(exc, StarletteHTTPException)
        type_ = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "bad-request")
        return _error_page(request, exc.status_code, type_, None)

    async def on_sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        target = "/web/signin"
        params = []
        if request.method == "GET" and request.url.path not in (PREFIX, PREFIX + "/"):
            params.append("next=" + quote(request.url.path, safe="/"))
        if exc.expired:
            params.append("expired=1")
        if params:
            target += "?" + "&".join(params)
        return render.redirect(request, target)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(SignInRequired, on_sign_in)

    app.add_middleware(PageHeaders)
