"""The task API at 10,000 open cases: inbox latency and completion latency (claim + complete).

Run: ``.venv/bin/python bench/api_bench.py [--open-cases 10000] [--real-cases 100]
[--responders 20] [--completions 400] [--seed projection|engine] [--database-url URL]``

1. Brings up ERI on the embedded default on free ports (bench/stack.py: Temporal dev server,
   ``eri worker``, ``eri api`` under uvicorn), and a team per protocol with tokens.
2. Opens ``--real-cases`` cases through ``POST /v1/cases`` (real workflows).
3. Fills the read model to ``--open-cases`` open cases:
   - ``--seed projection`` (default): each case is run through the real interpreter
     (``workflows.interpreter.apply``: opening, then 0-4 tasks claimed and completed, facts
     from the protocols' branches), and its tasks are written by the case activity's own
     projection code (``CaseActivities._project``), so the rows are exactly what
     ``record_case_changes`` writes; these cases have no workflow, ledger or vault rows;
   - ``--seed engine``: every case is opened through the API (slow: one workflow each).
4. Inbox: ``GET /v1/tasks`` over HTTP, sequential, for a coordinator (sees every task of the
   protocol) and two responders (their groups' tasks), first page, ``assignee=none``, and
   the second page (cursor).
5. Completion: ``--responders`` concurrent responders each GET a task of a real case, claim
   it (If-Match) and complete it with valid form data, until ``--completions`` are done.
6. CPU seconds and peak RSS (VmHWM) of the API, worker and Temporal processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from activities.case import CaseActivities  # noqa: E402
from api.casework import form_schema, protocols  # noqa: E402
from bench.drive import VARIANTS, CaseRun, Driver, Stats  # noqa: E402
from bench.stack import Stack, load_average, make_team, percentile  # noqa: E402
from eri.notify import LogChannel  # noqa: E402
from eri.runtime import open_runtime  # noqa: E402
from protocols.lock import content_hash  # noqa: E402
from protocols.model import Protocol  # noqa: E402
from workflows.case import CaseChanges  # noqa: E402
from workflows.interpreter import (  # noqa: E402
    Actor,
    Claim,
    Complete,
    Opened,
    TaskChanged,
    TaskOpened,
    apply,
)


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.1f}"


# --- seeding the read model -----------------------------------------------------------------


def _lead(p: Protocol) -> str:
    groups = {g for s in p.steps for g in s.responsible}
    leads = sorted(g.split(":")[0] for g in groups if "coordinator" in g)
    return leads[0] if leads else sorted(groups)[0].split(":")[0]


_HASHES: dict[str, str] = {}


def _hash(p: Protocol) -> str:
    if p.key not in _HASHES:
        _HASHES[p.key] = content_hash(p)
    return _HASHES[p.key]


def simulated_case(p: Protocol, rng: random.Random, now: datetime) -> CaseChanges | None:
    """One case run through the real interpreter; the projection its activity would write."""
    case_id = "case_" + secrets.token_hex(12)
    lead = _lead(p)
    groups = sorted({g for s in p.steps for g in s.responsible})
    actor = Actor(actor_id="usr_seed0000", role="coordinator", institution=lead, groups=groups)
    at = now - timedelta(minutes=rng.randint(0, 14 * 24 * 60))
    variant = rng.choice(sorted(VARIANTS))
    h = _hash(p)
    state, actions = apply(
        p,
        None,
        Opened(at=at, actor=actor, facts=VARIANTS[variant]),
        protocol_hash=h,
        case_id=case_id,
    )
    every = list(actions)
    for _ in range(rng.randint(0, 4)):
        open_tasks = state.open_tasks()
        if not open_tasks:
            break
        task = open_tasks[0]
        at += timedelta(minutes=rng.randint(1, 90))
        state, claimed = apply(p, state, Claim(at=at, actor=actor, task_id=task.task_id))
        form = form_for_step(p, task.step_id)
        state, completed = apply(
            p, state, Complete(at=at, actor=actor, task_id=task.task_id, form=form)
        )
        every += claimed + completed
    if state.closed or not state.open_tasks():
        return None
    return CaseChanges(
        case_id=case_id,
        seq=1,
        at=at,
        protocol_id=p.id,
        protocol_version=p.version,
        protocol_hash=h,
        country=p.country,
        opened_at=state.opened_at,
        closed_at=None,
        opened_by_institution=lead,
        revision=state.revision,
        actions=[a for a in every if isinstance(a, TaskOpened | TaskChanged)],
    )


def form_for_step(p: Protocol, step_id: str) -> dict[str, Any]:
    from bench.stack import form_for

    return form_for(form_schema(p.step(step_id), "es"))


async def seed_projection(stack: Stack, count: int, rng: random.Random) -> float:
    """Write ``count`` open cases into the read model with the activity's projection code."""
    ps = protocols()
    now = datetime.now(UTC)
    began = time.perf_counter()
    async with open_runtime(stack.settings) as rt:
        acts = CaseActivities(rt, LogChannel())
        written = 0
        while written < count:
            changes = simulated_case(rng.choice(ps), rng, now)
            if changes is None:
                continue
            async with rt.sessions.begin() as session:
                await acts._project(session, changes)
            written += 1
            if written % 1000 == 0:
                print(
                    f"  seeded {written}/{count} ({time.perf_counter() - began:.0f}s)", flush=True
                )
    return time.perf_counter() - began


