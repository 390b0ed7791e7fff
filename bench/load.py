"""Load generator: N concurrent synthetic cases through ERI's HTTP API, with a bare baseline.

Run: ``.venv/bin/python bench/load.py --cases 100 [--responders 20] [--faults]
[--baseline/--no-baseline] [--max-seconds 900] [--database-url URL] [--json FILE]``
or against a running ERI: ``ERI_...=... .venv/bin/python bench/load.py --url http://...``
(users and tokens are minted in the database that the ``ERI_*`` environment names).

- Brings up ERI on the embedded default on free ports (bench/stack.py: the Temporal dev server
  with ERI's flags, ``eri worker``, ``eri api``), or uses ``--url``.
- Mints a team per protocol (``eri/users.py``): one coordinator, one responder per institution.
- Opens ``--cases`` cases at once, with facts spread over the protocols' main path and
  branches (bench/drive.py VARIANTS), and drives each to closure: the first open task is read,
  claimed and completed with valid form data by a responder of its groups; at most
  ``--responders`` people work at once. ``--think S``: each spends S seconds on average on a
  form between claim and complete (default 0: a stress test with no pause at all).
- Prints progress every 5 s; reports cases per minute, task completions per second, claim,
  complete and claim+complete latency (p50/p95/p99), CPU seconds and peak RSS of the API,
  worker and Temporal server, and Temporal history events per case.
- ``--baseline``: on the same server, the bare workflow of bench/bare.py with the same number
  of workflows, updates per workflow and concurrency; ERI's update rate as a share of it.
- ``--faults``: kill -9 the worker, the API and the Temporal server in turn during the load
  (restarting each), then check every case against its workflow and the ledger, and run
  ``eri audit verify`` on an export.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import select  # noqa: E402
from temporalio.client import Client, WorkflowHandle  # noqa: E402

from api.casework import protocols  # noqa: E402
from bench import bare  # noqa: E402
from bench.drive import VARIANTS, CaseRun, Driver, Stats  # noqa: E402
from bench.stack import Managed, Stack, load_average, make_team, percentile  # noqa: E402
from eri import temporal  # noqa: E402
from eri.db.models import LedgerEntry  # noqa: E402
from eri.runtime import open_runtime  # noqa: E402
from eri.settings import Settings  # noqa: E402
from workflows.case import CaseWorkflow  # noqa: E402
from workflows.interpreter import CaseState  # noqa: E402


def trio(values: list[float]) -> str:
    return "/".join(f"{percentile(values, q) * 1000:.0f}" for q in (50, 95, 99))


async def progress(stats: Stats, runs: list[CaseRun], total: int, began: float) -> None:
    while True:
        await asyncio.sleep(5)
        elapsed = time.perf_counter() - began
        closed = sum(r.closed for r in runs)
        print(
            f"  {elapsed:6.0f}s  cases closed {closed}/{total}  tasks done {stats.completions}"
            f"  ({stats.completions / elapsed:.1f}/s)  retries {stats.retries}"
            f"  load {load_average()}",
            flush=True,
        )


async def inject_faults(
    stack: Stack, stats: Stats, expected: int, log: list[dict[str, Any]]
) -> None:
    """kill -9 the worker, the API and the Temporal server in turn, at 20/45/70 % of the load."""
    order: list[Managed] = [stack.worker, stack.api, stack.temporal]
    for share, proc in zip((0.20, 0.45, 0.70), order, strict=True):
        while stats.completions < expected * share:  # noqa: ASYNC110 (a counter, polled)
            await asyncio.sleep(0.2)
        at = stats.completions
        took = await stack.restart(proc)
        log.append({"killed": proc.name, "at_completions": at, "back_after_s": round(took, 1)})
        print(
            f"  FAULT kill -9 {proc.name} at {at} completions; ready again after {took:.1f}s",
            flush=True,
        )


async def history_events(client: Client, case_ids: list[str]) -> list[int]:
    counts = []
    for case_id in case_ids:
        history = await client.get_workflow_handle(case_id).fetch_history()
        counts.append(len(history.events))
    return counts


async def check_cases(settings: Settings, runs: list[CaseRun]) -> dict[str, Any]:
    """Every case as the client saw it against its workflow's state and the ledger."""
    anomalies: list[str] = []
    async with open_runtime(settings) as rt:
        client = await temporal.connect(settings, rt.keyring)
        async with rt.sessions() as session:
            rows = (
                await session.execute(
                    select(LedgerEntry.case_id, LedgerEntry.step_id, LedgerEntry.action).where(
                        LedgerEntry.action.in_(["task.completed", "case.closed", "case.opened"])
                    )
                )
            ).all()
        ledger: dict[str, Counter[tuple[str, str | None]]] = {}
        for case_id, step_id, action in rows:
            ledger.setdefault(case_id or "", Counter())[(action, step_id)] += 1
        for run in runs:
            handle: WorkflowHandle[Any, Any] = client.get_workflow_handle_for(
                CaseWorkflow.run, run.case_id
            )
            state: CaseState = await handle.query(CaseWorkflow.state)
            seen = Counter(step for _, step in run.done)
            done_in_state = Counter(
                t.step_id for t in state.tasks.values() if t.status == "completed"
            )
            for task_id, _ in run.done:
                task = state.tasks.get(task_id)
                if task is None or task.status != "completed":
                    anomalies.append(f"{run.case_id}: accepted completion of a task not completed")
            if seen != done_in_state:
                anomalies.append(
                    f"{run.case_id}: completions seen {dict(seen)} != state {dict(done_in_state)}"
                )
            if run.closed != state.closed:
                anomalies.append(
                    f"{run.case_id}: client closed={run.closed}, workflow {state.closed}"
                )
            entries = ledger.get(run.case_id, Counter())
            in_ledger = Counter(
                {step: n for (action, step), n in entries.items() if action == "task.completed"}
            )
            if in_ledger != done_in_state:
                anomalies.append(
                    f"{run.case_id}: ledger task.completed {dict(in_ledger)} "
                    f"!= state {dict(done_in_state)}"
                )
            if not any(a == "case.opened" for (a, _) in entries):
                anomalies.append(f"{run.case_id}: no case.opened in the ledger")
            if state.closed and not any(a == "case.closed" for (a, _) in entries):
                anomalies.append(f"{run.case_id}: closed without case.closed in the ledger")
    return {"cases_checked": len(runs), "anomalies": anomalies}


