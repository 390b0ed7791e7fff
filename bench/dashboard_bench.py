"""Server time and transfer size of the committee dashboard at 10,000 open cases.

Run: ``.venv/bin/python bench/dashboard_bench.py [--cases N] [--database-url URL] [--rounds R]``

Fills a fresh, migrated database (a SQLite file by default) with N open gt-eri cases in the
read model (3 open tasks each: 20 % past their deadline, 10 % escalated) and, in the ledger,
each case's ``case.opened`` and 10 tasks opened and completed over the last 6 months by 8
institutions (21 entries per case; bulk-inserted rows, so the Merkle tree is not built: the
dashboard reads only the entries). Then, median of R rounds:

- ``dashboard.build`` for a committee member (every protocol, suppressed) and a coordinator
  (their protocol), 6 months: the first view (cold) and the later ones (the finished months'
  reports cached);
- ``GET /web/dashboard`` through the ASGI app with a web session, ``Accept-Encoding: gzip``:
  the server time and the bytes on the wire.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from fastapi import Response
from sqlalchemy import func, insert, select

from api import casework, dashboard
from api.app import create_app
from api.deps import Services
from api.web import session
from eri.auth import Principal, Role
from eri.db import upgrade
from eri.db.models import CaseRow, LedgerEntry, TaskRow
from eri.settings import Settings
from protocols.lock import content_hash

INSTITUTIONS = ["SVET", "PGN", "MP", "PNC", "SBS", "MINEX", "IGM", "PDH"]
STEPS = ["eri_activation", "identification", "immediate_safety", "risk_assessment"]
COMMITTEE = Principal("usr_comibench", Role.COMMITTEE, "CIT")
COORDINATOR = Principal("usr_coorbench", Role.COORDINATOR, "SVET")


async def fill(services: Services, cases: int, now: datetime) -> int:
    gt = casework.protocol("gt-eri")
    digest = content_hash(gt)
    rng = random.Random(7)  # noqa: S311 (synthetic figures, not secrets)
    seq = 0
    async with services.sessions.begin() as db:
        for start in range(0, cases, 1000):
            case_rows: list[dict[str, object]] = []
            task_rows: list[dict[str, object]] = []
            entries: list[dict[str, object]] = []
            for n in range(start, min(cases, start + 1000)):
                case_id = f"case_bench{n:08d}"
                opened = now - timedelta(days=rng.uniform(1, 180))
                case_rows.append(
                    {
                        "case_id": case_id,
                        "protocol_id": gt.id,
                        "protocol_version": gt.version,
                        "protocol_hash": digest,
                        "country": "GT",
                        "status": "open",
                        "opened_at": opened,
                        "opened_by_institution": rng.choice(INSTITUTIONS).lower(),
                        "revision": 1,
                    }
                )
                for t, step in enumerate(STEPS[1:]):
                    missed = rng.random() < 0.2
                    task_rows.append(
                        {
                            "task_id": f"{case_id}:{step}:{t}",
                            "case_id": case_id,
                            "protocol_id": gt.id,
                            "protocol_version": gt.version,
                            "step_id": step,
                            "occurrence": 1,
                            "status": "open",
                            "opened_at": opened,
                            "due_at": opened + timedelta(hours=12),
                            "deadline_missed": missed,
                            "rungs_fired": 1 if missed and rng.random() < 0.5 else 0,
                            "revision": 1,
                        }
                    )
                common = {
                    "case_id": case_id,
                    "protocol_id": gt.id,
                    "protocol_version": gt.version,
                    "outcome": "ok",
                }
                case_seq = 0

                def entry(
                    action: str,
                    at: datetime,
                    out: list[dict[str, object]] = entries,
                    base: dict[str, object] = common,
                    **fields: object,
                ) -> None:
                    nonlocal seq, case_seq
                    out.append(
                        {
                            "seq": seq,
                            "idempotency_key": f"bench:{seq}",
                            "recorded_at": at,
                            "case_seq": case_seq,
                            "action": action,
                            **base,
                            **fields,
                        }
                    )
                    seq += 1
                    case_seq += 1

                entry("case.opened", opened, actor_institution=rng.choice(INSTITUTIONS))
                at = opened
                for k in range(10):
                    step = f"{STEPS[k % len(STEPS)]}"
                    entry("task.opened", at, step_id=step)
                    at += timedelta(hours=rng.uniform(0.5, 20))
                    entry(
                        "task.completed",
                        min(at, now - timedelta(minutes=1)),
                        step_id=step,
                        actor_id="usr_bench0001",
                        actor_role="responder",
                        actor_institution=rng.choice(INSTITUTIONS),
                        deadline_status="on_time" if rng.random() < 0.85 else "late",
                    )
            await db.execute(insert(CaseRow), case_rows)
            await db.execute(insert(TaskRow), task_rows)
            await db.execute(insert(LedgerEntry), entries)
    return seq


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.0f} ms"


async def main(cases: int, database_url: str | None, rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="eri-dash-bench-"))
    url = database_url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    await asyncio.to_thread(upgrade, url)
    settings = Settings(data_dir=tmp, keys_dir=tmp / "keys", database_url=url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        services = app.state.services
        now = datetime.now(UTC)
        async with services.sessions() as db:
            present = (await db.execute(select(func.count()).select_from(CaseRow))).scalar_one()
        if present >= cases:  # a database filled by an earlier run (--database-url)
            print(f"reusing {present} cases")
        else:
            started = time.perf_counter()
            entries = await fill(services, cases, now)
            took = time.perf_counter() - started
            print(f"filled {cases} cases, {entries} ledger entries in {took:.1f} s")
        for who, principal in (("committee", COMMITTEE), ("coordinator", COORDINATOR)):
            samples = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                view = await dashboard.build(
                    services, principal, protocol_id=None, month_count=6, lang="es"
                )
                samples.append(time.perf_counter() - t0)
            print(
                f"dashboard.build {who}: first {samples[0] * 1000:.0f} ms, then "
                f"{median_ms(samples[1:] or samples)} ({len(view.panels)} panels)"
            )
            dashboard._FINISHED.pop(services.sessions, None)  # the next viewer starts cold
        response = Response()
        await session.start(services, response, COMMITTEE)
        name, _, value = response.headers["set-cookie"].split(";", 1)[0].partition("=")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://eri.bench") as http:
            http.cookies.set(name, value)
            samples, sizes = [], []
            for _ in range(rounds):
                t0 = time.perf_counter()
                async with http.stream(
                    "GET", "/web/dashboard", headers={"Accept-Encoding": "gzip"}
                ) as r:
                    raw = b"".join([chunk async for chunk in r.aiter_raw()])
                samples.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.status_code
                sizes.append(len(raw))
            encoding = r.headers.get("content-encoding", "identity")
            print(
                f"GET /web/dashboard (committee): {median_ms(samples)}, "
                f"{sizes[-1] / 1024:.1f} KiB on the wire ({encoding})"
            )
    print(f"database: {url.split('://')[0]}  run {uuid.uuid4().hex[:6]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--database-url")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.cases, args.database_url, args.rounds))
