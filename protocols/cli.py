"""``eri protocols``: list, show, validate, diagram, explain, review, lock."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from protocols.conditions import describe
from protocols.diagram import diagrams_markdown, mermaid, replace_readme_section
from protocols.explain import FactsError, describe_deadline, parse_facts, render_explanation
from protocols.loader import definitions_dir, list_protocols, load_protocol
from protocols.lock import LOCK_NAME, content_hash, read_lock, write_lock
from protocols.model import Protocol
from protocols.validator import ProtocolInvalid, validate_file, validate_path

app = typer.Typer(
    no_args_is_help=True,
    help="Protocols as data: list, show, validate, diagram, explain and review them.",
)

Lang = Annotated[str, typer.Option("--lang", help="es or en")]
DIAGRAMS_MD = "diagrams.md"


def _load(protocol_id: str, version: str | None = None) -> Protocol:
    try:
        return load_protocol(protocol_id, version)
    except LookupError as error:
        typer.echo(f"eri protocols: {error.args[0]}", err=True)
        raise typer.Exit(2) from None
    except ProtocolInvalid as error:
        typer.echo(str(error), err=True)
        typer.echo(
            "eri protocols: the definition is invalid; run `eri protocols validate`", err=True
        )
        raise typer.Exit(1) from None


def _check_lang(lang: str) -> str:
    if lang not in ("es", "en"):
        typer.echo("eri protocols: --lang must be es or en", err=True)
        raise typer.Exit(2)
    return lang


@app.command("list")
def list_cmd() -> None:
    """Every protocol version, with its content hash."""
    try:
        protocols = list_protocols()
    except ProtocolInvalid as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    for protocol in protocols:
        typer.echo(
            f"{protocol.id}\t{protocol.version}\t{protocol.country}\t"
            f"{content_hash(protocol)[:12]}\t{protocol.title.en}"
        )


@app.command()
def show(
    protocol_id: Annotated[str, typer.Argument(metavar="ID")],
    lang: Lang = "es",
    version: Annotated[str | None, typer.Option(help="A version; default the newest")] = None,
) -> None:
    """The protocol in one language: phases, steps, who, when, deadlines and sources."""
    lang = _check_lang(lang)
    p = _load(protocol_id, version)
    out = [f"{p.key}  {p.title.get(lang)}", f"{p.country} · {p.timezone}", "", p.summary.get(lang)]
    for phase in p.phases:
        out += ["", f"== {phase.title.get(lang)} =="]
        for step in (s for s in p.steps if s.phase == phase.id):
            out.append(f"- {step.id}: {step.title.get(lang)}")
            out.append(f"    {step.instructions.get(lang)}")
            out.append(f"    {'quién' if lang == 'es' else 'who'}: {', '.join(step.responsible)}")
            if step.when is not None:
                out.append(f"    {'si' if lang == 'es' else 'if'}: {describe(step.when)}")
            deps = [
                *step.requires,
                *(f"({' | '.join(step.requires_any)})" for _ in [0] if step.requires_any),
            ]
            if deps:
                out.append(f"    {'después de' if lang == 'es' else 'after'}: {', '.join(deps)}")
            out.append(
                f"    {'plazo' if lang == 'es' else 'deadline'}: "
                f"{describe_deadline(step.deadline, lang)}"
            )
            if step.form is not None:
                out.append(
                    f"    {'formulario' if lang == 'es' else 'form'}: "
                    f"{step.form.title.get(lang)} ({len(step.form.fields)})"
                )
            for src in step.sources:
                out.append(f"    [{src.document}] {src.section} ({src.kind}, {src.evidence})")
            if step.review == "required":
                out.append("    ⚠ review: required")
    typer.echo("\n".join(out))


@app.command()
def validate(
    path: Annotated[
        Path | None, typer.Argument(help="A file or folder; default the definitions")
    ] = None,
) -> None:
    """Check definitions; exit 1 with one line per problem."""
    target = path or definitions_dir()
    if not target.exists():
        typer.echo(f"eri protocols: {target} does not exist", err=True)
        raise typer.Exit(2)
    protocols, problems = validate_path(target)
    for problem in problems:
        typer.echo(str(problem))
    if problems:
        typer.echo(f"{len(problems)} problem(s) found.")
        raise typer.Exit(1)
    for protocol in protocols:
        typer.echo(f"ok  {protocol.key}  {content_hash(protocol)}")


@app.command()
def diagram(
    protocol_id: Annotated[str | None, typer.Argument(metavar="ID")] = None,
    lang: Lang = "en",
    write: Annotated[bool, typer.Option(help=f"Rewrite definitions/{DIAGRAMS_MD}")] = False,
) -> None:
    """A Mermaid flowchart of a protocol; --write regenerates diagrams.md for every protocol."""
    if write:
        target = definitions_dir() / DIAGRAMS_MD
        target.write_text(diagrams_markdown(_newest()), encoding="utf-8")
        typer.echo(f"wrote {target}")
        readme = definitions_dir().parent.parent / "README.md"
        if readme.is_file():
            text = readme.read_text(encoding="utf-8")
            readme.write_text(replace_readme_section(text, _newest()), encoding="utf-8")
            typer.echo(f"wrote {readme}")
        return
    if protocol_id is None:
        typer.echo("eri protocols: give a protocol ID or --write", err=True)
        raise typer.Exit(2)
    typer.echo(mermaid(_load(protocol_id), _check_lang(lang)), nl=False)


def _newest() -> list[Protocol]:
    newest: dict[str, Protocol] = {}
    for protocol in list_protocols():
        newest[protocol.id] = protocol
    return list(newest.values())


@app.command()
def explain(
    protocol_id: Annotated[str, typer.Argument(metavar="ID")],
    facts: Annotated[str, typer.Option(help="fact=value,... e.g. minor=true,consent=given")] = "",
    lang: Lang = "en",
) -> None:
    """The steps that apply to a case with these facts, in order, with their deadlines."""
    protocol = _load(protocol_id)
    try:
        parsed = parse_facts(protocol, facts)
    except FactsError as error:
        typer.echo(f"eri protocols: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(render_explanation(protocol, parsed, _check_lang(lang)))


@app.command()
def review(protocol_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """What the commission must confirm: steps marked review, and every operational target."""
    p = _load(protocol_id)
    out = [f"{p.key}: items for the commission to confirm", "", "Steps marked review: required"]
    for step in p.steps:
        if step.review == "required":
            cited = "; ".join(
                f"{s.document} {s.section} ({s.kind}, {s.evidence})" for s in step.sources
            )
            out.append(f"- {step.id}: {step.title.en}")
            out.append(f"    sources: {cited}")
            if step.review_note:
                out.append(f"    note: {step.review_note}")
    out += ["", "Operational deadlines (targets set by the commission, no legal source)"]
    for step in p.steps:
        if step.deadline is not None and step.deadline.basis == "operational":
            out.append(f"- {step.id}: {describe_deadline(step.deadline)}")
    out += ["", "Other operational settings"]
    for name, schedule in p.follow_up_schedules.items():
        if schedule.basis == "operational":
            out.append(
                f"- follow-up schedule {name}: every {schedule.every}, "
                f"until {describe(schedule.until)}, at most {schedule.max_occurrences}"
            )
    if p.retention.basis == "operational":
        out.append(f"- retention: {p.retention.years} years")
    if p.business_calendar.basis == "operational":
        out.append(f"- business calendar: {', '.join(p.business_calendar.fixed_holidays)}")
    typer.echo("\n".join(out))


@app.command()
def lock() -> None:
    """Pin new protocol versions in definitions/LOCK (never re-pins a released version)."""
    folder = definitions_dir()
    lock_path = folder / LOCK_NAME
    entries = read_lock(lock_path)
    failed = False
    for path in sorted(folder.glob("*.yaml")):
        protocol, problems = validate_file(path, check_lock=False)
        if problems or protocol is None:
            for problem in problems:
                typer.echo(str(problem), err=True)
            failed = True
            continue
        digest = content_hash(protocol)
        pinned = entries.get(protocol.key)
        if pinned is None:
            entries[protocol.key] = digest
            typer.echo(f"pinned {protocol.key} {digest}")
        elif pinned != digest:
            typer.echo(
                f"{path.name}: {protocol.key} is already pinned with another hash; "
                "give the changed file a new version",
                err=True,
            )
            failed = True
    write_lock(lock_path, entries)
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
