"""Case workflow history size (issue 6): the number of history events of a whole case, per
protocol, branch and policy, against Temporal's limits (ERI asserts fewer than 2,000; Temporal
warns at 10,240 events and suggests continue-as-new).

Run: ``.venv/bin/python bench/history_bench.py [--write PATH]``

Each case is driven to closure by :mod:`tests.workflows.protocol_runs` on the time-skipping
server with ERI's production worker: every task claimed and completed with a valid synthetic
form, every deadline, rung and follow-up checked at its protocol time (``prompt``: tasks done at
once; ``at_deadline``: each task left open until its deadline fired; ``full_ladder``: until its
whole escalation ladder fired). The same runs ``python -m tests.histories.record`` commits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.histories.record import drive_all  # noqa: E402


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="also write the table (Markdown) here")
    args = parser.parse_args()
    started = time.monotonic()
    results = await drive_all()
    lines = [
        "| protocol | branch | policy | tasks completed | ledger entries | history events |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in results:
        completed = sum(1 for action, _ in r.ledger_actions if action == "task.completed")
        lines.append(
            f"| {r.protocol_id} | {r.branch} | {r.policy} | {completed} "
            f"| {len(r.ledger_actions)} | {r.history_events} |"
        )
    worst = max(results, key=lambda r: r.history_events)
    lines.append("")
    lines.append(
        f"largest: {worst.history_events} events ({worst.protocol_id} {worst.branch} "
        f"{worst.policy}); {len(results)} cases in {time.monotonic() - started:.0f} s"
    )
    table = "\n".join(lines)
    print(table)
    if args.write:
        args.write.write_text(table + "\n")
    assert worst.history_events < 2000, "a case's history is over 2,000 events"


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)  # sdk-python issue 300 (see tests/conftest.py)
