"""Simulated responders driving cases through ERI's HTTP API (shared by the benches).

A responder does what a person at a phone does: read the task (form and ETag), claim it with
``If-Match``, complete it with valid form data; every state change carries its own
``Idempotency-Key`` and a retry (lost connection, 5xx, a restarting API, 409
request-in-progress) resends the same key, so a retry can never do a step twice. A
semaphore bounds how many responders work at once. ``think`` is the mean time (seconds,
exponential) a responder spends filling the form between claim and complete: 0 is a stress
test (every responder fires its next request at once), a person takes tens of seconds.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.stack import Member, Team, form_for
from tests.api.casework_support import GT_ADULT

#: Facts of the synthetic cases: the main path and the branches the protocols take.
VARIANTS: dict[str, dict[str, Any]] = {
    "adult": GT_ADULT,
    "minor": {**GT_ADULT, "minor": True, "family_involved": True},
    "high_risk": {**GT_ADULT, "risk_level": "high"},
    "foreign": {
        **GT_ADULT,
        "foreign_national": True,
        "consular_contact_agreed": True,
        "repatriation_requested": True,
        "cross_border": True,
    },
    "refused": {**GT_ADULT, "consent": "refused"},
}
RETRY_FOR = 180.0  # seconds a call keeps retrying (a restart of Temporal takes a few)


@dataclass
class Stats:
    latency: dict[str, list[float]] = field(default_factory=dict)  # kind -> seconds
    statuses: Counter[str] = field(default_factory=Counter)  # "kind status" -> count
    retries: int = 0
    server_errors: list[str] = field(default_factory=list)  # "kind status type"
    completions: int = 0
    first_at: float | None = None
    last_at: float | None = None

    def record(self, kind: str, seconds: float) -> None:
        self.latency.setdefault(kind, []).append(seconds)


@dataclass
class CaseRun:
    """What the client saw of one case: every accepted completion, in order."""

    case_id: str
    protocol_id: str
    variant: str
    done: list[tuple[str, str]] = field(default_factory=list)  # (task_id, step_id) answered 200
    closed: bool = False
    stuck: str | None = None  # why the driver stopped before closure


class Driver:
    def __init__(
        self,
        http: httpx.AsyncClient,
        teams: dict[str, Team],
        responders: int,
        stats: Stats,
        think: float = 0.0,
    ) -> None:
        self.think = think
        self.http = http
        self.teams = teams
        self.slots = asyncio.Semaphore(responders)
        self.stats = stats

    async def call(
        self,
        kind: str,
        method: str,
        url: str,
        member: Member,
        *,
        body: Any = None,
        extra: dict[str, str] | None = None,
        idempotent: bool = False,
    ) -> httpx.Response:
        headers = {**member.headers, **(extra or {})}
        if idempotent:
            headers["Idempotency-Key"] = "bench-" + uuid.uuid4().hex
        began = time.perf_counter()
        deadline = began + RETRY_FOR
        while True:
            try:
                response = await self.http.request(method, url, json=body, headers=headers)
            except httpx.TransportError:
                response = None
            if response is not None:
                self.stats.statuses[f"{kind} {response.status_code}"] += 1
                if response.status_code >= 500:
                    kind_of = response.headers.get("content-type", "")
                    self.stats.server_errors.append(f"{kind} {response.status_code} {kind_of}")
                retry = response.status_code >= 500 or (
                    response.status_code == 409 and "request-in-progress" in response.text
                )
                if not retry:
                    self.stats.record(kind, time.perf_counter() - began)
                    return response
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{kind}: no answer after {RETRY_FOR:.0f}s of retries")
            self.stats.retries += 1
            await asyncio.sleep(0.5 + random.random())  # noqa: S311 (jitter)

    async def open_case(self, protocol_id: str, variant: str) -> tuple[CaseRun, dict[str, Any]]:
        team = self.teams[protocol_id]
        async with self.slots:
            r = await self.call(
                "open",
                "POST",
                "/v1/cases",
                team.coordinator,
                body={"protocol_id": protocol_id, "facts": VARIANTS[variant], "intake": {}},
                idempotent=True,
            )
        if r.status_code != 201:
            raise RuntimeError(f"open: {r.status_code} {r.text[:300]}")
        view: dict[str, Any] = r.json()
        return CaseRun(view["case_id"], protocol_id, variant), view

    async def do_task(self, run: CaseRun, task: dict[str, Any]) -> dict[str, Any] | None:
        """GET, claim, complete one task; the new case view, or None if refused (recorded)."""
        team = self.teams[run.protocol_id]
        member = team.who_can(task["candidate_groups"])
        task_id = task["task_id"]
        async with self.slots:
            got = await self.call("get", "GET", f"/v1/tasks/{task_id}", member)
            if got.status_code != 200:
                run.stuck = f"get {got.status_code}"
                return None
            began = time.perf_counter()
            claimed = await self.call(
                "claim",
                "POST",
                f"/v1/tasks/{task_id}/claim",
                member,
                extra={"If-Match": got.headers["etag"]},
                idempotent=True,
            )
            if claimed.status_code != 200:
                run.stuck = f"claim {claimed.status_code} {claimed.text[:200]}"
                return None
            took = time.perf_counter() - began
            if self.think > 0:
                await asyncio.sleep(random.expovariate(1 / self.think))
            began = time.perf_counter()
            done = await self.call(
                "complete",
                "POST",
                f"/v1/tasks/{task_id}/complete",
                member,
                body={"form": form_for(got.json()["form"], facts=VARIANTS[run.variant])},
                extra={"If-Match": claimed.headers["etag"]},
                idempotent=True,
            )
            now = time.perf_counter()
            self.stats.record("claim+complete", took + now - began)  # the time spent waiting
        if done.status_code != 200:
            run.stuck = f"complete {done.status_code} {done.text[:200]}"
            return None
        run.done.append((task_id, task["step_id"]))
        self.stats.completions += 1
        self.stats.first_at = self.stats.first_at or now
        self.stats.last_at = now
        view: dict[str, Any] = done.json()
        return view

    async def run_case(
        self, protocol_id: str, variant: str, runs: list[CaseRun], max_tasks: int = 80
    ) -> CaseRun:
        """Open a case (added to ``runs``) and do its tasks, first open task first, until it
        closes."""
        run, view = await self.open_case(protocol_id, variant)
        runs.append(run)
        for _ in range(max_tasks):
            if view["closed"]:
                run.closed = True
                break
            if not view["open_tasks"]:
                run.stuck = "no open task (waiting on a timer)"
                break
            next_view = await self.do_task(run, view["open_tasks"][0])
            if next_view is None:
                break
            view = next_view
        else:
            run.stuck = f"not closed after {max_tasks} tasks"
        return run
