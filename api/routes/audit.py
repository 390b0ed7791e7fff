"""The committee API: the audit log, its proofs and checkpoints, compliance reports, and the
access history of a case.

Everything here is PII-free by construction: ledger entries hold only opaque ids and codes
(:mod:`eri.ledger`), reports only counts, durations and shares (suppressed below k). Committee
and admin roles read the log and reports; coordinators (and admins) read a case's access history.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import select

from api import authz, casework
from api.auth import Authenticated
from api.deps import ServicesDep
from api.problems import Problem
from eri.audit import leaf, log, merkle, report, tree
from eri.auth import Principal, Role
from eri.db.models import LedgerEntry
from eri.ledger import CASE_ID, Action

router = APIRouter(prefix="/audit", tags=["audit"])

#: Who may read what (the lead may move these into api.authz).
AUDIT_ROLES = frozenset({Role.COMMITTEE, Role.ADMIN})
ACCESS_HISTORY_ROLES = frozenset({Role.COORDINATOR, Role.ADMIN})
ACCESS_ACTIONS = (Action.CASE_VIEWED, Action.PAYLOAD_DECODED, Action.ACCESS_DENIED)
MAX_ENTRIES = 1000
MAX_PERIOD = timedelta(days=3660)
NO_STORE = {"Cache-Control": "no-store"}


async def _allow(
    services: ServicesDep,
    principal: Principal,
    roles: frozenset[Role],
    what: str,
    case_ids: frozenset[str] = frozenset(),
) -> None:
    """The one authorization check of this router: deny (403, recorded) outside ``roles``."""
    if principal.role not in roles:
        raise await authz.deny(services.sessions, principal, what=what, case_ids=case_ids)


def _bad(es: str, en: str) -> Problem:
    return Problem(400, "bad-request", (es, en))


def _period(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=30)
    if start.tzinfo is None or end.tzinfo is None:
        raise _bad(
            "Las fechas llevan zona horaria (p. ej. 2026-01-01T00:00:00Z).",
            "Dates need a time zone (e.g. 2026-01-01T00:00:00Z).",
        )
    if not start < end or end - start > MAX_PERIOD:
        raise _bad(
            "El periodo va de 'from' a 'to' (posterior), a lo sumo 10 años.",
            "The period runs from 'from' to a later 'to', at most 10 years.",
        )
    return start, end


def _entry(e: LedgerEntry) -> dict[str, Any]:
    """The entry's fields as its leaf holds them, with the leaf hash (for inclusion proofs)."""
    encoded = leaf.encode(e)
    return {**leaf.decode(encoded), "leaf_hash": merkle.leaf_hash(encoded).hex()}


From = Annotated[datetime | None, Query(alias="from")]
To = Annotated[datetime | None, Query(alias="to")]


@router.get("/entries")
async def entries(
    principal: Authenticated,
    services: ServicesDep,
    case: Annotated[str | None, Query(pattern=CASE_ID)] = None,
    start: From = None,
    end: To = None,
    after: Annotated[int, Query(ge=-1)] = -1,
    limit: Annotated[int, Query(ge=1, le=MAX_ENTRIES)] = 200,
) -> JSONResponse:
    """Ledger entries of one case (pseudonym) or of a time range, by ``seq``, paged by ``after``."""
    await _allow(services, principal, AUDIT_ROLES, "audit.entries")
    query = (
        select(LedgerEntry).where(LedgerEntry.seq > after).order_by(LedgerEntry.seq).limit(limit)
    )
    if case is not None:
        query = query.where(LedgerEntry.case_id == case)
    if case is None or start is not None or end is not None:
        lo, hi = _period(start, end)
        query = query.where(LedgerEntry.recorded_at >= lo, LedgerEntry.recorded_at < hi)
    async with services.sessions() as session:
        rows = [_entry(e) for e in (await session.execute(query)).scalars()]
        size = await tree.size(session)
    return JSONResponse({"tree_size": size, "entries": rows}, headers=NO_STORE)


def _b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


async def _size_or_latest(services: ServicesDep, size: int | None) -> int:
    async with services.sessions() as session:
        current = await tree.size(session)
    if size is None:
        latest = await log.latest(services.sessions)
        return latest.size if latest is not None else current
    if size > current:
        raise _bad(f"El registro tiene {current} entradas.", f"The log has {current} entries.")
    return size


@router.get("/proofs/inclusion")
async def inclusion_proof(
    principal: Authenticated,
    services: ServicesDep,
    index: Annotated[int, Query(ge=0)],
    size: Annotated[int | None, Query(ge=1)] = None,
) -> JSONResponse:
    """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` (default: the
    latest checkpoint's), with the entry's leaf hash and the root it verifies against."""
    await _allow(services, principal, AUDIT_ROLES, "audit.proofs")
    tree_size = await _size_or_latest(services, size)
    if index >= tree_size:
        raise _bad(
            f"La entrada {index} no está en un árbol de {tree_size}.",
            f"Entry {index} is not in a tree of size {tree_size}.",
        )
    async with services.sessions() as session:
        proof = await tree.inclusion_proof(session, index, tree_size)
        root = await tree.root(session, tree_size)
        (leaf_hash,) = (await tree.fetch(session, [(0, index)])).values()
    return JSONResponse(
        {
            "index": index,
            "tree_size": tree_size,
            "leaf_hash": base64.b64encode(leaf_hash).decode(),
            "root_hash": base64.b64encode(root).decode(),
            "proof": _b64(proof),
        }
    )


