"""``eri audit keygen | cosign | verify``: the committee's offline tools, on files only."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from typer.testing import CliRunner

from eri.audit import log, note
from eri.audit.cli import app
from tests.audit.conftest import AuditDb, append_many

runner = CliRunner()


async def test_keygen_cosign_and_verify_offline(audit_db: AuditDb, tmp_path: Path) -> None:
    await append_many(audit_db, 9)
    signed, _ = await log.checkpoint(audit_db.sessions, audit_db.settings)
    log_key = log.log_verifier_key(audit_db.settings).encode()
    (tmp_path / "log.vkey").write_text(log_key + "\n")

    made = runner.invoke(app, ["keygen", "cit.gt/comite-2", "--out", str(tmp_path / "w.skey")])
    assert made.exit_code == 0, made.output
    witness = note.VerifierKey.parse(made.stdout.strip())
    assert witness.alg == note.COSIGNATURE_V1
    assert (tmp_path / "w.skey").stat().st_mode & 0o777 == 0o600

    (tmp_path / "checkpoint.txt").write_text(signed.note)
    cosigned = runner.invoke(
        app,
        [
            "cosign",
            str(tmp_path / "checkpoint.txt"),
            "--key",
            str(tmp_path / "w.skey"),
            "--log-key",
            str(tmp_path / "log.vkey"),
        ],
    )
    assert cosigned.exit_code == 0, cosigned.output
    settings = audit_db.settings.model_copy(update={"audit_witnesses": [witness.encode()]})
    assert await log.add_cosignatures(audit_db.sessions, settings, cosigned.stdout) == [
        "cit.gt/comite-2"
    ]
    # A checkpoint signed by another key is not cosigned.
    forged = note.sign(
        note.Note.parse(signed.note).text, note.Signer.from_seed("eri.test/audit", b"\x03" * 32)
    )
    (tmp_path / "forged.txt").write_text(forged.render())
    refused = runner.invoke(
        app,
        [
            "cosign",
            str(tmp_path / "forged.txt"),
            "--key",
            str(tmp_path / "w.skey"),
            "--log-key",
            log_key,
        ],
    )
    assert refused.exit_code == 1

    export = tmp_path / "export.jsonl"
    with export.open("wb") as fh:
        await log.export(audit_db.sessions, fh)
    ok = runner.invoke(
        app,
        ["verify", str(export), "--key", str(tmp_path / "log.vkey"), "--witness", witness.encode()],
    )
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith("OK: 9 entries, 1 checkpoints, 1 cosignatures")

    async with audit_db.engine.begin() as conn:
        await conn.execute(text("UPDATE ledger_entries SET outcome = 'denied' WHERE seq = 3"))
    with export.open("wb") as fh:
        await log.export(audit_db.sessions, fh)
    bad = runner.invoke(app, ["verify", str(export), "--key", log_key])
    assert bad.exit_code == 1
    assert "first bad index 3" in bad.stdout
    garbage = runner.invoke(app, ["verify", str(export), "--key", "not-a-key"])
    assert garbage.exit_code == 2
