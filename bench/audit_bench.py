"""The audit log at 1,000,000 entries: append rate, checkpoint, proofs, export and offline verify.

Run: ``.venv/bin/python bench/audit_bench.py [--entries N] [--appends A] [--database-url URL]``

1. ``ledger.append`` rate on a fresh database (each append: head lock, entry, Merkle leaf and
   the nodes it completes, one transaction);
2. the log is filled to N entries in bulk (entries and tree nodes written with the same code
   the verifier uses, :class:`eri.audit.merkle.Frontier`), then the append rate again at N;
3. signing a checkpoint at N, an inclusion and a consistency proof at N;
4. ``eri audit export`` of the N entries, then ``eri audit verify`` of the export in a fresh
   process (interpreter start included): signatures, N leaf hashes, roots, proofs.

SQLite by default (a file under a temporary directory); ``--database-url`` for PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, update  # noqa: E402

from eri import ledger  # noqa: E402
from eri.audit import leaf, log, merkle, tree  # noqa: E402
from eri.db import create_engine, session_factory, upgrade  # noqa: E402
from eri.db.models import AuditNode, LedgerEntry, LedgerHead  # noqa: E402
from eri.ledger import Action, Record  # noqa: E402
from eri.settings import Settings  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ACTIONS = ["case.opened", "task.opened", "task.claimed", "task.completed", "case.viewed"]


def row(seq: int) -> dict[str, object]:
    return {
        "seq": seq,
        "idempotency_key": f"bench:{seq:09d}",
        "recorded_at": T0 + timedelta(seconds=seq),
        "case_id": f"case_bench{seq // 20:07d}",
        "case_seq": seq % 20 + 1,
        "action": ACTIONS[seq % len(ACTIONS)],
        "protocol_id": "gt-eri",
        "protocol_version": "1.0.0",
        "step_id": "activation",
        "actor_id": "usr_bench0001",
        "actor_role": "coordinator",
        "actor_institution": "SVET",
        "outcome": "ok",
        "deadline_status": "on_time",
        "detail_hash": "ab" * 32,
    }


async def appends(sessions, start: int, count: int) -> float:  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    for i in range(count):
        await ledger.append(
            sessions,
            Record(
                idempotency_key=f"bench:append:{start + i:09d}",
                action=Action.CASE_VIEWED,
                case_id=f"case_benchappend{i % 50:03d}",
                actor_id="usr_bench0001",
                actor_role="coordinator",
                actor_institution="SVET",
            ),
        )
    return count / (time.perf_counter() - began)


async def append_ab(work: Path, rounds: int, count: int) -> tuple[float, float]:
    """Median append rate with and without the Merkle write, interleaved, each on its own fresh
    SQLite database (the ``without`` one never gets a tree; nothing reads it)."""
    dbs = {}
    for with_tree in (True, False):
        url = f"sqlite+aiosqlite:///{work / f'ab-{with_tree}.db'}"
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)
        dbs[with_tree] = (engine, session_factory(engine))
    real = tree.add_leaves

    async def skip(*_: object) -> None:
        return None

    rates: dict[bool, list[float]] = {True: [], False: []}
    try:
        for r in range(rounds):
            for with_tree in (True, False):
                tree.add_leaves = real if with_tree else skip  # type: ignore[assignment]
                rates[with_tree].append(await appends(dbs[with_tree][1], r * count, count))
    finally:
        tree.add_leaves = real  # type: ignore[assignment]
        for engine, _ in dbs.values():
            await engine.dispose()
    return statistics.median(rates[True]), statistics.median(rates[False])


async def bulk_fill(engine, sessions, target: int) -> float:  # type: ignore[no-untyped-def]
    """Fill the log to ``target`` entries: rebuild the frontier of what is there, then insert."""
    began = time.perf_counter()
    frontier = merkle.Frontier()
    async with sessions() as session:
        size = await tree.size(session)
        for entry in await ledger.entries(sessions):
            frontier.append(merkle.leaf_hash(leaf.encode(entry)))
    assert frontier.size == size
    chunk = 20_000
    seq = size
    while seq < target:
        rows = [row(s) for s in range(seq, min(target, seq + chunk))]
        nodes = []
        for r in rows:
            for (level, index), h in frontier.append(
                merkle.leaf_hash(leaf.encode(SimpleNamespace(**r)))
            ):  # type: ignore[arg-type]
                nodes.append({"level": level, "index": index, "hash": h})
        async with engine.begin() as conn:
            await conn.execute(insert(LedgerEntry.__table__), rows)
            await conn.execute(insert(AuditNode.__table__), nodes)
            await conn.execute(update(LedgerHead).values(size=seq + len(rows)))
        seq += len(rows)
    return time.perf_counter() - began


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="eri-audit-bench-"))
    url = args.database_url or f"sqlite+aiosqlite:///{work / 'audit.db'}"
    await asyncio.to_thread(upgrade, url)
    settings = Settings(data_dir=work, keys_dir=work / "keys", database_url=url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    backend = url.split(":", 1)[0]
    print(f"backend {backend}, {args.entries:,} entries, work dir {work}")
    try:
        fresh = await appends(sessions, 0, args.appends)
        print(f"append rate, fresh log:        {fresh:8.0f} /s")
        with_tree, without = await append_ab(work, 5, max(50, args.appends // 5))
        print(f"append A/B, with / without tree: {with_tree:6.0f} / {without:.0f} /s (median of 5)")
        filled = await bulk_fill(engine, sessions, args.entries)
        print(f"bulk fill to {args.entries:,}:       {filled:8.1f} s")
        at_n = await appends(sessions, args.appends, args.appends)
        print(f"append rate at {args.entries:,}:      {at_n:8.0f} /s")
        began = time.perf_counter()
        signed, _ = await log.checkpoint(sessions, settings)
        print(
            f"checkpoint at {signed.size:,}:       {(time.perf_counter() - began) * 1000:8.1f} ms"
        )
        timings = []
        async with sessions() as session:
            for i in range(50):
                began = time.perf_counter()
                await tree.inclusion_proof(session, (i * 7919) % signed.size, signed.size)
                await tree.consistency_proof(session, signed.size // 2 + i, signed.size)
                timings.append(time.perf_counter() - began)
        print(
            f"inclusion + consistency proof: {statistics.median(timings) * 1000:8.1f} ms (median)"
        )
        export = work / "export.jsonl"
        began = time.perf_counter()
        with export.open("wb") as fh:
            count = await log.export(sessions, fh)
        print(
            f"export {count:,} entries:       {time.perf_counter() - began:8.1f} s "
            f"({export.stat().st_size / 1e6:.0f} MB)"
        )
        key = log.log_verifier_key(settings).encode()
        runs, cpu = [], []
        for _ in range(args.rounds):
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            began = time.perf_counter()
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "eri.cli", "audit", "verify", str(export), "--key", key],
                cwd=ROOT,
                capture_output=True,
                text=True,
                env={**os.environ, "ERI_DATA_DIR": str(work)},
            )
            runs.append(time.perf_counter() - began)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime)
            assert done.returncode == 0, done.stdout + done.stderr
        print(done.stdout.strip())
        every = ", ".join(f"{r:.2f}" for r in runs)
        print(f"eri audit verify:              {min(runs):8.2f} s (best of {args.rounds}: {every})")
        print(f"eri audit verify, CPU time:    {min(cpu):8.2f} s (user + system, best)")
        print(f"load average during the run:   {os.getloadavg()[0]:8.2f}")
    finally:
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url")
    asyncio.run(main(parser.parse_args()))