@router.get("/proofs/consistency")
async def consistency_proof(
    principal: Authenticated,
    services: ServicesDep,
    first: Annotated[int, Query(ge=0)],
    second: Annotated[int | None, Query(ge=0)] = None,
) -> JSONResponse:
    """RFC 9162 consistency proof from tree size ``first`` to ``second`` (default: latest
    checkpoint's size)."""
    await _allow(services, principal, AUDIT_ROLES, "audit.proofs")
    tree_size = await _size_or_latest(services, second)
    if first > tree_size:
        raise _bad("'first' no puede ser mayor que 'second'.", "'first' cannot exceed 'second'.")
    async with services.sessions() as session:
        proof = await tree.consistency_proof(session, first, tree_size)
        roots = [await tree.root(session, n) for n in (first, tree_size)]
    return JSONResponse(
        {
            "first": first,
            "second": tree_size,
            "first_root_hash": base64.b64encode(roots[0]).decode(),
            "second_root_hash": base64.b64encode(roots[1]).decode(),
            "proof": _b64(proof),
        }
    )


@router.get("/checkpoint", response_class=PlainTextResponse)
async def latest_checkpoint(principal: Authenticated, services: ServicesDep) -> Response:
    """The latest signed checkpoint with its witness cosignatures (C2SP signed note)."""
    await _allow(services, principal, AUDIT_ROLES, "audit.checkpoint")
    latest = await log.latest(services.sessions)
    if latest is None:
        raise Problem(404, "not-found", ("Aún no hay checkpoint.", "No checkpoint yet."))
    return PlainTextResponse(latest.note, headers={"Cache-Control": "no-cache"})


@router.post("/checkpoint/cosignatures", status_code=201)
async def cosign_checkpoint(
    request: Request, principal: Authenticated, services: ServicesDep
) -> JSONResponse:
    """Submit a checkpoint cosigned with ``eri audit cosign`` (text/plain signed note). Only
    cosignatures by configured witness keys (``ERI_AUDIT_WITNESSES``) that verify are kept."""
    await _allow(services, principal, AUDIT_ROLES, "audit.cosign")
    body = await request.body()
    if len(body) > 16_384:
        raise Problem(413, "payload-too-large", ("Máximo 16 KiB.", "At most 16 KiB."))
    try:
        names = await log.add_cosignatures(services.sessions, services.settings, body.decode())
    except (log.CosignatureError, UnicodeDecodeError):
        raise Problem(
            422,
            "validation-error",
            (
                "No es un checkpoint de este registro con una cofirma válida de un testigo "
                "configurado.",
                "Not a checkpoint of this log with a valid cosignature by a configured witness.",
            ),
        ) from None
    return JSONResponse({"stored": names}, status_code=201)


@router.get("/reports/compliance", response_model=None)
async def compliance_report(
    principal: Authenticated,
    services: ServicesDep,
    start: From = None,
    end: To = None,
    format: Literal["json", "csv"] = "json",
) -> Response:
    """Compliance per protocol, step and institution over ``[from, to)``, suppressed below
    ``k`` (``ERI_AUDIT_K``). CSV gives the task table (``table=cases`` is in the JSON)."""
    await _allow(services, principal, AUDIT_ROLES, "audit.reports")
    lo, hi = _period(start, end)
    result = await report.compliance(services.sessions, lo, hi, services.settings.audit_k)
    if format == "csv":
        return Response(
            report.to_csv(result["tasks"]),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="eri-compliance.csv"'},
        )
    return JSONResponse(result)


@router.get("/reports/compliance.svg", response_model=None)
async def compliance_chart(
    principal: Authenticated, services: ServicesDep, start: From = None, end: To = None
) -> Response:
    """Share of tasks completed within the deadline, per institution (SVG)."""
    await _allow(services, principal, AUDIT_ROLES, "audit.reports")
    lo, hi = _period(start, end)
    result = await report.compliance(services.sessions, lo, hi, services.settings.audit_k)
    return Response(report.compliance_svg(result), media_type="image/svg+xml")


@router.get("/cases/{case_id}/access")
async def access_history(
    case_id: Annotated[str, Path(pattern=CASE_ID)], principal: Authenticated, services: ServicesDep
) -> JSONResponse:
    """Who viewed this case: its case.viewed, payload.decoded and access.denied entries.

    Coordinators see the history of the cases they may see (their commission's protocols, as
    :func:`api.casework.case_access` decides); admins, of any case."""
    await _allow(services, principal, ACCESS_HISTORY_ROLES, "audit.access", frozenset({case_id}))
    if principal.role is Role.COORDINATOR:  # only cases of their commission (404 otherwise)
        await casework.case_access(services, principal, case_id, "audit.access")
    query = (
        select(LedgerEntry)
        .where(LedgerEntry.case_id == case_id, LedgerEntry.action.in_(ACCESS_ACTIONS))
        .order_by(LedgerEntry.seq)
    )
    async with services.sessions() as session:
        rows = list((await session.execute(query)).scalars())
    return JSONResponse(
        {
            "case_id": case_id,
            "accesses": [
                {
                    "seq": e.seq,
                    "at": leaf.timestamp(e.recorded_at),
                    "action": e.action,
                    "outcome": e.outcome,
                    "what": e.step_id,
                    "actor_id": e.actor_id,
                    "actor_role": e.actor_role,
                    "actor_institution": e.actor_institution,
                }
                for e in rows
            ],
        },
        headers=NO_STORE,
    )
