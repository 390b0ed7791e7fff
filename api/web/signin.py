"""Signing in and out, the language switch and the quick exit.

Embedded default: users of ``eri users add`` sign in with the password set by
``eri users password`` or a one-time link printed by ``eri users link``. With ``ERI_OIDC_ISSUER``
set, sign-in goes through the provider (:mod:`api.web.oidc`) and the password form is not shown.
Every sign-in, refused sign-in and sign-out leaves a ledger entry.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from api.deps import Services, ServicesDep
from api.web import i18n, render, session
from api.web.oidc import CALLBACK, STATE_COOKIE, OidcClient, OidcError
from eri import ledger, users
from eri.auth import Principal, Role
from eri.db.models import User
from eri.ledger import Action, Outcome, Record

router = session.page_router(tags=["web"])


async def _record(services: Services, action: Action, principal: Principal | None) -> None:
    await ledger.append(
        services.sessions,
        Record(
            idempotency_key=f"web:{uuid.uuid4().hex}",
            action=action,
            outcome=Outcome.OK if principal is not None else Outcome.DENIED,
            actor_id=principal.actor_id if principal else None,
            actor_role=principal.role.value if principal else None,
            actor_institution=principal.institution if principal else None,
        ),
    )


def _principal(user: User) -> Principal:
    return Principal(
        subject=user.user_id,
        role=Role(user.role),
        institution=user.institution,
        groups=tuple(sorted(user.groups.split())),
    )


def _oidc(request: Request, services: Services) -> OidcClient | None:
    if not services.settings.oidc_issuer:
        return None
    client = getattr(request.app.state, "web_oidc", None)
    if client is None:
        client = OidcClient(services.settings)
        request.app.state.web_oidc = client
    assert isinstance(client, OidcClient)
    return client


def _base_url(request: Request, services: Services) -> str:
    configured = services.settings.web_public_url
    return (configured or str(request.base_url)).rstrip("/")


@router.get("")
@router.get("/")
async def home(request: Request, signed: session.MaybeSignedIn) -> Response:
    if signed is None:
        return render.redirect(request, "/web/signin")
    return render.redirect(request, render.home_for(signed.principal.role.value))


def _signin_page(
    request: Request,
    services: Services,
    *,
    next_path: str,
    message: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    response = Response()
    session.pre_session(request, response, services.settings)
    page = render.render(
        request,
        "signin.html",
        status=status,
        next_path=next_path,
        message=message,
        error=error,
        oidc=bool(services.settings.oidc_issuer),
    )
    for key, value in response.headers.items():
        if key.lower() == "set-cookie":
            page.headers.append("set-cookie", value)
    return page


@router.get("/signin")
async def signin_form(
    request: Request,
    services: ServicesDep,
    next: Annotated[str | None, Query(max_length=200)] = None,
    expired: bool = False,
    out: bool = False,
) -> Response:
    lang = i18n.lang(request)
    message = None
    if expired:
        message = i18n.t("signin.expired", lang)
    elif out:
        message = i18n.t("signin.signed_out", lang)
    return _signin_page(request, services, next_path=render.safe_next(next), message=message)


@router.post("/signin")
async def signin_password(
    request: Request,
    services: ServicesDep,
    name: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    next: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    if services.settings.oidc_issuer:
        return render.redirect(request, "/web/signin")
    user = await users.check_password(services.sessions, name.strip(), password)
    if user is None:
        await _record(services, Action.SIGNED_IN, None)
        lang = i18n.lang(request)
        return _signin_page(
            request,
            services,
            next_path=render.safe_next(next),
            error=i18n.t("signin.failed", lang),
            status=401,
        )
    return await _signed_in(request, services, _principal(user), render.safe_next(next))


async def _signed_in(
    request: Request, services: Services, principal: Principal, next_path: str
) -> Response:
    target = next_path if next_path != "/web/" else render.home_for(principal.role.value)
    response = render.redirect(request, target)
    await session.start(services, response, principal)
    await _record(services, Action.SIGNED_IN, principal)
    return response


@router.get("/signin/link")
async def signin_link_form(
    request: Request,
    services: ServicesDep,
    token: Annotated[str, Query(max_length=128)] = "",
) -> Response:
    """A link preview must not use the link up: the page asks for one tap, which POSTs."""
    response = Response()
    session.pre_session(request, response, services.settings)
    page = render.render(request, "signin_link.html", token=token)
    for key, value in response.headers.items():
        if key.lower() == "set-cookie":
            page.headers.append("set-cookie", value)
    return page


@router.post("/signin/link")
async def signin_link(
    request: Request,
    services: ServicesDep,
    token: Annotated[str, Form(max_length=128)],
) -> Response:
    user = await users.consume_link(services.sessions, token)
    if user is None:
        await _record(services, Action.SIGNED_IN, None)
        lang = i18n.lang(request)
        return _signin_page(
            request,
            services,
            next_path="/web/",
            error=i18n.t("signin.link_invalid", lang),
            status=401,
        )
    return await _signed_in(request, services, _principal(user), "/web/")


@router.post("/signout")
async def signout(request: Request, services: ServicesDep) -> Response:
    response = render.redirect(request, "/web/signin?out=1")
    who = await session.end(services, request, response)
    if who is not None:
        await _record(services, Action.SIGNED_OUT, who)
    return response


@router.get("/exit")
async def quick_exit(request: Request, services: ServicesDep) -> Response:
    """The quick exit: end the session, clear this site's cache, go to a neutral page."""
    response = RedirectResponse(services.settings.web_quick_exit_url, status_code=303)
    who = await session.end(services, request, response)
    if who is not None:
        await _record(services, Action.SIGNED_OUT, who)
    response.headers["Clear-Site-Data"] = '"cache", "storage"'
    return response


