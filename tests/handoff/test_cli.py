"""``eri handoff`` offline: keygen, verify, open, ack with their messages and exit codes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from typer.testing import CliRunner

from eri.cli import app
from eri.handoff.keys import load_key
from eri.handoff.notices import verify_notice
from eri.handoff.package import CaseRef, LegalBasis, json_part, seal_package, verify_package

runner = CliRunner()


def keygen(tmp: Path, kind: str) -> tuple[str, Path, Path]:
    result = runner.invoke(app, ["handoff", "keygen", "--kind", kind, "--out", str(tmp)])
    assert result.exit_code == 0, result.output
    key_id = result.output.splitlines()[0]
    return key_id, tmp / f"{key_id}.key", tmp / f"{key_id}.pub"


def test_keygen_verify_open_ack(tmp_path: Path) -> None:
    rk_id, rk_priv, rk_pub = keygen(tmp_path / "mp", "recipient")
    ik_id, ik_priv, ik_pub = keygen(tmp_path / "svet", "institution")
    _sk_id, sk_priv, sk_pub = keygen(tmp_path / "mp", "institution")
    assert rk_id.startswith("rk_") and ik_id.startswith("ik_")
    assert stat.S_IMODE(rk_priv.stat().st_mode) == 0o600
    assert b"seed" not in rk_pub.read_bytes()
    sender = load_key(ik_priv)
    recipient_pub = load_key(rk_pub)
    package = seal_package(
        parts=[
            json_part("facts", {"consent": "given"}),
            json_part("statements", {"statement": "Texto sintético."}),
        ],
        case=CaseRef("psn_abcdef0123456789", "gt-eri", "1.0.0"),
        purpose="prosecution",
        legal_basis=LegalBasis("consent"),
        sender_institution="SVET",
        sender_key=sender,  # type: ignore[arg-type]
        recipient=recipient_pub,  # type: ignore[arg-type]
    )
    pkg = tmp_path / "case.erih"
    pkg.write_bytes(package)

    result = runner.invoke(app, ["handoff", "verify", str(pkg)])
    assert result.exit_code == 0, result.output
    assert "integrity only" in result.output and "Texto" not in result.output
    result = runner.invoke(app, ["handoff", "verify", str(pkg), "--trust", str(ik_pub)])
    assert result.exit_code == 0 and "signer is trusted" in result.output
    result = runner.invoke(app, ["handoff", "verify", str(pkg), "--trust", str(sk_pub)])
    assert result.exit_code == 3 and "NOT TRUSTED" in result.output

    tampered = bytearray(package)
    tampered[-5] ^= 0xFF
    bad = tmp_path / "bad.erih"
    bad.write_bytes(bytes(tampered))
    result = runner.invoke(app, ["handoff", "verify", str(bad)])
    assert result.exit_code == 1 and "FAILED: statements: SHA-256" in result.output

    other_id, other_priv, _ = keygen(tmp_path / "other", "recipient")
    result = runner.invoke(
        app, ["handoff", "open", str(pkg), "--key", str(other_priv), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 4 and f"not for {other_id}" in result.output
    assert not (tmp_path / "x").exists()
    result = runner.invoke(
        app, ["handoff", "open", str(bad), "--key", str(rk_priv), "--out", str(tmp_path / "y")]
    )
    assert result.exit_code == 1 and not (tmp_path / "y").exists()
    out = tmp_path / "opened"
    result = runner.invoke(
        app,
        [
            "handoff",
            "open",
            str(pkg),
            "--key",
            str(rk_priv),
            "--out",
            str(out),
            "--trust",
            str(ik_pub),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "statements.json").read_text()) == {"statement": "Texto sintético."}
    assert json.loads((out / "manifest.json").read_text())["sender"]["key_id"] == ik_id

    result = runner.invoke(
        app,
        [
            "handoff",
            "ack",
            str(pkg),
            "--key",
            str(sk_priv),
            "--institution",
            "MP-FETP",
            "--trust",
            str(ik_pub),
        ],
    )
    assert result.exit_code == 0, result.output
    notice = verify_notice(
        (tmp_path / "case.erih.ack.json").read_bytes(),
        [load_key(sk_pub)],  # type: ignore[list-item]
        header_sha256=verify_package(package).header_sha256,
    )
    assert notice.status == "acknowledged" and notice.institution == "MP-FETP"
    result = runner.invoke(
        app, ["handoff", "ack", str(pkg), "--key", str(rk_priv), "--institution", "MP-FETP"]
    )
    assert result.exit_code == 2 and "not an institution private key" in result.output
    result = runner.invoke(
        app, ["handoff", "ack", str(bad), "--key", str(sk_priv), "--institution", "MP-FETP"]
    )
    assert result.exit_code == 1
    result = runner.invoke(app, ["handoff", "verify", str(tmp_path / "missing.erih")])
    assert result.exit_code == 2 and "cannot read" in result.output
