"""C2SP signed notes, checkpoints and cosignatures."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from eri.audit import log, note
from eri.settings import Environment, Settings, SettingsError

# The example key and note of the signed-note specification (golang.org/x/mod/sumdb/note).
SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
SIGNED = (
    TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvq"
    + "fqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_the_specification_example_signs_and_verifies_byte_for_byte() -> None:
    signer = note.Signer.parse(SKEY)
    assert signer.verifier.encode() == VKEY
    assert signer.encode() == SKEY
    assert note.sign(TEXT, signer).render() == SIGNED
    parsed = note.Note.parse(SIGNED)
    assert note.verify(parsed, note.VerifierKey.parse(VKEY)).name == "PeterNeumann"


def test_a_changed_text_or_another_key_fails() -> None:
    key = note.VerifierKey.parse(VKEY)
    forged = note.Note.parse(SIGNED.replace("answer", "ansver"))
    with pytest.raises(note.NoteError, match="does not verify"):
        note.verify(forged, key)
    other = note.Signer.from_seed("PeterNeumann", b"\x07" * 32)
    with pytest.raises(note.NoteError, match="no signature"):
        note.verify(note.Note.parse(SIGNED), other.verifier)
    with pytest.raises(note.NoteError, match="does not match"):
        note.VerifierKey.parse(VKEY.replace("c74f20a3", "c74f20a4"))


def test_checkpoint_body_and_cosignature_v1() -> None:
    log = note.Signer.from_seed("eri.test/audit", b"\x01" * 32)
    witness = note.Signer.from_seed("cit.gt/w1", b"\x02" * 32, note.COSIGNATURE_V1)
    body = note.Checkpoint("eri.test/audit", 20852163, b"\x0a" * 32).body()
    assert body == "eri.test/audit\n20852163\nCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo=\n"
    assert note.Checkpoint.parse_body(body).size == 20852163
    signed = note.sign(body, log)
    line = note.cosign(signed, witness, 1679315147)
    cosigned = note.Note.parse(signed.with_signature(line).render())
    assert [s.name for s in cosigned.signatures] == ["eri.test/audit", "cit.gt/w1"]
    assert note.cosignature_time(note.verify(cosigned, witness.verifier)) == 1679315147
    note.verify(cosigned, log.verifier)
    # The witness key id uses the cosignature type 0x04, so it is not the same key as type 0x01.
    assert witness.verifier.id != note.key_id("cit.gt/w1", witness.private.public_key())
    # A cosignature over another checkpoint does not transfer.
    other = note.sign(note.Checkpoint("eri.test/audit", 1, b"\x0b" * 32).body(), log)
    with pytest.raises(note.NoteError):
        note.verify(other.with_signature(line), witness.verifier)


@pytest.mark.parametrize(
    "bad",
    ["", "no blank line\n", "a\n\n— name\n", "a\n\n- name AAAA\n", "a\n\n— name !!!!\n"],
)
def test_malformed_notes_are_refused(bad: str) -> None:
    with pytest.raises(note.NoteError):
        note.Note.parse(bad)


def test_production_refuses_a_missing_log_key(tmp_path: Path) -> None:
    settings = Settings(
        environment=Environment.PRODUCTION,
        database_url="postgresql+asyncpg://eri@db/eri",
        kek=SecretStr("a" * 44),
        keys_dir=tmp_path,
    )
    with pytest.raises(SettingsError, match="audit-log-signing"):
        log.log_signer(settings)
    development = Settings(keys_dir=tmp_path / "dev")
    assert log.log_signer(development).verifier == log.log_signer(development).verifier
    assert (tmp_path / "dev" / "audit-log-signing").stat().st_mode & 0o777 == 0o600
