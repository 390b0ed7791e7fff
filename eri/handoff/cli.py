"""``eri handoff``: offline tools for recipients and institutions (no server, no database).

Exit codes: 0 success; 1 the package (or notice) failed a check, and the message names the
part; 2 usage error or unreadable file/key; 3 the signature is valid but the signer is not
among the trusted keys given; 4 the package is not addressed to this key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Final

import typer

from eri.handoff.keys import (
    InstitutionPrivateKey,
    InstitutionPublicKey,
    KeyFormatError,
    RecipientPrivateKey,
    load_key,
    write_key,
)
from eri.handoff.notices import make_ack
from eri.handoff.package import (
    NotForThisKeyError,
    PackageError,
    Verified,
    open_package,
    verify_package,
)

OK: Final = 0
FAILED: Final = 1
USAGE: Final = 2
UNTRUSTED: Final = 3
NOT_FOR_THIS_KEY: Final = 4

app = typer.Typer(
    no_args_is_help=True,
    help="Handoff packages: keys, verify, open, acknowledge (offline).",
)

TrustOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--trust",
        help="A trusted sender public key file (.pub) or a directory of them; repeatable.",
    ),
]


def _fail(code: int, message: str) -> typer.Exit:
    typer.echo(f"eri handoff: {message}", err=True)
    return typer.Exit(code)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        raise _fail(USAGE, f"cannot read {path}") from None


def _trusted(paths: list[Path] | None) -> list[InstitutionPublicKey] | None:
    if not paths:
        return None
    keys: list[InstitutionPublicKey] = []
    for path in paths:
        files = sorted(path.glob("*.pub")) if path.is_dir() else [path]
        for file in files:
            try:
                key = load_key(file)
            except KeyFormatError as exc:
                raise _fail(USAGE, f"{file}: {exc}") from None
            if isinstance(key, InstitutionPublicKey):
                keys.append(key)
    if not keys:
        raise _fail(USAGE, "no institution public keys found in --trust")
    return keys


def _verify(data: bytes, trust: list[Path] | None) -> Verified:
    trusted = _trusted(trust)
    try:
        return verify_package(data, trusted)
    except PackageError as exc:
        if exc.code == "untrusted_signer":
            raise _fail(UNTRUSTED, f"NOT TRUSTED: {exc}") from None
        raise _fail(FAILED, f"FAILED: {exc}") from None


def _summary(v: Verified) -> None:
    typer.echo(f"package    {v.package_id}")
    typer.echo(f"created    {v.created_at}")
    typer.echo(f"sender     {v.sender_institution} (key {v.sender_key.key_id})")
    recipient = v.recipient_institution or "-"
    typer.echo(f"recipient  {recipient} (key {v.recipient_key_id})")
    typer.echo(f"sha256     {v.package_sha256}")
    for s in v.sections:
        typer.echo(f"  ok  {s.name:<28} {s.size:>10} bytes  sha256 {s.sha256[:16]}…")


@app.command("keygen")
def keygen(
    kind: Annotated[
        str, typer.Option(help="recipient (opens packages) or institution (signs packages/acks)")
    ],
    out: Annotated[Path, typer.Option(help="Directory for <key id>.key and <key id>.pub")],
) -> None:
    """Create a key pair: the private file (mode 0600) and the public file to register."""
    if kind not in ("recipient", "institution"):
        raise _fail(USAGE, "--kind must be recipient or institution")
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = (
        RecipientPrivateKey.generate() if kind == "recipient" else InstitutionPrivateKey.generate()
    )
    key_id = private.key_id
    write_key(out / f"{key_id}.key", private)
    write_key(out / f"{key_id}.pub", private.public())
    typer.echo(key_id)
    typer.echo(f"private key {out / (key_id + '.key')} (keep it offline; never send it)")
    typer.echo(f"public key  {out / (key_id + '.pub')} (register it with the sender)")


@app.command("verify")
def verify(package: Path, trust: TrustOpt = None) -> None:
    """Check the signature and every sealed section; names what failed, shows no content."""
    verified = _verify(_read(package), trust)
    _summary(verified)
    if verified.trusted:
        typer.echo("VERIFIED: signature and every section check out; signer is trusted")
    else:
        typer.echo(
            "VERIFIED (integrity only): give --trust with the sender's registered key "
            "to check who signed it"
        )


@app.command("open")
def open_(
    package: Path,
    key: Annotated[Path, typer.Option(help="Your recipient private key file")],
    out: Annotated[Path, typer.Option(help="Directory to write the manifest and parts to")],
    trust: TrustOpt = None,
) -> None:
    """Verify everything, then decrypt and check every part; writes files only if all pass."""
    data = _read(package)
    try:
        recipient = load_key(key)
    except KeyFormatError as exc:
        raise _fail(USAGE, f"{key}: {exc}") from None
    if not isinstance(recipient, RecipientPrivateKey):
        raise _fail(USAGE, f"{key} is not a recipient private key")
    if out.exists() and any(out.iterdir()):
        raise _fail(USAGE, f"{out} is not empty")
    _verify(data, trust)  # exit codes 1/3 before any decryption
    try:
        opened = open_package(data, recipient, _trusted(trust))
    except NotForThisKeyError as exc:
        raise _fail(NOT_FOR_THIS_KEY, str(exc)) from None
    except PackageError as exc:
        raise _fail(FAILED, f"FAILED: {exc}") from None
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    (out / "manifest.json").write_text(json.dumps(opened.manifest, indent=2, ensure_ascii=False))
    for entry in opened.manifest["parts"]:
        name = entry["name"]
        target = out / (name + (".json" if entry["media_type"] == "application/json" else ""))
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        target.write_bytes(opened.parts[name])
        typer.echo(f"  ok  {name:<28} {entry['size']:>10} bytes  sha256 {entry['sha256'][:16]}…")
    typer.echo(f"OPENED {opened.verified.package_id}: every part verified; written to {out}")


@app.command("ack")
def ack(
    package: Path,
    key: Annotated[Path, typer.Option(help="Your institution signing key file")],
    institution: Annotated[str, typer.Option(help="Your institution code, e.g. MP-FETP")],
    reject: Annotated[
        str | None, typer.Option(help="Reject instead, with a reason code (e.g. incomplete)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write the notice")] = None,
    trust: TrustOpt = None,
) -> None:
    """Write a signed acknowledgement (or rejection) of a package that verifies."""
    data = _read(package)
    try:
        signer = load_key(key)
    except KeyFormatError as exc:
        raise _fail(USAGE, f"{key}: {exc}") from None
    if not isinstance(signer, InstitutionPrivateKey):
        raise _fail(USAGE, f"{key} is not an institution private key")
    verified = _verify(data, trust)
    try:
        notice = make_ack(
            verified,
            signer,
            institution,
            status="rejected" if reject else "acknowledged",
            reason=reject,
        )
    except ValueError as exc:
        raise _fail(USAGE, str(exc)) from None
    target = out or package.with_name(package.name + (".reject.json" if reject else ".ack.json"))
    target.write_bytes(notice)
    word = "rejection" if reject else "acknowledgement"
    typer.echo(f"signed {word} of {verified.package_id} written to {target}")