def audit_verify(stack: Stack) -> dict[str, Any]:
    """``eri audit checkpoint``, ``export`` and ``verify`` as an auditor would run them."""
    eri = [sys.executable, "-m", "eri.cli", "audit"]
    export = stack.data_dir / "audit-export.bin"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 (our own argv)
            [*eri, *args], env=stack.env, capture_output=True, text=True, check=False
        )

    run("checkpoint")
    key = run("key").stdout.strip()
    exported = run("export", str(export))
    verified = run("verify", str(export), "--key", key)
    return {
        "export": exported.stdout.strip(),
        "verify_rc": verified.returncode,
        "verify": (verified.stdout + verified.stderr).strip()[-600:],
    }


async def run_load(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed_value)  # noqa: S311 (synthetic data, not secrets)
    result: dict[str, Any] = {"args": vars(args), "load_before": load_average()}
    stack: Stack | None = None
    if args.url:
        settings = Settings()
        url = args.url
    else:
        data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="eri-load-"))
        stack = Stack(data_dir, args.database_url, server_tuning=args.server_tuning)
        settings, url = stack.settings, stack.url
        print(f"data dir {data_dir}", flush=True)
    baseline_worker: subprocess.Popen[bytes] | None = None
    try:
        if stack is not None:
            await stack.start()
            result["dev_server_flags"] = (
                list(temporal.DEV_SERVER_TUNING) if args.server_tuning else []
            )
        suffix = secrets.token_hex(3)
        chosen = [p for p in protocols() if p.id in args.protocols.split(",")]
        teams = {p.id: await make_team(settings, p, suffix) for p in chosen}
        stats = Stats()
        runs: list[CaseRun] = []
        faults: list[dict[str, Any]] = []
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            driver = Driver(http, teams, args.responders, stats, think=args.think)
            before = stack.usage() if stack else {}
            began = time.perf_counter()
            plan = [
                (rng.choice(sorted(teams)), rng.choice(sorted(VARIANTS))) for _ in range(args.cases)
            ]
            result["variants"] = dict(Counter(f"{p}/{v}" for p, v in plan))
            ticker = asyncio.create_task(progress(stats, runs, args.cases, began))
            # About 8 tasks per case on the main path: the fault points are shares of that.
            fault_task = (
                asyncio.create_task(inject_faults(stack, stats, args.cases * 8, faults))
                if args.faults and stack is not None
                else None
            )

            async def case(protocol_id: str, variant: str) -> None:
                try:
                    await driver.run_case(protocol_id, variant, runs)
                except RuntimeError as error:  # a call that never got an answer: recorded
                    stats.server_errors.append(f"gave up: {error}")

            try:
                await asyncio.wait_for(
                    asyncio.gather(*(case(p, v) for p, v in plan)), timeout=args.max_seconds
                )
                timed_out = False
            except TimeoutError:
                timed_out = True
            wall = time.perf_counter() - began
            ticker.cancel()
            if fault_task is not None and not fault_task.done():
                fault_task.cancel()
                faults.append({"note": "the load ended before every fault was injected"})
            after = stack.usage() if stack else {}
        closed = sum(r.closed for r in runs)
        if timed_out:  # cases still running: nothing to check or replay against
            runs[:] = [r for r in runs if r.closed or r.stuck]
        updates = stats.statuses  # every 2xx/4xx answer, by kind
        answered = sum(
            n for k, n in updates.items() if k.split()[0] in ("open", "claim", "complete")
        )
        result.update(
            {
                "timed_out": timed_out,
                "wall_s": round(wall, 1),
                "cases_closed": closed,
                "cases_stuck": dict(Counter(r.stuck for r in runs if r.stuck)),
                "cases_per_min": round(closed / wall * 60, 1),
                "tasks_done": stats.completions,
                "tasks_per_s": round(stats.completions / wall, 2),
                "eri_updates": answered,
                "eri_updates_per_s": round(answered / wall, 1),
                "latency_ms": {
                    k: trio(stats.latency.get(k, []))
                    for k in ("open", "get", "claim", "complete", "claim+complete")
                },
                "retries": stats.retries,
                "server_errors": stats.server_errors[:30],
                "statuses": dict(stats.statuses),
                "load_after": load_average(),
            }
        )
        if stack is not None:
            result["cpu_s"] = {k: round(after[k].cpu_s - before[k].cpu_s, 1) for k in after}
            result["peak_rss_mb"] = {k: round(v.peak_rss_mb) for k, v in after.items()}
            client = await temporal.connect_with_retry(settings)
            sample = [r.case_id for r in runs][: args.history_sample]
            events = await history_events(client, sample)
            result["history_events_per_case"] = {
                "cases": len(events),
                "mean": round(sum(events) / max(1, len(events)), 1),
                "max": max(events, default=0),
            }
        if args.faults:
            result["faults"] = faults
            result["check"] = await check_cases(settings, runs)
            if stack is not None:
                result["audit"] = audit_verify(stack)
        if args.baseline:
            client = await temporal.connect_with_retry(settings)
            queue = "bare-" + uuid.uuid4().hex[:8]
            baseline_worker = subprocess.Popen(  # noqa: S603, ASYNC220 (our argv; starts at once)
                [
                    sys.executable,
                    str(ROOT / "bench" / "bare.py"),
                    "worker",
                    "--address",
                    settings.temporal_address,
                    "--namespace",
                    settings.temporal_namespace,
                    "--task-queue",
                    queue,
                ]
            )
            per_case = max(1, round(answered / args.cases) - 1)  # the same total of updates
            print(f"baseline: {args.cases} bare workflows x {per_case + 1} updates", flush=True)
            base = await bare.drive(client, queue, args.cases, per_case, args.responders)
            result["baseline"] = {k: round(v, 1) for k, v in base.items()}
            result["ratio_updates"] = round(result["eri_updates_per_s"] / base["updates_per_s"], 2)
        return result
    finally:
        if baseline_worker is not None:
            baseline_worker.terminate()
            baseline_worker.wait()
        if stack is not None:
            stack.stop()


