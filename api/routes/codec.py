"""The codec endpoint of the Temporal Web UI: decode (and encode) payloads for authorized people.

``POST /codec/decode`` and ``POST /codec/encode`` take and return ``{"payloads": [...]}`` in
Temporal's JSON form. Every call needs a verified bearer token (the UI passes its access token
with ``TEMPORAL_CODEC_PASS_ACCESS_TOKEN``); the payloads' key ids say which cases they belong
to, and :mod:`api.authz` decides per case. An unauthenticated or unauthorized call decodes
nothing, and every decode is recorded in the ledger (who looked at which case's payloads).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from api import authz
from api.auth import Authenticated
from api.deps import ServicesDep
from api.problems import Problem
from eri import ledger
from eri.auth import Principal
from eri.crypto.codec import CaseKeyCodec, payload_key_ids
from eri.crypto.errors import CryptoError, KeyShreddedError
from eri.crypto.keys import SYSTEM_KEY_ID, case_id_of_key
from eri.ledger import Action, Record

router = APIRouter(prefix="/codec", tags=["codec"])
MAX_BODY = 8 * 1024 * 1024

BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["payloads"],
                    "properties": {
                        "payloads": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "metadata": {
                                        "type": "object",
                                        "additionalProperties": {"type": "string"},
                                    },
                                    "data": {"type": "string"},
                                },
                            },
                        }
                    },
                }
            }
        },
    }
}


async def _payloads(request: Request) -> Payloads:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise Problem(413, "payload-too-large", ("Máximo 8 MiB.", "At most 8 MiB."))
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Problem(413, "payload-too-large", ("Máximo 8 MiB.", "At most 8 MiB."))
    try:
        return json_format.Parse(body, Payloads(), ignore_unknown_fields=True)
    except (json_format.ParseError, UnicodeDecodeError, ValueError):
        raise Problem(
            400,
            "bad-request",
            (
                'Se espera {"payloads": [...]} de Temporal.',
                'Expected Temporal\'s {"payloads": [...]}.',
            ),
        ) from None


def _answer(payloads: Payloads) -> JSONResponse:
    return JSONResponse(json_format.MessageToDict(payloads), headers={"Cache-Control": "no-store"})


async def _commission_cases(
    services: ServicesDep, principal: Principal, case_ids: frozenset[str]
) -> bool:
    """Every case already in the read model belongs to a protocol of the caller's commission.

    A case not yet projected (its opening failed before the first write) has no protocol on
    record; its payloads stay decodable by coordinators, as for any workflow of the namespace.
    """
    from api import casework
    from eri.db.models import CaseRow

    async with services.sessions() as session:
        for case_id in case_ids:
            row = await session.get(CaseRow, case_id)
            if row is None:
                continue
            protocol = casework.pinned_or_loaded(row.protocol_hash)
            if not authz.protocol_member(principal, casework.institutions_of(protocol)):
                return False
    return True


@router.post("/decode", summary="Decode payloads for the Temporal Web UI", openapi_extra=BODY_DOC)
async def decode(request: Request, principal: Authenticated, services: ServicesDep) -> JSONResponse:
    payloads = await _payloads(request)
    try:
        key_ids = payload_key_ids(payloads.payloads)
    except CryptoError:
        raise Problem(
            400, "bad-request", ("Carga cifrada mal formada.", "Malformed encrypted payload.")
        ) from None
    case_ids = frozenset(c for k in key_ids if (c := case_id_of_key(k)) is not None)
    system = SYSTEM_KEY_ID in key_ids
    if not authz.may_decode_payloads(principal, case_ids, system) or not await _commission_cases(
        services, principal, case_ids
    ):
        raise await authz.deny(services.sessions, principal, what="codec.decode", case_ids=case_ids)
    request_key = uuid.uuid4().hex
    for case_id in sorted(case_ids):
        await ledger.append(
            services.sessions,
            Record(
                idempotency_key=f"decode:{request_key}:{case_id}",
                action=Action.PAYLOAD_DECODED,
                case_id=case_id,
                actor_id=principal.actor_id,
                actor_role=principal.role.value,
                actor_institution=principal.institution,
            ),
        )
    codec = CaseKeyCodec(services.keyring, create_keys=False).restricted_to(key_ids)
    try:
        decoded = await codec.decode(payloads.payloads)
    except KeyShreddedError:
        raise  # 410 Gone (api.problems)
    except CryptoError:
        raise Problem(
            400,
            "bad-request",
            ("No se pudo descifrar la carga.", "The payload could not be decrypted."),
        ) from None
    return _answer(Payloads(payloads=decoded))


@router.post(
    "/encode",
    summary="Encode payloads (system key) for the Temporal Web UI",
    openapi_extra=BODY_DOC,
)
async def encode(request: Request, principal: Authenticated, services: ServicesDep) -> JSONResponse:
    payloads = await _payloads(request)
    if not authz.may_decode_payloads(principal, frozenset(), system=True):
        raise await authz.deny(services.sessions, principal, what="codec.encode")
    encoded = await CaseKeyCodec(services.keyring, create_keys=True).encode(payloads.payloads)
    return _answer(Payloads(payloads=encoded))
