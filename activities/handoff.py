"""Handoff activities: consent check, sealing, delivery, escalation, recall. All idempotent:
rows are written once per handoff id and every ledger entry has an idempotency key."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from eri import ledger
from eri.db.models import Handoff, HandoffInbox
from eri.handoff import service
from eri.handoff.evidence import EvidenceStore
from eri.handoff.keys import institution_key_from_settings
from eri.handoff.notices import make_recall
from eri.handoff.package import CaseRef, verify_package
from eri.handoff.policy import decide
from eri.handoff.service import Contents, HandoffError, Who
from eri.ledger import Action, Outcome, Record
from eri.notify import Channel
from eri.runtime import Runtime
from workflows.handoff import (
    Escalation,
    HandoffRequest,
    Prepared,
    RecallInput,
    SealInput,
    handoff_workflow_id,
)
from workflows.interpreter import CaseState

TIMEOUT = httpx.Timeout(30.0)


def _who(request: HandoffRequest) -> Who:
    r = request.requested_by
    return Who(r.actor_id, r.role, r.institution)


def _refuse(exc: HandoffError) -> ApplicationError:
    return ApplicationError(
        exc.code, {"es": exc.message[0], "en": exc.message[1]}, type="Rejection", non_retryable=True
    )


class HandoffActivities:
    def __init__(
        self,
        runtime: Runtime,
        channel: Channel,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._rt = runtime
        self._channel = channel
        self._transport = transport  # tests route to another deployment's app in-process
        self._evidence = EvidenceStore(
            runtime.keyring, runtime.sessions, max_bytes=runtime.settings.evidence_max_bytes
        )

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self._transport, timeout=TIMEOUT)

    @activity.defn(name="handoff_prepare")
    async def prepare(self, request: HandoffRequest) -> Prepared:
        """Read the case's facts, decide on consent or a legal basis, record the decision."""
        state = (
            await activity.client()
            .get_workflow_handle(request.case_id)
            .query("state", result_type=CaseState)
        )
        decision = decide(state.protocol_id, state.facts, request.legal_basis, request.reference)
        sessions = self._rt.sessions
        if not decision.allowed:
            await service.custody(
                sessions,
                request.handoff_id,
                f"refused:{decision.reason}",
                case_id=request.case_id,
                who=_who(request),
                outcome=Outcome.REJECTED,
                detail={"basis": decision.basis, "recipient": request.recipient_institution},
            )
            return Prepared(
                allowed=False,
                basis=decision.basis,
                reason=decision.reason,
                message=decision.message,
            )
        try:
            to = await service.recipient(sessions, request.recipient_institution)
        except HandoffError as exc:
            raise _refuse(exc) from None
        try:
            async with sessions.begin() as session:
                session.add(
                    Handoff(
                        handoff_id=request.handoff_id,
                        case_id=request.case_id,
                        purpose=request.purpose,
                        recipient_institution=request.recipient_institution,
                        recipient_key_id=to.key.key_id,
                        legal_basis=decision.basis,
                        status="created",
                        created_at=service.now(),
                        created_by=request.requested_by.actor_id,
                    )
                )
        except IntegrityError:
            pass  # a retry: the row exists
        await service.custody(
            sessions,
            request.handoff_id,
            f"created:{decision.basis}",
            case_id=request.case_id,
            who=_who(request),
            detail={"basis": decision.basis, "recipient": request.recipient_institution},
        )
        return Prepared(
            allowed=True,
            basis=decision.basis,
            facts=dict(state.facts),
            protocol_id=state.protocol_id,
            protocol_version=state.protocol_version,
            protocol_hash=state.protocol_hash,
        )

    @activity.defn(name="handoff_seal")
    async def seal(self, inp: SealInput) -> str:
        """Assemble the case's parts and seal them for the recipient; returns the package
        SHA-256 (the package itself stays in the database)."""
        request, prepared = inp.request, inp.prepared
        try:
            parts = await service.assemble_parts(
                self._rt.keyring,
                self._rt.sessions,
                self._evidence,
                request.case_id,
                request.handoff_id,
                Contents(prepared.facts, request.statements, request.evidence_ids),
            )
        except HandoffError as exc:
            raise _refuse(exc) from None
        verified = await service.seal_handoff(
            self._rt.sessions,
            request.handoff_id,
            parts,
            CaseRef(
                service.pseudonym(request.case_id, request.recipient_institution),
                prepared.protocol_id,
                prepared.protocol_version,
                prepared.protocol_hash,
            ),
            self._rt.settings.institution,
            institution_key_from_settings(self._rt.settings),
        )
        await service.custody(
            self._rt.sessions,
            request.handoff_id,
            "sealed",
            case_id=request.case_id,
            who=_who(request),
            detail={"package_sha256": verified.package_sha256},
        )
        return verified.package_sha256

    @activity.defn(name="handoff_deliver")
    async def deliver(self, request: HandoffRequest) -> str:
        sessions = self._rt.sessions
        async with sessions() as session:
            row = await session.get(Handoff, request.handoff_id)
        assert row is not None and row.package is not None
        to = await service.recipient(sessions, request.recipient_institution)
        if to.endpoint is None:  # a recipient of this deployment: its inbox
            own = institution_key_from_settings(self._rt.settings).public()
            await service.receive(
                sessions,
                row.package,
                [own],
                recipient_institution=request.recipient_institution,
                reply_to=handoff_workflow_id(request.case_id, request.handoff_id),
            )
            channel = "inbox"
        else:  # another ERI deployment: its inbound endpoint
            async with self._http() as client:
                response = await client.post(
                    to.endpoint.rstrip("/") + "/v1/handoffs/inbound",
                    content=row.package,
                    headers={"Content-Type": "application/vnd.eri.handoff"},
                )
            if 400 <= response.status_code < 500:
                raise ApplicationError(
                    "delivery_refused",
                    {"status": response.status_code},
                    type="Rejection",
                    non_retryable=True,
                )
            response.raise_for_status()
            channel = "peer"
        async with sessions.begin() as session:
            live = await session.get(Handoff, request.handoff_id)
            assert live is not None
            if live.status == "sealed":
                live.status = "delivered"
                live.delivered_at = service.now()
        await service.custody(
            sessions,
            request.handoff_id,
            "delivered",
            case_id=request.case_id,
            who=_who(request),
            detail={"channel": channel, "recipient": request.recipient_institution},
        )
        return channel

    @activity.defn(name="handoff_escalate")
    async def escalate(self, esc: Escalation) -> None:
        request = esc.request
        await service.custody(
            self._rt.sessions,
            request.handoff_id,
            "ack_overdue",
            case_id=request.case_id,
            outcome=Outcome.FAILED,
            detail={"rung": esc.rung},
            key_suffix=f":{esc.rung}",
            at=esc.due_at,
        )
        await ledger.append(
            self._rt.sessions,
            Record(
                idempotency_key=f"{request.handoff_id}:escalation:{esc.rung}",
                action=Action.ESCALATION,
                case_id=request.case_id,
                step_id="handoff.ack",
                deadline_status="late",
                detail_hash=ledger.detail_hash(
                    {"handoff_id": request.handoff_id, "rung": esc.rung}
                ),
                recorded_at=esc.due_at,
            ),
        )
        notice: dict[str, Any] = {
            "notice": "handoff_ack_overdue",
            "case_id": request.case_id,
            "handoff_id": request.handoff_id,
            "rung": esc.rung,
            "targets": [f"{request.requested_by.institution}:coordinator"],
        }
        await self._channel.send(f"{request.handoff_id}:escalation:{esc.rung}", notice)

    @activity.defn(name="handoff_recall")
    async def recall(self, inp: RecallInput) -> None:
        request, sessions = inp.request, self._rt.sessions
        async with sessions() as session:
            row = await session.get(Handoff, request.handoff_id)
        assert row is not None and row.package is not None
        to = await service.recipient(sessions, request.recipient_institution)
        if to.endpoint is None:
            async with sessions.begin() as session:
                inbox = await session.get(HandoffInbox, request.handoff_id)
                if inbox is not None and inbox.status not in ("delivered", "downloaded"):
                    raise ApplicationError(
                        "already_opened",
                        {"status": inbox.status},
                        type="Rejection",
                        non_retryable=True,
                    )
                if inbox is not None:
                    inbox.status = "recalled"
                    inbox.recalled_at = service.now()
        else:
            key = institution_key_from_settings(self._rt.settings)
            notice = make_recall(
                verify_package(row.package, [key.public()]), key, self._rt.settings.institution
            )
            async with self._http() as client:
                response = await client.post(
                    to.endpoint.rstrip("/") + f"/v1/handoffs/inbound/{request.handoff_id}/recall",
                    content=notice,
                    headers={"Content-Type": "application/json"},
                )
            if response.status_code == 409:
                raise ApplicationError("already_opened", {}, type="Rejection", non_retryable=True)
            response.raise_for_status()
        async with sessions.begin() as session:
            live = await session.get(Handoff, request.handoff_id)
            assert live is not None
            live.status = "recalled"
            live.recalled_at = service.now()
        await service.custody(
            sessions,
            request.handoff_id,
            "recalled",
            case_id=request.case_id,
            who=Who(inp.by.actor_id, inp.by.role, inp.by.institution),
        )
