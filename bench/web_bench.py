"""The inbox page at 10,000 open cases: transfer size (gzip) and server time.

Run: ``.venv/bin/python bench/web_bench.py [--cases 10000] [--rounds 50] [--database-url URL]``

The read model (``cases``, ``tasks``, ``task_groups``) is seeded in bulk, as the case workflow's
activity writes it: every case of gt-eri open with 3 open tasks (steps of the protocol with their
real candidate groups, due times spread from 12 h late to 3 days ahead, one in ten claimed by the
responder). A responder of SVET (groups svet:psychologist, svet:social_worker) and a coordinator of
SVET sign in through a session row; ``GET /web/inbox`` is then served in process (the ASGI app
with its middleware, gzip included) with ``Accept-Encoding: gzip``. Server time is the request's
wall time in process (no network); the transfer size is the gzip body's bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from fastapi import Response
from sqlalchemy import insert, text

from api.app import create_app
from api.web import session as web_session
from eri.auth import Principal, Role
from eri.db import upgrade
from eri.db.models import CaseRow, TaskGroup, TaskRow
from eri.settings import Settings
from protocols.loader import load_protocol
from protocols.lock import content_hash

BATCH = 2000


async def seed(services: object, cases: int, responder: str) -> int:
    p = load_protocol("gt-eri")
    steps = [s for s in p.steps if s.responsible]
    phash = content_hash(p)
    now = datetime.now(UTC)
    rng = random.Random(7)  # noqa: S311 (synthetic spread of due times, not a secret)
    sessions = services.sessions  # type: ignore[attr-defined]
    case_rows, task_rows, group_rows = [], [], []
    tasks = 0

    async def flush() -> None:
        async with sessions.begin() as s:
            if case_rows:
                await s.execute(insert(CaseRow), case_rows)
            if task_rows:
                await s.execute(insert(TaskRow), task_rows)
            if group_rows:
                await s.execute(insert(TaskGroup), group_rows)
        case_rows.clear()
        task_rows.clear()
        group_rows.clear()

    for n in range(cases):
        case_id = f"case_bench{n:010d}"
        case_rows.append(
            {
                "case_id": case_id,
                "protocol_id": p.id,
                "protocol_version": p.version,
                "protocol_hash": phash,
                "country": p.country,
                "status": "open",
                "opened_at": now - timedelta(days=rng.randint(0, 30)),
                "opened_by_institution": "svet",
                "revision": 5,
            }
        )
        for step in rng.sample(steps, 3):
            task_id = f"task_{case_id[5:]}.{step.id}.1"
            due = now + timedelta(minutes=rng.randint(-12 * 60, 3 * 24 * 60))
            task_rows.append(
                {
                    "task_id": task_id,
                    "case_id": case_id,
                    "protocol_id": p.id,
                    "protocol_version": p.version,
                    "step_id": step.id,
                    "occurrence": 1,
                    "status": "open",
                    "assignee": responder if rng.random() < 0.1 else None,
                    "opened_at": now - timedelta(hours=rng.randint(1, 48)),
                    "due_at": due,
                    "closed_at": None,
                    "deadline_missed": due < now,
                    "rungs_fired": 0,
                    "revision": 1,
                }
            )
            group_rows.extend({"task_id": task_id, "group_name": g} for g in step.responsible)
            tasks += 1
        if len(case_rows) >= BATCH:
            await flush()
    await flush()
    async with sessions.begin() as s:
        if s.bind.dialect.name == "postgresql":
            await s.execute(text("ANALYZE"))  # a live database has statistics; fresh bulk rows not
    return tasks


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="eri-web-bench-"))
    url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'eri.db'}"
    await asyncio.to_thread(upgrade, url)
    settings = Settings(data_dir=tmp, database_url=url, log_level="WARNING")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        services = app.state.services
        responder = Principal(
            "usr_benchresp", Role.RESPONDER, "svet", ("svet:psychologist", "svet:social_worker")
        )
        coordinator = Principal(
            "usr_benchcoord", Role.COORDINATOR, "svet", ("svet:eri_coordinator",)
        )
        started = time.perf_counter()
        tasks = await seed(services, args.cases, responder.actor_id)
        print(
            f"seeded {args.cases:,} open cases, {tasks:,} open tasks "
            f"in {time.perf_counter() - started:.1f} s ({url.split(':')[0]})"
        )
        transport = httpx.ASGITransport(app=app)
        for who, principal in (("responder", responder), ("coordinator", coordinator)):
            dummy = Response()
            await web_session.start(services, dummy, principal)
            cookie = dummy.headers["set-cookie"].split(";")[0]
            headers = {"Cookie": cookie, "Accept-Encoding": "gzip", "Accept-Language": "es"}
            async with httpx.AsyncClient(transport=transport, base_url="http://eri.test") as c:
                times, sizes, raw = [], [], []
                for i in range(args.rounds + 3):
                    t0 = time.perf_counter()
                    r = await c.get("/web/inbox", headers=headers)
                    elapsed = time.perf_counter() - t0
                    assert r.status_code == 200, r.status_code
                    assert r.headers.get("content-encoding") == "gzip"
                    if i >= 3:  # warm-up: templates compiled, caches filled
                        times.append(elapsed)
                        sizes.append(r.num_bytes_downloaded)
                        raw.append(len(r.content))
            items = r.text.count("<li>")
            times.sort()
            gzip_kib = statistics.median(sizes) / 1024
            print(
                f"{who:11s} inbox: {items} tasks shown, gzip {gzip_kib:.1f} KiB "
                f"(html {statistics.median(raw) / 1024:.1f} KiB); server time median "
                f"{statistics.median(times) * 1000:.1f} ms, p95 "
                f"{times[int(len(times) * 0.95) - 1] * 1000:.1f} ms over {len(times)} requests"
            )


if __name__ == "__main__":
    asyncio.run(main())