async def seed_engine(driver: Driver, count: int, rng: random.Random) -> float:
    began = time.perf_counter()
    done = 0

    async def one() -> None:
        nonlocal done
        await driver.open_case(rng.choice(sorted(driver.teams)), rng.choice(sorted(VARIANTS)))
        done += 1
        if done % 500 == 0:
            rate = done / (time.perf_counter() - began)
            print(f"  opened {done}/{count} ({rate:.1f}/s)", flush=True)

    await asyncio.gather(*(one() for _ in range(count)))
    return time.perf_counter() - began


# --- the measurements -----------------------------------------------------------------------


async def inbox_latency(
    http: httpx.AsyncClient, stack: Stack, driver: Driver, rounds: int
) -> list[dict[str, Any]]:
    gt = driver.teams["gt-eri"]
    who = [
        ("coordinator gt-eri", gt.coordinator),
        *[
            (f"responder {m.name}", m)
            for m in gt.responders
            if m.name.split("-")[0] in ("svet", "pnc")
        ],
    ]
    rows = []
    for label, member in who:
        for query in ("", "?assignee=none", "page 2"):
            params = query
            if query == "page 2":
                first = await http.get("/v1/tasks", headers=member.headers)
                cursor = first.json()["next_cursor"]
                if cursor is None:
                    continue
                params = f"?cursor={cursor}"
            url = f"/v1/tasks{params}"
            times = []
            size = 0
            for i in range(rounds + 10):
                began = time.perf_counter()
                r = await http.get(url, headers=member.headers)
                elapsed = time.perf_counter() - began
                if r.status_code != 200:
                    raise RuntimeError(f"inbox {url}: {r.status_code} {r.text[:200]}")
                size = len(r.json()["items"])
                if i >= 10:  # warm-up
                    times.append(elapsed)
            rows.append(
                {
                    "who": label,
                    "query": query or "first page",
                    "items": size,
                    "p50_ms": float(ms(times, 50)),
                    "p99_ms": float(ms(times, 99)),
                    "max_ms": round(max(times) * 1000, 1),
                }
            )
            print(f"  inbox {label:28} {query or 'first page':15} {rows[-1]}", flush=True)
    return rows


async def completions(
    driver: Driver, runs: list[tuple[CaseRun, dict[str, Any]]], target: int
) -> float:
    queue: asyncio.Queue[tuple[CaseRun, dict[str, Any]]] = asyncio.Queue()
    for item in runs:
        queue.put_nowait(item)
    began = time.perf_counter()
    done = 0

    async def responder() -> None:
        nonlocal done
        while done < target and not queue.empty():
            run, view = queue.get_nowait()
            if view["closed"] or not view["open_tasks"]:
                continue
            new_view = await driver.do_task(run, view["open_tasks"][0])
            done += 1
            if new_view is not None and not new_view["closed"] and new_view["open_tasks"]:
                queue.put_nowait((run, new_view))
            if done % 100 == 0:
                print(f"  completed {done}/{target}", flush=True)

    slots = driver.slots._value  # the number of responders
    await asyncio.gather(*(responder() for _ in range(slots)))
    return time.perf_counter() - began


