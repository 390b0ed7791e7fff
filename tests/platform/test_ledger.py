"""The ledger on SQLite and PostgreSQL: idempotent, dense, ordered, PII-free by construction."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from eri import ledger
from eri.ledger import Action, Outcome, Record


def _rec(key: str, case: str | None = "case_aaaa1111", **kw: object) -> Record:
    return Record(idempotency_key=key, action=Action.TASK_COMPLETED, case_id=case, **kw)  # type: ignore[arg-type]


async def test_append_is_idempotent(sessions: async_sessionmaker[AsyncSession]) -> None:
    first = await ledger.append(sessions, _rec("wf:1:step-a:done"))
    again = await ledger.append(sessions, _rec("wf:1:step-a:done"))
    assert (again.seq, again.case_seq) == (first.seq, first.case_seq) == (0, 1)
    assert len(await ledger.entries(sessions)) == 1
    nxt = await ledger.append(sessions, _rec("wf:1:step-b:done"))
    assert (nxt.seq, nxt.case_seq) == (1, 2)


async def test_concurrent_appends_get_dense_global_and_per_case_sequences(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    cases = ["case_aaaa1111", "case_bbbb2222"]
    records = [_rec(f"key-{i:04d}", case=cases[i % 2]) for i in range(40)]
    # every record twice, all at once: retries race their originals
    await asyncio.gather(*(ledger.append(sessions, r) for r in records + records))
    rows = await ledger.entries(sessions)
    assert [r.seq for r in rows] == list(range(40))
    assert len({r.idempotency_key for r in rows}) == 40
    for case in cases:
        seqs = sorted(r.case_seq or 0 for r in rows if r.case_id == case)
        assert seqs == list(range(1, 21))


async def test_system_entries_have_no_case_sequence(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    entry = await ledger.append(
        sessions,
        Record(idempotency_key="rotate-0001", action=Action.KEYS_ROTATED, actor_id="usr_admin01"),
    )
    assert entry.case_id is None
    assert entry.case_seq is None
    assert entry.outcome == Outcome.OK


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("actor_id", "María Pérez"),
        ("case_id", "Juana 1990-04-02"),
        ("step_id", "passport GT1234567 seen"),
        ("actor_institution", "PGN con Juan"),
        ("detail_hash", "not-a-hash"),
    ],
)
def test_values_that_could_carry_identity_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        Record(idempotency_key="k-00000001", action=Action.CASE_VIEWED, **{field: value})  # type: ignore[arg-type]


def test_detail_hash_is_canonical() -> None:
    assert ledger.detail_hash({"b": 1, "a": "é"}) == ledger.detail_hash({"a": "é", "b": 1})
    assert len(ledger.detail_hash({})) == 64
