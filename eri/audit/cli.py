"""``eri audit``: checkpoint, key, keygen, cosign, export, verify.

``verify`` and ``cosign`` work offline, on the committee member's machine: they read files and
keys only, never the server or its database.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Annotated

import typer

from eri.audit import note
from eri.logging import configure_logging
from eri.settings import Settings, SettingsError, get_settings

app = typer.Typer(
    no_args_is_help=True,
    help="Audit trail: signed checkpoints, witness cosignatures, exports, offline verification.",
)


def _key(value: str) -> note.VerifierKey:
    """A verifier key given inline or as the path of a file holding it."""
    path = Path(value)
    text = path.read_text() if "+" not in value and path.is_file() else value
    try:
        return note.VerifierKey.parse(text)
    except note.NoteError as exc:
        raise typer.BadParameter(str(exc)) from None


def _settings() -> Settings:
    try:
        settings = get_settings()
    except SettingsError as exc:
        typer.echo(f"eri: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings, component="audit")
    return settings


@app.command("checkpoint")
def checkpoint() -> None:
    """Sign a checkpoint now (CheckpointWorkflow on Temporal); print the signed note."""
    from eri import temporal
    from eri.audit import log
    from eri.audit.schedule import checkpoint_now
    from eri.runtime import open_runtime

    settings = _settings()

    async def go() -> str:
        async with open_runtime(settings) as rt:
            client = await temporal.connect(settings, rt.keyring)
            result = await checkpoint_now(client, settings, uuid.uuid4().hex[:12])
            latest = await log.latest(rt.sessions)
            assert latest is not None and latest.size >= result.size
            return latest.note

    typer.echo(asyncio.run(go()), nl=False)


@app.command("key")
def key() -> None:
    """Print the log's public (verifier) key, to give to committee members."""
    from eri.audit import log

    settings = _settings()
    typer.echo(log.log_verifier_key(settings).encode())


@app.command("keygen")
def keygen(
    name: Annotated[str, typer.Argument(help="Witness name, e.g. cit.gt/comite-1")],
    out: Annotated[Path, typer.Option("--out", help="File for the private key (mode 0600)")],
) -> None:
    """Create a committee member's witness key; print its public key (give it to the operator)."""
    signer = note.Signer.from_seed(name, os.urandom(32), note.COSIGNATURE_V1)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(signer.encode() + "\n")
    typer.echo(signer.verifier.encode())


@app.command("cosign")
def cosign(
    checkpoint_file: Annotated[Path, typer.Argument(help="The signed checkpoint note")],
    key_file: Annotated[Path, typer.Option("--key", help="Your witness private key file")],
    log_key: Annotated[str, typer.Option("--log-key", help="The log's verifier key")],
) -> None:
    """Verify the log's signature on a checkpoint and print it with your cosignature added.

    Cosign only a checkpoint you have checked (``eri audit verify`` on an export that ends
    with it): a cosignature says the log is consistent with what you have seen.
    """
    try:
        signer = note.Signer.parse(key_file.read_text())
        parsed = note.Note.parse(checkpoint_file.read_text())
        note.Checkpoint.parse_body(parsed.text)
        note.verify(parsed, _key(log_key))
        line = note.cosign(parsed, signer, int(time.time()))
    except note.NoteError as exc:
        typer.echo(f"eri: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(parsed.with_signature(line).render(), nl=False)


@app.command("export")
def export(out: Annotated[Path, typer.Argument(help="File to write")]) -> None:
    """Export every ledger entry and checkpoint (for ``eri audit verify``)."""
    from eri.audit import log
    from eri.runtime import open_runtime

    settings = _settings()

    async def go() -> int:
        async with open_runtime(settings) as rt:
            with out.open("wb") as fh:
                return await log.export(rt.sessions, fh)

    typer.echo(f"{asyncio.run(go())} entries written to {out}")


@app.command("verify")
def verify(
    export_file: Annotated[Path, typer.Argument(help="An export from eri audit export")],
    log_key: Annotated[str, typer.Option("--key", help="The log's verifier key (or its file)")],
    witness: Annotated[
        list[str] | None, typer.Option("--witness", help="A witness verifier key; repeatable")
    ] = None,
) -> None:
    """Verify an export offline: signatures, every leaf, roots, inclusion and consistency."""
    from eri.audit.verify import verify_export

    started = time.perf_counter()
    report = verify_export(export_file, _key(log_key), [_key(w) for w in witness or []])
    typer.echo(report.summary())
    typer.echo(f"({time.perf_counter() - started:.2f} s)", err=True)
    raise typer.Exit(0 if report.ok else 1)
