from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from protocols import list_protocols
from protocols.cli import app
from protocols.diagram import diagrams_markdown, replace_readme_section
from protocols.loader import definitions_dir

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures"


def test_list_shows_every_version() -> None:
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split("\t")[:3] for line in lines] == [
        ["gt-eri", "1.0.0", "GT"],
        ["gt-eri", "1.1.0", "GT"],
        ["hn-cicesct", "1.0.0", "HN"],
        ["hn-cicesct", "1.1.0", "HN"],
    ]


def test_show_in_both_languages() -> None:
    es = runner.invoke(app, ["show", "gt-eri", "--lang", "es"])
    en = runner.invoke(app, ["show", "gt-eri", "--lang", "en"])
    assert es.exit_code == en.exit_code == 0
    assert "Activación del ERI (Ficha de Activación)" in es.output
    assert "ERI activation (Activation Form)" in en.output
    assert "[S7] PGN actividad 10 (official_protocol, text_read)" in en.output
    assert runner.invoke(app, ["show", "gt-eri", "--lang", "fr"]).exit_code == 2
    missing = runner.invoke(app, ["show", "xx-nothing"])
    assert missing.exit_code == 2
    assert "no protocol xx-nothing" in missing.output


def test_validate_default_and_path() -> None:
    ok = runner.invoke(app, ["validate"])
    assert ok.exit_code == 0, ok.output
    for key in ("gt-eri@1.0.0", "gt-eri@1.1.0", "hn-cicesct@1.0.0", "hn-cicesct@1.1.0"):
        assert f"ok  {key}" in ok.output
    bad = runner.invoke(app, ["validate", str(FIXTURES / "missing_source.yaml")])
    assert bad.exit_code == 1
    assert "missing_source.yaml: step 'care', field 'sources': has no source" in bad.output


def test_diagram_is_mermaid() -> None:
    result = runner.invoke(app, ["diagram", "hn-cicesct"])
    assert result.exit_code == 0
    assert result.output.startswith("flowchart TD\n")
    assert 'subgraph ph_protection["4. Protection (children and adults)"]' in result.output
    assert "consent_refused --> case_closure" in result.output
    assert "⏱ PT2H hours · basis operational" in result.output


def test_diagrams_md_is_up_to_date() -> None:
    committed = (definitions_dir() / "diagrams.md").read_text(encoding="utf-8")
    newest = {p.id: p for p in list_protocols()}
    assert committed == diagrams_markdown(list(newest.values())), (
        "run: python -m protocols.cli diagram --write"
    )


def test_readme_embeds_current_diagrams() -> None:
    readme_path = definitions_dir().parent.parent / "README.md"
    readme = readme_path.read_text(encoding="utf-8")
    newest = {p.id: p for p in list_protocols()}
    assert readme == replace_readme_section(readme, list(newest.values())), (
        "run: eri protocols diagram --write"
    )
    assert readme.count("```mermaid") == len(newest)


def test_explain_command() -> None:
    result = runner.invoke(
        app, ["explain", "gt-eri", "--facts", "minor=true,foreign_national=true"]
    )
    assert result.exit_code == 0, result.output
    assert " 1. detection: Detection of a possible victim" in result.output
    assert "child_protection_measures" in result.output
    assert "PT24H (hours) from fact recorded minor; basis operational" in result.output
    assert "[may apply: depends on facts not given]" in result.output
    bad = runner.invoke(app, ["explain", "gt-eri", "--facts", "age=3"])
    assert bad.exit_code == 2
    assert "unknown fact 'age'" in bad.output


def test_review_lists_review_steps_and_operational_deadlines() -> None:
    result = runner.invoke(app, ["review", "hn-cicesct"])
    assert result.exit_code == 0
    out = result.output
    assert "Steps marked review: required" in out
    assert "- consent_recorded: Informed decision recorded" in out
    assert "- eri_activation: PT2H (hours) from case opened; basis operational" in out
    assert "- retention: 10 years" in out


def test_lock_is_idempotent() -> None:
    before = (definitions_dir() / "LOCK").read_text(encoding="utf-8")
    result = runner.invoke(app, ["lock"])
    assert result.exit_code == 0, result.output
    assert (definitions_dir() / "LOCK").read_text(encoding="utf-8") == before
