"""What the issue demands of the two definitions themselves."""

from __future__ import annotations

import re

import pytest

from protocols import Protocol, content_hash, load_protocol
from protocols.loader import definitions_dir
from protocols.lock import read_lock

# Fields of these types can identify a person (or a confidential place).
ALWAYS_PII = {"place"}
# Free-text fields that only ever hold an institution or country-level value.
NON_PII_TEXT = {"consulate", "counterpart", "receiving_institution"}


@pytest.fixture(params=["gt-eri", "hn-cicesct"])
def protocol(request: pytest.FixtureRequest) -> Protocol:
    return load_protocol(str(request.param))


def test_every_step_has_sources_and_bilingual_text(protocol: Protocol) -> None:
    for step in protocol.steps:
        assert step.sources, step.id
        assert step.title.es and step.title.en and step.instructions.es and step.instructions.en
        assert re.fullmatch(r"[a-z][a-z0-9_]*", step.id)


def test_every_deadline_has_a_basis_and_none_is_claimed_as_law(protocol: Protocol) -> None:
    deadlines = [s.deadline for s in protocol.steps if s.deadline is not None]
    assert deadlines
    # Research found no published time limit in either country.
    assert {d.basis for d in deadlines} == {"operational"}
    assert all(d.citation is None for d in deadlines)


def test_secondary_only_steps_need_review(protocol: Protocol) -> None:
    for step in protocol.steps:
        firm = [s for s in step.sources if s.kind != "secondary" and s.evidence == "text_read"]
        if not firm:
            assert step.review == "required", step.id


def test_identifying_fields_are_pii(protocol: Protocol) -> None:
    for step in protocol.steps:
        for field in step.form.fields if step.form else []:
            if field.type in ALWAYS_PII:
                assert field.pii or field.id == "entry_point", (step.id, field.id)
            if field.type == "text" and field.id not in NON_PII_TEXT:
                assert field.pii, (step.id, field.id)


def test_every_answer_a_branch_reads_records_its_fact(protocol: Protocol) -> None:
    """A form field named like a fact (and the informed decision, for consent) records it, so
    what a responder answers is what the case's route follows."""
    facts = {f.id for f in protocol.facts}
    recorded = set()
    for step in protocol.steps:
        for field in step.form.fields if step.form else []:
            if field.id in facts:
                assert field.sets_fact == field.id, (step.id, field.id)
            if field.sets_fact:
                recorded.add(field.sets_fact)
    assert {"minor", "foreign_national", "consent", "risk_level"} <= recorded


def test_no_personal_data_in_definitions() -> None:
    for path in definitions_dir().glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\b\d{4}-\d{4}\b", text), f"phone number in {path.name}"
        assert not re.search(r"[\w.]+@[\w-]+\.\w+", text), f"e-mail address in {path.name}"
        assert "Sua Mart" not in text  # a public official named in the research


def test_honduras_is_not_sourced_as_guatemala() -> None:
    hn = load_protocol("hn-cicesct")
    for step in hn.steps:
        for source in step.sources:
            if source.document == "S16":  # Guatemala's SVET protocol
                assert source.evidence == "inferred" and step.review == "required"


def test_lock_pins_current_content() -> None:
    lock = read_lock(definitions_dir() / "LOCK")
    for pid in ("gt-eri", "hn-cicesct"):
        protocol = load_protocol(pid)
        assert lock[protocol.key] == content_hash(protocol)