@router.get("/lang/{code}")
async def switch_language(
    request: Request,
    code: str,
    services: ServicesDep,
    next: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    response = render.redirect(request, render.safe_next(next))
    if code in i18n.LANGS:
        session.set_cookie(response, services.settings, i18n.LANG_COOKIE, code, 365 * 24 * 3600)
    return response


@router.get("/oidc/start")
async def oidc_start(
    request: Request,
    services: ServicesDep,
    next: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    client = _oidc(request, services)
    if client is None:
        return render.redirect(request, "/web/signin")
    try:
        url, cookie = await client.start(
            _base_url(request, services) + CALLBACK, render.safe_next(next)
        )
    except OidcError:
        return _oidc_failed(request, services)
    response = RedirectResponse(url, status_code=303)
    session.set_cookie(response, services.settings, STATE_COOKIE, cookie, 600)
    return response


def _oidc_failed(request: Request, services: Services) -> Response:
    lang = i18n.lang(request)
    return _signin_page(
        request,
        services,
        next_path="/web/",
        error=i18n.t("signin.oidc_failed", lang),
        status=401,
    )


@router.get("/oidc/callback")
async def oidc_callback(
    request: Request,
    services: ServicesDep,
    code: Annotated[str, Query(max_length=2048)] = "",
    state: Annotated[str, Query(max_length=256)] = "",
) -> Response:
    client = _oidc(request, services)
    if client is None or not code or not state:
        return render.redirect(request, "/web/signin")
    try:
        principal, next_path = await client.finish(
            code=code,
            state=state,
            cookie=request.cookies.get(STATE_COOKIE),
            redirect_uri=_base_url(request, services) + CALLBACK,
        )
    except OidcError:
        await _record(services, Action.SIGNED_IN, None)
        return _oidc_failed(request, services)
    response = await _signed_in(request, services, principal, render.safe_next(next_path))
    session.clear_cookie(response, services.settings, STATE_COOKIE)
    return response