def report(r: dict[str, Any]) -> None:
    print()
    print(
        f"cases {r['args']['cases']} (closed {r['cases_closed']}, stuck {r['cases_stuck']}), "
        f"responders {r['args']['responders']} (think {r['args'].get('think', 0)} s), "
        f"wall {r['wall_s']} s, load {r['load_before']} -> "
        f"{r['load_after']}{' TIMED OUT' if r['timed_out'] else ''}"
    )
    print(
        "| cases/min | tasks/s | ERI updates/s | claim+complete p50/p95/p99 ms | claim | complete "
        "| open | bare updates/s | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    lat = r["latency_ms"]
    base = r.get("baseline", {})
    print(
        f"| {r['cases_per_min']} | {r['tasks_per_s']} | {r['eri_updates_per_s']} | "
        f"{lat['claim+complete']} | {lat['claim']} | {lat['complete']} | {lat['open']} | "
        f"{base.get('updates_per_s', '-')} | {r.get('ratio_updates', '-')} |"
    )
    if "cpu_s" in r:
        print(
            f"CPU s {r['cpu_s']}; peak RSS MB {r['peak_rss_mb']}; history events per case "
            f"{r['history_events_per_case']}"
        )
    print(f"retries {r['retries']}; 5xx answers {len(r['server_errors'])} {r['server_errors'][:5]}")
    if "faults" in r:
        print(f"faults {r['faults']}")
        print(
            f"checked {r['check']['cases_checked']} cases: "
            f"{len(r['check']['anomalies'])} anomalies "
            f"{r['check']['anomalies'][:10]}"
        )
        if "audit" in r:
            print(f"audit: {r['audit']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--responders", type=int, default=20)
    parser.add_argument(
        "--server-tuning",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the dev server with ERI's DEV_SERVER_TUNING (--no-server-tuning: its defaults)",
    )
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="mean seconds a responder spends on a form between claim and complete (0: stress)",
    )
    parser.add_argument("--protocols", default="gt-eri,hn-cicesct")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--faults", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument("--history-sample", type=int, default=50)
    parser.add_argument("--seed-value", type=int, default=1)
    parser.add_argument("--url", default=None, help="a running ERI (its ERI_* environment set)")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    out = asyncio.run(run_load(args))
    report(out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    # The Temporal SDK can crash at interpreter exit (sdk-python issue 300): exit at once.
    sys.stdout.flush()
    os._exit(0)
