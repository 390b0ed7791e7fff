"""The case engine's write: CPU and wall time per ``record_case_changes`` call.

Run: ``.venv/bin/python bench/record_bench.py [--cases 10] [--database-url URL]``

Synthetic gt-eri cases (adult main path) are driven open → closed by the interpreter alone
(``workflows.interpreter.apply``: the same changes a live case produces, with valid synthetic
forms), and every change is written by the worker's own ``CaseActivities.record_case_changes``
on a fresh database (SQLite under a temporary directory unless ``--database-url``): vault
fields, ledger entries with their Merkle nodes, and the projection. The first five calls warm
up; the figure is process CPU (all threads, aiosqlite's included) and wall time per call over
the rest, one call at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from activities.case import CaseActivities  # noqa: E402
from api.casework import form_schema, protocol  # noqa: E402
from eri.db import upgrade  # noqa: E402
from eri.notify import LogChannel  # noqa: E402
from eri.runtime import open_runtime  # noqa: E402
from eri.settings import Settings  # noqa: E402
from protocols.lock import content_hash  # noqa: E402
from tests.api.casework_support import GT_ADULT, GT_TEAM, form_for  # noqa: E402
from workflows.case import CaseChanges  # noqa: E402
from workflows.interpreter import Actor, CaseState, Claim, Complete, Opened, apply  # noqa: E402

GT = protocol("gt-eri")
GT_HASH = content_hash(GT)
TEAM = [
    Actor(actor_id="usr_" + name.replace(".", ""), role=role, institution=inst, groups=groups)
    for name, role, inst, groups in GT_TEAM
]


def who_can(groups: list[str]) -> Actor:
    return next(a for a in TEAM if set(a.groups) & set(groups))


def changes_of(
    case_id: str, seq: int, event: Any, state: CaseState, actions: list[Any], intake: Any = None
) -> CaseChanges:
    return CaseChanges(
        case_id=case_id,
        seq=seq,
        at=event.at,
        event_key=f"e{seq}",
        protocol_id=GT.id,
        protocol_version=GT.version,
        protocol_hash=GT_HASH,
        country=GT.country,
        opened_at=state.opened_at,
        closed_at=state.closed_at,
        opened_by_institution="SVET",
        revision=state.revision,
        intake=intake,
        actions=actions,
    )


def case_changes(cases: int) -> list[CaseChanges]:
    out: list[CaseChanges] = []
    for _ in range(cases):
        case_id = "case_" + uuid.uuid4().hex[:20]
        now = datetime.now(UTC)
        event: Any = Opened(at=now, actor=who_can(["svet:eri_coordinator"]), facts=GT_ADULT)
        state, actions = apply(GT, None, event, case_id=case_id, protocol_hash=GT_HASH)
        seq = 1
        out.append(changes_of(case_id, seq, event, state, actions, {"alias": "Sintética"}))
        while not state.closed and state.open_tasks():
            task = state.open_tasks()[0]
            actor = who_can(task.candidate_groups)
            form = form_for(form_schema(GT.step(task.step_id), "en"), facts=GT_ADULT)
            for event in (
                Claim(at=now, actor=actor, task_id=task.task_id),
                Complete(at=now, actor=actor, task_id=task.task_id, form=form),
            ):
                state, actions = apply(GT, state, event)
                seq += 1
                out.append(changes_of(case_id, seq, event, state, actions))
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="eri-record-"))
    url = args.database_url or f"sqlite+aiosqlite:///{directory / 'eri.db'}"
    settings = Settings(data_dir=directory, database_url=url, log_level="WARNING")
    settings.ensure_dirs()
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    changes = case_changes(args.cases)
    warm, timed = changes[:5], changes[5:]
    async with open_runtime(settings) as runtime:
        record = CaseActivities(runtime, LogChannel()).record_case_changes
        for change in warm:
            await record(change)
        cpu, wall = time.process_time(), time.perf_counter()
        entries = sum([await record(change) for change in timed])
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    n = len(timed)
    print(
        f"{n} calls ({entries} ledger entries) on {url.split(':')[0]}: "
        f"{1000 * cpu / n:.1f} ms CPU and {1000 * wall / n:.1f} ms wall per call"
    )


if __name__ == "__main__":
    asyncio.run(main())
