"""The shipped protocols (gt-eri, hn-cicesct) through CaseWorkflow on the time-skipping server
with ERI's production worker: every branch to closure, and every deadline and escalation rung at
the protocol's time (see :mod:`tests.workflows.protocol_runs` for what each run checks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from eri.runtime import Runtime
from protocols.loader import load_protocol
from protocols.lock import content_hash
from protocols.paths import branching_facts, walk
from tests.workflows.protocol_runs import (
    BRANCHES,
    DEADLINE_BRANCHES,
    PROTOCOL_IDS,
    Branch,
    CaseRun,
    Engine,
    Policy,
    engine,
    protocols,
    run_case,
)
from workflows.case import CaseWorkflow

MAX_HISTORY_EVENTS = 2000
# The suite runs the branches that, with the two deadline branches, reach every step and use
# every value of every fact a step branches on (tested below); all eleven are recorded as
# histories and replayed (tests/histories, test_replay.py).
SUITE = tuple(
    b
    for b in BRANCHES
    if b.name
    in {
        "main",
        "minor_family_involved",
        "consent_refused",
        "consent_revoked",
        "foreign_national_no_consul",
        "minor_refused_repatriation",
    }
)
FACT_ACTIONS = ("fact.changed", "consent.recorded", "consent.revoked")


@pytest.fixture(scope="module")
async def eng(time_skipping_env: WorkflowEnvironment, runtime: Runtime) -> AsyncIterator[Engine]:
    async with engine(time_skipping_env, runtime) as running:
        yield running


@pytest.mark.parametrize("protocol_id", PROTOCOL_IDS)
def test_the_branches_cover_every_step(protocol_id: str) -> None:
    """Every step of the protocol is reached by some branch, and every step with a deadline by
    one of the deadline branches (so the runs below leave nothing unexercised)."""
    protocol, _ = protocols()[protocol_id]
    for branches in (BRANCHES, SUITE + DEADLINE_BRANCHES):
        reached = {s for b in branches for s in walk(protocol, b.facts).reached}
        assert reached == {s.id for s in protocol.steps}
        for fact in branching_facts(protocol):
            used = {b.facts[fact] for b in branches}
            # risk "medium" reads like "low" (no step branches on it)
            assert used >= set(protocol.fact(fact).domain()) - {"medium"}, fact
    timed = {s for b in DEADLINE_BRANCHES for s in walk(protocol, b.facts).reached}
    assert {s.id for s in protocol.steps if s.deadline} <= timed


@pytest.mark.parametrize("branch", SUITE, ids=lambda b: b.name)
@pytest.mark.parametrize("protocol_id", PROTOCOL_IDS)
async def test_branch_runs_to_closure(eng: Engine, protocol_id: str, branch: Branch) -> None:
    result = await run_case(eng, protocol_id, branch, "prompt")
    protocol, _ = protocols()[protocol_id]
    assert result.completed[-1] == protocol.closure_step
    actions = [a for a, _ in result.ledger_actions]
    assert "deadline.missed" not in actions and "escalation.rung" not in actions
    if branch.revoke_after:
        assert ("consent.revoked", None) in result.ledger_actions
        assert "consent_revoked" in result.completed and result.cancelled  # adult steps stopped
    assert result.history_events < MAX_HISTORY_EVENTS


@pytest.mark.parametrize(
    ("policy", "branch"),
    [("at_deadline", b) for b in DEADLINE_BRANCHES] + [("full_ladder", DEADLINE_BRANCHES[1])],
    ids=lambda v: v if isinstance(v, str) else v.name,
)
@pytest.mark.parametrize("protocol_id", PROTOCOL_IDS)
async def test_every_deadline_and_rung_fires_at_protocol_time(
    eng: Engine, protocol_id: str, policy: Policy, branch: Branch
) -> None:
    result = await run_case(eng, protocol_id, branch, policy, start="eve_of_holiday")
    protocol, _ = protocols()[protocol_id]
    deadlines = {e.step_id for e in result.fired if e.action == "deadline.missed"}
    with_deadline = {s for s in result.completed if protocol.step(s).deadline}
    assert deadlines == with_deadline  # every deadline of the run fired (checked at its time)
    if policy == "at_deadline":
        # each fell due while its task was open: "nothing one second before" was checked
        assert all(e.future for e in result.fired if e.action == "deadline.missed")
        assert result.business_days_over_holiday, "no business-day deadline crossed a holiday"
        visits = [e for e in result.fired if e.action == "task.opened"]
        assert [e.step_id for e in visits] == ["follow_up"]  # the second visit, 30 days on
    else:
        # every rung of every ladder the run used fired at its own time on some task
        ladders = {protocol.step(s).escalation for s in with_deadline}
        for ladder in ladders:
            assert ladder is not None
            rungs = {
                e.rung
                for e in result.fired
                if e.action == "escalation.rung"
                and e.future
                and protocol.step(e.step_id).escalation == ladder
            }
            assert rungs == set(range(1, len(protocol.escalation_ladders[ladder]) + 1)), ladder
    assert result.history_events < MAX_HISTORY_EVENTS


async def test_an_ended_follow_up_does_not_wake_the_case(eng: Engine) -> None:
    """The team completes the follow-up visit, then records that follow-up is complete: the
    visit scheduled in between is void. The case waits for its closure without waking (it used
    to wake in a loop of zero-length timers once that visit's time had passed). A case of
    gt-eri 1.0.0, whose follow-up form does not record the fact itself."""
    protocols()  # registers every version for the worker
    protocol = load_protocol("gt-eri", "1.0.0")
    digest = content_hash(protocol)
    run = CaseRun(eng, protocol, digest, BRANCHES[0], "prompt", claim=False)
    await run.open()
    assert await run.resume(stop_before=protocol.closure_step) is None
    state = await run.handle.query(CaseWorkflow.state)
    (visit,) = state.follow_ups.values()  # scheduled when the visit's form was submitted
    before = len((await run.handle.fetch_history()).events)
    await eng.env.sleep(visit - await eng.env.get_current_time() + timedelta(days=1))
    await asyncio.sleep(1)  # real time for a looping workflow to show itself
    woke = len((await run.handle.fetch_history()).events) - before
    assert woke == 0, f"{woke} history events while nothing was due"
    result = await run.resume()
    assert result is not None and result.completed[-1] == protocol.closure_step


async def test_continue_as_new_carries_the_case_unchanged(eng: Engine) -> None:
    """A case forced to continue as new every 4 commands ends exactly like one that ran in a
    single run: the same ledger entries in the same order, the projection and the queries
    following it across runs (each run checked by the driver as it goes)."""
    single = await run_case(eng, "hn-cicesct", BRANCHES[0], "prompt", claim=False)
    chained = await run_case(
        eng, "hn-cicesct", BRANCHES[0], "prompt", claim=False, max_updates_per_run=4
    )
    assert single.runs == 1
    # the commands: completions, and facts recorded on their own (a fact a form recorded is
    # part of its completion, so its entry names the step)
    commands = sum(
        1
        for a, step in single.ledger_actions
        if a == "task.completed" or (a in FACT_ACTIONS and step is None)
    )
    # a run continues as new once its 4th command is done, even the one that closed the case
    # (the last run then only returns the closed case)
    assert chained.runs == commands // 4 + 1
    assert chained.ledger_actions == single.ledger_actions
    assert chained.completed == single.completed
