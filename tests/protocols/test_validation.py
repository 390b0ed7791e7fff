"""Each validation rule has a fixture that breaks it; the message names file, place and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocols import validate_file, validate_path
from protocols.loader import definitions_dir

FIXTURES = Path(__file__).parent / "fixtures"

# fixture (= rule code) -> the exact message a commission's staff member reads
EXPECTED: dict[str, str] = {
    "yaml_syntax": "yaml_syntax.yaml: line 3, column 3: the YAML cannot be read: expected the "
    "node content, but found '-'",
    "structure": "structure.yaml: step 'care', field 'titel': is not a known field "
    "(check the spelling)",
    "missing_text": "missing_text.yaml: step 'care', field 'title.en': the English text (en) is "
    "missing or empty",
    "duplicate_id": "duplicate_id.yaml: step 'intake', field 'id': the id 'intake' is used 2 "
    "times; ids must be unique",
    "unknown_phase": "unknown_phase.yaml: step 'care', field 'phase': names an unknown phase "
    "'middle'",
    "unknown_institution": "unknown_institution.yaml: step 'care', field 'responsible': "
    "'police:worker' names an unknown institution 'police'",
    "unknown_role": "unknown_role.yaml: step 'care', field 'responsible': 'team:judge': "
    "institution 'team' has no role 'judge'",
    "unknown_step": "unknown_step.yaml: step 'care', field 'requires': names an unknown step "
    "'intak'",
    "cycle": "cycle.yaml: step 'intake', field 'requires': prerequisites go round in a circle: "
    "intake -> care -> intake",
    "unknown_fact": "unknown_fact.yaml: step 'child_care', field 'when': the condition uses an "
    "undeclared fact 'adult'",
    "bad_fact_value": "bad_fact_value.yaml: step 'refusal', field 'when': the fact 'consent' "
    "cannot be 'maybe'; allowed: given, refused",
    "fact_values": "fact_values.yaml: fact 'consent', field 'values': an enum fact needs at "
    "least two values",
    "missing_source": "missing_source.yaml: step 'care', field 'sources': has no source; every "
    "step must cite at least one (document, article or section, kind)",
    "unknown_document": "unknown_document.yaml: step 'care', field 'sources[0].document': names "
    "an unknown document 'D9'",
    "source_kind_mismatch": "source_kind_mismatch.yaml: step 'care', field 'sources[0].kind': "
    "says 'official_protocol' but document 'D1' is 'law'",
    "review_required": "review_required.yaml: step 'care', field 'review': every source of this "
    "step is secondary, index-only or inferred, so the step must be marked 'review: required'",
    "deadline_citation": "deadline_citation.yaml: step 'care', field 'deadline.citation': a "
    "protocol deadline must cite the document and article that set it",
    "statutory_not_law": "statutory_not_law.yaml: step 'care', field 'deadline.basis': a "
    "statutory deadline must come from a law; document 'D3' is 'official_protocol'",
    "protocol_not_protocol": "protocol_not_protocol.yaml: step 'care', field 'deadline.basis': "
    "a protocol deadline must come from an official protocol; document 'D2' is 'secondary'",
    "operational_with_citation": "operational_with_citation.yaml: step 'care', field "
    "'deadline.citation': an operational deadline is a target the commission sets and claims "
    "no legal source; remove the citation or change the basis",
    "deadline_clock": "deadline_clock.yaml: step 'care', field 'deadline.duration': PT24H has "
    "hours or minutes but the clock counts business days; use whole days (e.g. P3D)",
    "bad_anchor": "bad_anchor.yaml: step 'care', field 'deadline.anchor.step': the anchor step "
    "'child_care' is not among this step's prerequisites, so it may never be completed first",
    "unknown_ladder": "unknown_ladder.yaml: step 'care', field 'escalation': names an unknown "
    "escalation ladder 'urgent'",
    "escalation_without_deadline": "escalation_without_deadline.yaml: step 'care', field "
    "'escalation': has an escalation ladder but no deadline to escalate from",
    "ladder_targets": "ladder_targets.yaml: escalation ladder 'standard', field 'rung 2': "
    "'escalate_coordinator' needs at least one target group",
    "ladder_order": "ladder_order.yaml: escalation ladder 'standard', field 'rung 2': rungs must "
    "be in order of 'after'",
    "unknown_schedule": "unknown_schedule.yaml: step 'follow_up', field 'repeats': names an "
    "unknown follow-up schedule 'weekly'",
    "closure_unreachable": "closure_unreachable.yaml: protocol, field 'closure_step': the case "
    "never reaches 'closure' when minor=false, consent=given (and 1 more combinations): its "
    "condition (minor == true) does not hold",
    "blocked_step": "blocked_step.yaml: step 'child_report', field 'requires': applies when "
    "minor=false, consent=given but can never start, because a step it requires (child_care) "
    "does not apply then",
    "unreachable_step": "unreachable_step.yaml: step 'child_care', field 'when': no combination "
    "of facts ever reaches this step",
    "duplicate_field": "duplicate_field.yaml: step 'intake', field 'form.fields.place': the form "
    "has the field 'place' 2 times",
    "field_values": "field_values.yaml: step 'intake', field 'form.fields.channel': an enum "
    "field needs at least two values",
    "field_fact": "field_fact.yaml: step 'intake', field 'form.fields.channel.sets_fact': the "
    "fact 'consent' cannot take the value(s) phone, visit",
    "fact_space": "fact_space.yaml: protocol, field 'facts': the facts the steps branch on have "
    "131072 combinations; keep it under 20000",
}

PINNING: dict[str, tuple[str, str]] = {
    "wrong-name.yaml": (
        "file_name",
        "wrong-name.yaml: protocol, field 'version': the file for xx-named@1.0.0 must be named "
        "xx-named-1.0.0.yaml",
    ),
    "xx-unlocked-1.0.0.yaml": (
        "not_locked",
        "xx-unlocked-1.0.0.yaml: protocol, field 'version': xx-unlocked@1.0.0 is not in the LOCK "
        "file; run `eri protocols lock` to pin it",
    ),
    "xx-changed-1.0.0.yaml": (
        "lock_mismatch",
        "xx-changed-1.0.0.yaml: protocol, field 'version': the content of xx-changed@1.0.0 "
        "changed but its version did not; give the file a new version (and file name) instead "
        "of editing a released one",
    ),
}


def test_definitions_validate() -> None:
    protocols, problems = validate_path(definitions_dir())
    assert [str(p) for p in problems] == []
    assert sorted(p.key for p in protocols) == [
        "gt-eri@1.0.0",
        "gt-eri@1.1.0",
        "hn-cicesct@1.0.0",
        "hn-cicesct@1.1.0",
    ]


def test_base_fixture_is_valid() -> None:
    protocol, problems = validate_file(FIXTURES / "base.yaml")
    assert protocol is not None
    assert problems == []


def test_every_fixture_is_covered() -> None:
    on_disk = {p.stem for p in FIXTURES.glob("*.yaml")} - {"base"}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("rule", sorted(EXPECTED))
def test_rule_fixture_fails_with_message(rule: str) -> None:
    _, problems = validate_file(FIXTURES / f"{rule}.yaml")
    assert problems, f"{rule}.yaml should fail"
    assert problems[0].rule == rule
    assert str(problems[0]) == EXPECTED[rule]


@pytest.mark.parametrize("name", sorted(PINNING))
def test_pinning_fixture_fails_with_message(name: str) -> None:
    rule, message = PINNING[name]
    _, problems = validate_file(FIXTURES / "pinning" / name)
    assert [(p.rule, str(p)) for p in problems] == [(rule, message)]


def test_editing_a_released_definition_fails(tmp_path: Path) -> None:
    source = definitions_dir() / "gt-eri-1.0.0.yaml"
    copy = tmp_path / source.name
    copy.write_text(
        source.read_text(encoding="utf-8").replace("duration: PT2H", "duration: PT3H", 1),
        encoding="utf-8",
    )
    (tmp_path / "LOCK").write_text((definitions_dir() / "LOCK").read_text(), encoding="utf-8")
    _, problems = validate_file(copy)
    assert [p.rule for p in problems] == ["lock_mismatch"]
    # Comments and layout are not content: they do not change the hash.
    copy.write_text("# a comment\n" + source.read_text(encoding="utf-8"), encoding="utf-8")
    assert validate_file(copy)[1] == []


def test_fixtures_are_generated_from_the_script(tmp_path: Path) -> None:
    """The committed fixtures match their generator (so the table above stays honest)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_generate", FIXTURES / "_generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.HERE = tmp_path
    module.main()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            committed = FIXTURES / path.relative_to(tmp_path)
            assert committed.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
                f"{committed} is stale; run python tests/protocols/fixtures/_generate.py"
            )
