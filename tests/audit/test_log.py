"""The ledger as a Merkle log: tree, checkpoints, cosignatures, export and offline verification,
against real databases (SQLite and PostgreSQL), including rows tampered with directly in SQL."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from eri import ledger
from eri.audit import leaf, log, merkle, note, tree
from eri.audit.verify import verify_export
from eri.db import create_engine, session_factory, upgrade
from eri.db.models import AuditNode, LedgerEntry
from eri.ledger import Action, Record
from tests.audit.conftest import WITNESS, AuditDb, append_many
from tests.audit.test_merkle import mth


async def test_the_tree_follows_the_ledger_and_its_proofs_verify(audit_db: AuditDb) -> None:
    await append_many(audit_db, 13)
    again = await ledger.append(
        audit_db.sessions,
        ledger.Record(idempotency_key="test:entry:000004", action=ledger.Action.CASE_VIEWED),
    )
    assert again.seq == 4  # idempotent: no second entry, no second leaf
    entries = await ledger.entries(audit_db.sessions)
    leaves = [leaf.encode(e) for e in entries]
    assert [leaf.decode(x)["seq"] for x in leaves] == list(range(13))
    async with audit_db.sessions() as session:
        assert await tree.size(session) == 13
        for size in range(14):
            assert await tree.root(session, size) == mth(leaves[:size])
        root = await tree.root(session, 13)
        for index in range(13):
            proof = await tree.inclusion_proof(session, index, 13)
            assert merkle.verify_inclusion(index, 13, merkle.leaf_hash(leaves[index]), proof, root)
        for first in range(1, 14):
            proof = await tree.consistency_proof(session, first, 13)
            assert merkle.verify_consistency(first, 13, mth(leaves[:first]), root, proof)


async def test_batched_appends_build_the_same_tree_and_skip_known_keys(audit_db: AuditDb) -> None:
    """``ledger.append_all`` (one case change's entries in one transaction): batches of every
    size from 1 to 7 over 40 entries give the same dense sequences, per-case sequences and tree
    as one append at a time; a key repeated in a batch, or already in the ledger, is written
    once and given back."""

    def record(i: int) -> Record:
        return Record(
            idempotency_key=f"batch:entry:{i:06d}",
            action=Action.TASK_OPENED,
            case_id=f"case_batch{i % 3}",
            recorded_at=datetime(2026, 11, 20, tzinfo=UTC) + timedelta(seconds=i),
        )

    sizes, lo = itertools.cycle([1, 7, 2, 5, 3, 6, 4]), 0
    while lo < 40:
        hi = min(40, lo + next(sizes))
        batch = [record(j) for j in range(lo, hi)]
        batch.append(batch[0])  # the same key twice in one batch
        if lo:
            batch.insert(0, record(lo - 1))  # and a key already in the ledger
        async with audit_db.sessions() as session, session.begin():
            got = await ledger.append_all(session, batch)
        assert [e.idempotency_key for e in got] == [r.idempotency_key for r in batch]
        assert len({e.seq for e in got}) == len({r.idempotency_key for r in batch})
        lo = hi
    entries = await ledger.entries(audit_db.sessions)
    assert [e.seq for e in entries] == list(range(40))
    assert [e.idempotency_key for e in entries] == [f"batch:entry:{j:06d}" for j in range(40)]
    for case in range(3):
        mine = [e.case_seq for e in entries if e.case_id == f"case_batch{case}"]
        assert mine == list(range(1, len(mine) + 1))
    leaves = [leaf.encode(e) for e in entries]
    async with audit_db.sessions() as session:
        assert await tree.size(session) == 40
        for size in range(41):
            assert await tree.root(session, size) == mth(leaves[:size])


async def test_checkpoints_sign_only_when_the_log_grew(audit_db: AuditDb) -> None:
    await append_many(audit_db, 5)
    first, created = await log.checkpoint(audit_db.sessions, audit_db.settings)
    assert created and first.size == 5
    same, created = await log.checkpoint(audit_db.sessions, audit_db.settings)
    assert not created and same.note == first.note
    await append_many(audit_db, 2, start=5)
    second, created = await log.checkpoint(audit_db.sessions, audit_db.settings)
    assert created and second.size == 7
    parsed = note.Note.parse(second.note)
    note.verify(parsed, log.log_verifier_key(audit_db.settings))
    body = note.Checkpoint.parse_body(parsed.text)
    assert (body.origin, body.size) == ("eri.test/audit", 7)
    key_file = audit_db.settings.effective_keys_dir / log.LOG_KEY_SECRET
    assert key_file.stat().st_mode & 0o777 == 0o600


async def test_witness_cosignatures_are_checked_stored_and_served(audit_db: AuditDb) -> None:
    await append_many(audit_db, 3)
    signed, _ = await log.checkpoint(audit_db.sessions, audit_db.settings)
    parsed = note.Note.parse(signed.note)
    cosigned = parsed.with_signature(note.cosign(parsed, WITNESS, 1_780_000_000)).render()
    assert await log.add_cosignatures(audit_db.sessions, audit_db.settings, cosigned) == [
        "cit.gt/comite-1"
    ]
    latest = await log.latest(audit_db.sessions)
    assert latest is not None and latest.cosigners == ("cit.gt/comite-1",)
    note.verify(note.Note.parse(latest.note), WITNESS.verifier)
    stranger = note.Signer.from_seed("someone/else", b"\x09" * 32, note.COSIGNATURE_V1)
    with pytest.raises(log.CosignatureError, match="configured witness"):
        await log.add_cosignatures(
            audit_db.sessions,
            audit_db.settings,
            parsed.with_signature(note.cosign(parsed, stranger, 1_780_000_000)).render(),
        )
    forged = note.Note(parsed.text.replace("\n3\n", "\n4\n"), parsed.signatures)
    with pytest.raises(log.CosignatureError, match="not a checkpoint this log signed"):
        await log.add_cosignatures(
            audit_db.sessions,
            audit_db.settings,
            forged.with_signature(note.cosign(forged, WITNESS, 1)).render(),
        )


async def _export(db: AuditDb, path: Path) -> Path:
    with path.open("wb") as fh:
        await log.export(db.sessions, fh)
    return path


async def test_an_untouched_export_verifies_offline(audit_db: AuditDb, tmp_path: Path) -> None:
    await append_many(audit_db, 6)
    await log.checkpoint(audit_db.sessions, audit_db.settings)
    await append_many(audit_db, 5, start=6)
    signed, _ = await log.checkpoint(audit_db.sessions, audit_db.settings)
    parsed = note.Note.parse(signed.note)
    await log.add_cosignatures(
        audit_db.sessions,
        audit_db.settings,
        parsed.with_signature(note.cosign(parsed, WITNESS, 1_780_000_000)).render(),
    )
    path = await _export(audit_db, tmp_path / "export.jsonl")
    key = log.log_verifier_key(audit_db.settings)
    report = verify_export(path, key, [WITNESS.verifier])
    assert report.ok, report.summary()
    assert (report.entries, report.checkpoints, report.cosignatures) == (11, 2, 1)
    assert report.proofs == 3 and report.covered == 11  # 1 consistency + 2 inclusion
    # Another log key, or a witness who never cosigned, fails.
    other = note.Signer.from_seed("eri.test/audit", b"\x05" * 32).verifier
    assert not verify_export(path, other).ok
    stranger = note.Signer.from_seed("x/w", b"\x06" * 32, note.COSIGNATURE_V1).verifier
    assert (
        "no checkpoint is cosigned by witness x/w" in verify_export(path, key, [stranger]).problems
    )
    # A forged server proof is caught.
    lines = path.read_text().splitlines()
    trailer = json.loads(lines[-1])
    trailer["consistency"][0]["proof"][0] = base64.b64encode(b"\x00" * 32).decode()
    (tmp_path / "bad-proof.jsonl").write_text("\n".join([*lines[:-1], json.dumps(trailer)]) + "\n")
    assert verify_export(tmp_path / "bad-proof.jsonl", key).problems == [
        "consistency proof 6 -> 11 fails"
    ]
    trailer["consistency"][0]["first"] = 5
    (tmp_path / "bad-size.jsonl").write_text("\n".join([*lines[:-1], json.dumps(trailer)]) + "\n")
    assert not verify_export(tmp_path / "bad-size.jsonl", key).ok


def _edit() -> list[str]:
    return ["UPDATE ledger_entries SET actor_institution = 'PNC' WHERE seq = 7"]


TAMPERING: dict[str, tuple[Callable[[], list[str]], int]] = {
    "edit": (lambda: _edit(), 7),
    "delete": (lambda: ["DELETE FROM ledger_entries WHERE seq = 4"], 4),
    "insert": (
        lambda: [
            "INSERT INTO ledger_entries (seq, idempotency_key, recorded_at, action, outcome) "
            "VALUES (12, 'forged:entry:12', '2026-03-02 15:00:00', 'case.viewed', 'ok')"
        ],
        12,
    ),
    "insert-shifting": (
        lambda: [
            "UPDATE ledger_entries SET seq = seq + 1000 WHERE seq >= 9",
            "UPDATE ledger_entries SET seq = seq - 999 WHERE seq >= 1000",
            "INSERT INTO ledger_entries (seq, idempotency_key, recorded_at, action, outcome) "
            "VALUES (9, 'forged:entry:9', '2026-03-02 15:00:00', 'case.viewed', 'ok')",
        ],
        9,
    ),
    "reorder": (
        lambda: [
            "UPDATE ledger_entries SET seq = 100 WHERE seq = 2",
            "UPDATE ledger_entries SET seq = 2 WHERE seq = 5",
            "UPDATE ledger_entries SET seq = 5 WHERE seq = 100",
        ],
        2,
    ),
    # Rewriting both the row and its stored leaf hash: only the signed root can tell.
    "edit-row-and-leaf": (
        lambda: [
            *_edit(),
            "UPDATE audit_nodes SET hash = (SELECT hash FROM audit_nodes WHERE level = 0 "
            'AND "index" = 0) WHERE level = 0 AND "index" = 7',
        ],
        -1,
    ),
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
async def test_tampering_in_the_database_is_detected_and_located(
    audit_db: AuditDb, tmp_path: Path, how: str
) -> None:
    await append_many(audit_db, 6)
    await log.checkpoint(audit_db.sessions, audit_db.settings)
    await append_many(audit_db, 6, start=6)
    await log.checkpoint(audit_db.sessions, audit_db.settings)
    key = log.log_verifier_key(audit_db.settings)
    assert verify_export(await _export(audit_db, tmp_path / "before.jsonl"), key).ok
    statements, first_bad = TAMPERING[how]
    async with audit_db.engine.begin() as conn:
        for statement in statements():
            await conn.execute(text(statement))
    if how == "edit-row-and-leaf":
        async with audit_db.sessions.begin() as session:
            edited = await session.get(LedgerEntry, 7)
            assert edited is not None
            forged = merkle.leaf_hash(leaf.encode(edited))
            node = await session.get(AuditNode, (0, 7))
            assert node is not None
            node.hash = forged
    report = verify_export(await _export(audit_db, tmp_path / "after.jsonl"), key)
    assert not report.ok
    if first_bad >= 0:
        assert report.first_bad_index == first_bad, report.summary()
        assert f"first bad index {first_bad}" in report.summary()
    else:
        # the checkpoints bound the change: entries 6..11 (after the first checkpoint)
        assert report.first_bad_index == 6, report.summary()
        assert "differs from the signed checkpoint" in report.summary()


async def test_the_migration_hashes_existing_entries(empty_database_url: str) -> None:
    """A ledger written before 0005 gets its tree when the migration runs."""
    await asyncio.to_thread(upgrade, empty_database_url, "0004")
    engine = create_engine(empty_database_url)
    sessions = session_factory(engine)
    try:
        async with engine.begin() as conn:
            for i in range(5):
                await conn.execute(
                    text(
                        "INSERT INTO ledger_entries (seq, idempotency_key, recorded_at, action,"
                        " outcome, case_id, case_seq) VALUES (:seq, :key, :at, 'case.viewed',"
                        " 'ok', 'case_mig', :cs)"
                    ),
                    {
                        "seq": i,
                        "key": f"mig:{i:04d}",
                        "at": datetime(2026, 1, i + 1, 10, 0, 0, 250000, tzinfo=UTC),
                        "cs": i + 1,
                    },
                )
            await conn.execute(text("UPDATE ledger_head SET size = 5"))
        await asyncio.to_thread(upgrade, empty_database_url)
        async with sessions() as session:
            query = select(LedgerEntry).order_by(LedgerEntry.seq)
            entries = list((await session.execute(query)).scalars())
            assert await tree.root(session, 5) == mth([leaf.encode(e) for e in entries])
    finally:
        await engine.dispose()
