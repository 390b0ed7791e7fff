"""The protocol model: what a protocol definition (one YAML file per version) contains."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
)

from protocols.conditions import Condition, FactValue, dump_condition, parse_condition
from protocols.durations import check_duration

SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
GROUP = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")

SnakeId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
ProtocolId = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}-[a-z0-9-]+$")]
Version = Annotated[str, StringConstraints(pattern=r"^\d+\.\d+\.\d+$")]
Group = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")]
NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
IsoDuration = Annotated[str, AfterValidator(check_duration)]
ConditionField = Annotated[
    Condition,
    PlainValidator(parse_condition),
    PlainSerializer(dump_condition, return_type=Any),
]

SourceKind = Literal["law", "official_protocol", "official_report", "secondary"]
Evidence = Literal["text_read", "index_only", "inferred"]
Clock = Literal["hours", "calendar_days", "business_days"]
Basis = Literal["statutory", "protocol", "operational"]
AnchorEvent = Literal["case_opened", "step_opened", "step_completed", "fact_recorded"]
Action = Literal["remind_assignee", "escalate_coordinator", "notify_commission"]
FieldType = Literal[
    "text", "boolean", "enum", "date", "datetime", "integer", "institution", "place"
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Strict):
    """The same text in Spanish and English."""

    es: NonEmpty
    en: NonEmpty

    def get(self, lang: str) -> str:
        return self.es if lang == "es" else self.en


class Document(Strict):
    """A source document, with the id the research notes give it (S1, S2, ...)."""

    id: NonEmpty
    title: NonEmpty
    issuer: NonEmpty
    kind: SourceKind
    year: int | None = None
    url: str | None = None
    read: NonEmpty = Field(description="What of the document was actually read.")


class Article(Strict):
    article: NonEmpty
    topic: Text
    read: bool = Field(description="Whether the article's text was read (not just its title).")


class LegalInstrument(Strict):
    document: NonEmpty
    articles: list[Article] = []


class Role(Strict):
    id: SnakeId
    label: Text


class Institution(Strict):
    id: SnakeId
    acronym: NonEmpty
    name: Text
    roles: list[Role]
    sources: list[str] = []


class Fact(Strict):
    """A case fact the protocol branches on; its values form a finite space."""

    id: SnakeId
    type: Literal["boolean", "enum"]
    values: list[SnakeId] | None = None
    label: Text

    def domain(self) -> list[FactValue]:
        if self.type == "boolean":
            return [True, False]
        return list(self.values or [])


class Phase(Strict):
    id: SnakeId
    title: Text


class SourceRef(Strict):
    """A citation: which document, which article or section, what kind of source it is, and
    whether its text was read, only its table of contents, or the step is inferred from it."""

    document: NonEmpty
    section: NonEmpty
    kind: SourceKind
    evidence: Evidence = "text_read"
    note: str | None = None


class Citation(Strict):
    document: NonEmpty
    article: NonEmpty


class Anchor(Strict):
    event: AnchorEvent
    step: SnakeId | None = None
    fact: SnakeId | None = None


class Deadline(Strict):
    duration: IsoDuration
    clock: Clock
    anchor: Anchor
    basis: Basis
    citation: Citation | None = None
    configurable: bool = True
    note: Text | None = None


class Rung(Strict):
    """One rung of an escalation ladder: ``after`` the deadline passes, do ``action``."""

    after: IsoDuration
    action: Action
    targets: list[Group] = []


class FollowUpSchedule(Strict):
    every: IsoDuration
    clock: Clock
    until: ConditionField
    max_occurrences: int | None = Field(default=None, ge=1)
    basis: Basis
    note: Text | None = None


class FormField(Strict):
    id: SnakeId
    type: FieldType
    label: Text
    pii: bool
    required: bool = False
    values: list[SnakeId] | None = None
    #: The case fact this answer records when the step is completed (added, or corrected if
    #: the case already knew it), so the branches that read the fact follow the form.
    sets_fact: SnakeId | None = None


class Form(Strict):
    id: SnakeId
    title: Text
    fields: list[FormField]


class Step(Strict):
    id: SnakeId
    phase: SnakeId
    title: Text
    instructions: Text
    responsible: list[Group] = Field(min_length=1)
    requires: list[SnakeId] = []
    requires_any: list[SnakeId] = []
    after: list[SnakeId] = []
    when: ConditionField | None = None
    form: Form | None = None
    deadline: Deadline | None = None
    escalation: SnakeId | None = None
    repeats: SnakeId | None = None
    sources: list[SourceRef] = []
    review: Literal["required"] | None = None
    review_note: str | None = None


class Retention(Strict):
    years: int = Field(ge=1)
    basis: Basis
    note: Text


class BusinessCalendar(Strict):
    """Days the business-day clock skips besides Saturdays and Sundays."""

    fixed_holidays: list[Annotated[str, StringConstraints(pattern=r"^\d\d-\d\d$")]] = []
    holidays: list[date] = []
    basis: Basis = "operational"
    note: Text

    def holiday_set(self, years: range) -> frozenset[date]:
        days = set(self.holidays)
        for year in years:
            for month_day in self.fixed_holidays:
                month, day = (int(part) for part in month_day.split("-"))
                days.add(date(year, month, day))
        return frozenset(days)


class Protocol(Strict):
    id: ProtocolId
    version: Version
    country: Literal["GT", "HN"]
    timezone: Literal["America/Guatemala", "America/Tegucigalpa"]
    title: Text
    summary: Text
    documents: list[Document]
    legal_framework: list[LegalInstrument] = []
    institutions: list[Institution]
    facts: list[Fact]
    phases: list[Phase]
    escalation_ladders: dict[SnakeId, list[Rung]] = {}
    follow_up_schedules: dict[SnakeId, FollowUpSchedule] = {}
    business_calendar: BusinessCalendar
    retention: Retention
    closure_step: SnakeId
    steps: list[Step]

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def fact(self, fact_id: str) -> Fact:
        for fact in self.facts:
            if fact.id == fact_id:
                return fact
        raise KeyError(fact_id)

    def document(self, doc_id: str) -> Document:
        for doc in self.documents:
            if doc.id == doc_id:
                return doc
        raise KeyError(doc_id)

    @property
    def groups(self) -> set[str]:
        return {f"{inst.id}:{role.id}" for inst in self.institutions for role in inst.roles}

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"