async def main(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed_value)  # noqa: S311 (synthetic data, not secrets)
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="eri-api-bench-"))
    stack = Stack(data_dir, args.database_url)
    result: dict[str, Any] = {"args": vars(args), "load_before": load_average()}
    print(f"data dir {data_dir}; load {result['load_before']}", flush=True)
    try:
        await stack.start()
        suffix = secrets.token_hex(3)
        teams = {p.id: await make_team(stack.settings, p, suffix) for p in protocols()}
        stats = Stats()
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as http:
            driver = Driver(http, teams, args.responders, stats)
            print(f"opening {args.real_cases} real cases through the API", flush=True)
            began = time.perf_counter()
            runs = await asyncio.gather(
                *(
                    driver.open_case(rng.choice(sorted(teams)), rng.choice(sorted(VARIANTS)))
                    for _ in range(args.real_cases)
                )
            )
            result["open_rate_per_s"] = round(args.real_cases / (time.perf_counter() - began), 1)
            seeded = args.open_cases - args.real_cases
            print(f"seeding {seeded} open cases ({args.seed})", flush=True)
            if args.seed == "engine":
                result["seed_s"] = round(await seed_engine(driver, seeded, rng), 1)
            else:
                result["seed_s"] = round(await seed_projection(stack, seeded, rng), 1)
            result["load_inbox"] = load_average()
            print("inbox latency", flush=True)
            result["inbox"] = await inbox_latency(http, stack, driver, args.rounds)
            result["usage_after_inbox"] = {k: vars(v) for k, v in stack.usage().items()}
            print(
                f"completions: {args.responders} responders, {args.completions} tasks", flush=True
            )
            before = stack.usage()
            result["load_completions_start"] = load_average()
            wall = await completions(driver, list(runs), args.completions)
            after = stack.usage()
            result["load_completions_end"] = load_average()
        result["completion"] = {
            "tasks": stats.completions,
            "wall_s": round(wall, 1),
            "tasks_per_s": round(stats.completions / wall, 2),
            **{
                f"{kind}_p{q}_ms": float(ms(stats.latency.get(kind, []), q))
                for kind in ("claim", "complete", "claim+complete")
                for q in (50, 95, 99)
            },
            "open_p50_ms": float(ms(stats.latency.get("open", []), 50)),
            "open_p99_ms": float(ms(stats.latency.get("open", []), 99)),
            "retries": stats.retries,
            "server_errors": stats.server_errors[:20],
            "statuses": dict(stats.statuses),
            "cpu_s_during": {k: round(after[k].cpu_s - before[k].cpu_s, 1) for k in after},
        }
        result["peak_rss_mb"] = {k: round(v.peak_rss_mb) for k, v in after.items()}
        return result
    finally:
        stack.stop()


def report(result: dict[str, Any]) -> None:
    print()
    print(
        f"open cases in the read model: {result['args']['open_cases']} "
        f"(seed: {result['args']['seed']}, "
        f"{result['seed_s']} s); real cases opened at {result['open_rate_per_s']}/s"
    )
    print(
        f"load averages: before {result['load_before']}, inbox {result['load_inbox']}, "
        f"completions {result['load_completions_start']} -> {result['load_completions_end']}"
    )
    print("| who | query | items | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for row in result["inbox"]:
        print(
            f"| {row['who']} | {row['query']} | {row['items']} | {row['p50_ms']} | "
            f"{row['p99_ms']} | {row['max_ms']} |"
        )
    c = result["completion"]
    print()
    print(
        "| responders | tasks | tasks/s | claim p50/p95/p99 ms | complete p50/p95/p99 ms | "
        "claim+complete p50/p95/p99 ms |"
    )
    print("|---|---|---|---|---|---|")

    def trio(k: str) -> str:
        return "/".join(str(round(c[f"{k}_p{q}_ms"])) for q in (50, 95, 99))

    print(
        f"| {result['args']['responders']} | {c['tasks']} | {c['tasks_per_s']} | {trio('claim')} | "
        f"{trio('complete')} | {trio('claim+complete')} |"
    )
    print(
        f"retries {c['retries']}; 5xx {len(c['server_errors'])}; CPU s during completions "
        f"{c['cpu_s_during']}; peak RSS MB {result['peak_rss_mb']}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--open-cases", type=int, default=10_000)
    parser.add_argument("--real-cases", type=int, default=100)
    parser.add_argument("--responders", type=int, default=20)
    parser.add_argument("--completions", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=200, help="inbox requests per query")
    parser.add_argument("--seed", choices=["projection", "engine"], default="projection")
    parser.add_argument("--seed-value", type=int, default=1)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    out = asyncio.run(main(args))
    report(out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    # The Temporal SDK can crash at interpreter exit (sdk-python issue 300): exit at once.
    sys.stdout.flush()
    os._exit(0)
