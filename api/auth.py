"""Authentication for every route: ``Authenticated`` yields the verified ``Principal``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.deps import ServicesDep
from api.problems import Problem
from eri.auth import Principal, TokenError

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="eri"'}


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401,
            "unauthorized",
            (
                "Falta el token (Authorization: Bearer …).",
                "Missing bearer token (Authorization: Bearer …).",
            ),
            headers=BEARER_CHALLENGE,
        )
    return token.strip()


async def current_principal(request: Request, services: ServicesDep) -> Principal:
    token = bearer_token(request)
    try:
        return services.verifier.verify(token)
    except TokenError as exc:
        raise Problem(401, "unauthorized", exc.message, headers=BEARER_CHALLENGE) from None


Authenticated = Annotated[Principal, Depends(current_principal)]
