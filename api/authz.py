"""Authorization: who may do what, decided here and nowhere else.

Every route asks this module; denials are answered (403, or 404 where existence must not leak)
and recorded in the ledger by the caller through :func:`deny`.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.problems import Problem
from eri import ledger
from eri.auth import Principal, Role
from eri.ledger import Action, Outcome, Record

#: Roles that may see decoded Temporal payloads of cases in the Web UI, and only for cases of
#: protocols their institution belongs to (api/routes/codec.py checks the read model).
CASE_PAYLOAD_ROLES = frozenset({Role.COORDINATOR})
#: Roles that may see decoded payloads that belong to no case (operators debugging the system).
SYSTEM_PAYLOAD_ROLES = frozenset({Role.ADMIN, Role.COORDINATOR})


def may_decode_payloads(principal: Principal, case_ids: frozenset[str], system: bool) -> bool:
    if system and principal.role not in SYSTEM_PAYLOAD_ROLES:
        return False
    return not case_ids or principal.role in CASE_PAYLOAD_ROLES


async def deny(
    sessions: async_sessionmaker[AsyncSession],
    principal: Principal,
    *,
    what: str,
    case_ids: frozenset[str] = frozenset(),
    status: int = 403,
) -> Problem:
    """Record the denial (one ledger entry per case, or one without) and return the Problem."""
    request_key = uuid.uuid4().hex
    targets: list[str | None] = [*sorted(case_ids)] or [None]
    for case_id in targets:
        await ledger.append(
            sessions,
            Record(
                idempotency_key=f"deny:{request_key}:{case_id or '-'}",
                action=Action.ACCESS_DENIED,
                outcome=Outcome.DENIED,
                case_id=case_id,
                step_id=what,
                actor_id=principal.actor_id,
                actor_role=principal.role.value,
                actor_institution=principal.institution,
            ),
        )
    return Problem(
        status,
        "forbidden" if status == 403 else "not-found",
        ("No tiene permiso para esta acción.", "You are not allowed to do this."),
    )


# --- cases and tasks ------------------------------------------------------------------------
#
# Roles (eri.auth.Role) and what they reach here:
# - responder: tasks whose candidate groups include one of theirs (or assigned to them), and the
#   cases their institution takes part in (opened them, or named in a task's candidate groups);
# - coordinator: every case of the protocols their institution belongs to (their commission);
#   may reassign and act on any task of those cases;
# - committee: no case or task route at all (the audit routes serve them, without victim data);
# - prosecutor: only packages handed to them (the handoff routes), no case or task route;
# - admin: runs the system; no victim data.

#: Roles that may use the case and task routes at all.
CASEWORK_ROLES = frozenset({Role.RESPONDER, Role.COORDINATOR})


def may_use_casework(principal: Principal) -> bool:
    return principal.role in CASEWORK_ROLES


def protocol_member(principal: Principal, institutions: frozenset[str]) -> bool:
    """The principal's institution is one of the protocol's institutions."""
    return principal.institution_code in institutions


def may_open_case(principal: Principal, institutions: frozenset[str]) -> bool:
    return may_use_casework(principal) and protocol_member(principal, institutions)


def may_see_case(
    principal: Principal,
    *,
    protocol_institutions: frozenset[str],
    participating: frozenset[str],
) -> bool:
    """``participating``: institutions that opened the case or appear in its tasks' groups."""
    if principal.role is Role.COORDINATOR:
        return protocol_member(principal, protocol_institutions)
    if principal.role is Role.RESPONDER:
        return principal.institution_code in participating
    return False


def may_see_task(
    principal: Principal, *, groups: frozenset[str], assignee: str | None, case_visible: bool
) -> bool:
    if principal.role is Role.COORDINATOR:
        return case_visible
    if principal.role is Role.RESPONDER:
        return assignee == principal.actor_id or bool(groups & set(principal.groups))
    return False


def casework_denied_message() -> tuple[str, str]:
    return (
        "Su rol no da acceso a casos ni tareas.",
        "Your role gives no access to cases or tasks.",
    )


# --- the dashboard (counts, compliance, checkpoints; never victim data) ----------------------
#
# - committee: every protocol, every count suppressed below k (as the committee API);
# - coordinator: the protocols their institution belongs to; the live counts unsuppressed
#   (they see those cases and tasks anyway), the compliance report suppressed like everyone's.

#: Roles that may open the dashboard.
DASHBOARD_ROLES = frozenset({Role.COMMITTEE, Role.COORDINATOR})


def may_see_dashboard(principal: Principal) -> bool:
    return principal.role in DASHBOARD_ROLES


def dashboard_protocol(principal: Principal, institutions: frozenset[str]) -> bool:
    """Whether the dashboard shows this protocol (its institutions given) to the principal."""
    if principal.role is Role.COMMITTEE:
        return True
    return principal.role is Role.COORDINATOR and protocol_member(principal, institutions)


def dashboard_counts_suppressed(principal: Principal) -> bool:
    """Live counts of open cases and tasks are suppressed below k for all but coordinators."""
    return principal.role is not Role.COORDINATOR
