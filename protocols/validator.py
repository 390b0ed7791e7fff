"""Validation of protocol definitions, with messages a non-programmer can act on.

Every problem names the file, where in it (protocol, step, fact, ...), the field, and what is
wrong. ``rule`` is a stable code (tests and tools match on it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from protocols.conditions import Condition, describe, leaves
from protocols.durations import parse_duration
from protocols.lock import LOCK_NAME, content_hash, read_lock
from protocols.model import FormField, Protocol, Step
from protocols.paths import ancestors, fact_space, find_cycle, space_size, step_order, walk

MAX_FACT_COMBINATIONS = 20_000
_LANG = {"es": "Spanish text (es)", "en": "English text (en)"}
_NAMED_LISTS = {
    "steps": "step",
    "facts": "fact",
    "institutions": "institution",
    "phases": "phase",
    "documents": "document",
    "fields": "field",
    "roles": "role",
}


@dataclass(frozen=True)
class Problem:
    file: str
    where: str
    field: str
    message: str
    rule: str

    def __str__(self) -> str:
        field = f", field '{self.field}'" if self.field else ""
        return f"{self.file}: {self.where}{field}: {self.message}"


class ProtocolInvalid(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


# --- structure (pydantic) errors, translated -------------------------------------------------


def _describe_location(raw: Any, loc: tuple[int | str, ...]) -> tuple[str, str]:
    """Turn a pydantic location into ("step 'activation'", "form.fields[2].label.en")."""
    where = "protocol"
    rest: list[str] = []
    node = raw
    index = 0
    while index < len(loc):
        part = loc[index]
        nxt = loc[index + 1] if index + 1 < len(loc) else None
        if isinstance(part, str) and part in _NAMED_LISTS and isinstance(nxt, int):
            item = node.get(part, [])[nxt] if isinstance(node, dict) else None
            name = item.get("id") if isinstance(item, dict) else None
            label = f"{_NAMED_LISTS[part]} '{name}'" if name else f"{_NAMED_LISTS[part]} #{nxt + 1}"
            if part in ("steps", "facts", "institutions", "phases", "documents"):
                where, rest = label, []
            else:
                rest.append(label)
            node = item
            index += 2
            continue
        rest.append(str(part))
        node = node.get(part) if isinstance(node, dict) else None
        index += 1
    return where, ".".join(rest)


def _structure_problems(file: str, raw: Any, error: ValidationError) -> list[Problem]:
    problems = []
    for err in error.errors():
        loc = tuple(err["loc"])
        where, field = _describe_location(raw, loc)
        last = loc[-1] if loc else ""
        kind = err["type"]
        rule = "structure"
        if last in _LANG and kind in ("missing", "string_too_short", "string_type"):
            rule = "missing_text"
            message = f"the {_LANG[str(last)]} is missing or empty"
        elif kind == "missing":
            message = "is required but missing"
        elif kind == "extra_forbidden":
            message = "is not a known field (check the spelling)"
        elif kind == "string_pattern_mismatch":
            pattern = str(err.get("ctx", {}).get("pattern", ""))
            if ":" in pattern:
                message = "must be written 'institution:role' in lower_snake_case"
            else:
                message = "must be lower_snake_case (small letters, digits and _)"
        elif kind == "literal_error":
            message = f"must be one of {err.get('ctx', {}).get('expected', '')}"
        elif kind in ("value_error", "assertion_error"):
            message = str(err["msg"]).removeprefix("Value error, ")
        else:
            message = str(err["msg"])
        problems.append(Problem(file, where, field, message, rule))
    return problems


# --- semantic checks -------------------------------------------------------------------------


class _Checker:
    def __init__(self, file: str, protocol: Protocol) -> None:
        self.file = file
        self.p = protocol
        self.problems: list[Problem] = []
        self.steps = {step.id: step for step in protocol.steps}
        self.facts = {fact.id: fact for fact in protocol.facts}
        self.docs = {doc.id: doc for doc in protocol.documents}
        self.institutions = {inst.id: inst for inst in protocol.institutions}

    def add(self, where: str, field: str, message: str, rule: str) -> None:
        self.problems.append(Problem(self.file, where, field, message, rule))

    def run(self) -> list[Problem]:
        self.unique_ids()
        self.facts_declared()
        self.groups_known()
        self.documents_and_framework()
        self.ladders_and_schedules()
        for step in self.p.steps:
            self.check_step(step)
        if self.p.closure_step not in self.steps:
            self.add(
                "protocol",
                "closure_step",
                f"names the step '{self.p.closure_step}', which does not exist",
                "unknown_step",
            )
        cycle = find_cycle(self.p)
        if cycle:
            self.add(
                f"step '{cycle[0]}'",
                "requires",
                "prerequisites go round in a circle: " + " -> ".join(cycle),
                "cycle",
            )
        elif not self.problems:
            self.paths()
        return self.problems

    def unique_ids(self) -> None:
        lists: list[tuple[str, Iterable[str]]] = [
            ("step", (s.id for s in self.p.steps)),
            ("fact", (f.id for f in self.p.facts)),
            ("institution", (i.id for i in self.p.institutions)),
            ("phase", (ph.id for ph in self.p.phases)),
            ("document", (d.id for d in self.p.documents)),
        ]
        for inst in self.p.institutions:
            lists.append((f"role of institution '{inst.id}'", (r.id for r in inst.roles)))
        for label, ids in lists:
            for item, count in Counter(ids).items():
                if count > 1:
                    self.add(
                        f"{label} '{item}'",
                        "id",
                        f"the id '{item}' is used {count} times; ids must be unique",
                        "duplicate_id",
                    )

    def facts_declared(self) -> None:
        for fact in self.p.facts:
            where = f"fact '{fact.id}'"
            if fact.type == "enum" and len(set(fact.values or [])) < 2:
                self.add(where, "values", "an enum fact needs at least two values", "fact_values")
            if fact.type == "boolean" and fact.values:
                self.add(
                    where,
                    "values",
                    "a boolean fact is true or false; remove 'values'",
                    "fact_values",
                )

    def group(self, where: str, field: str, group: str) -> None:
        inst_id, _, role = group.partition(":")
        inst = self.institutions.get(inst_id)
        if inst is None:
            self.add(
                where,
                field,
                f"'{group}' names an unknown institution '{inst_id}'",
                "unknown_institution",
            )
        elif role not in {r.id for r in inst.roles}:
            self.add(
                where,
                field,
                f"'{group}': institution '{inst_id}' has no role '{role}'",
                "unknown_role",
            )

    def groups_known(self) -> None:
        for step in self.p.steps:
            for group in step.responsible:
                self.group(f"step '{step.id}'", "responsible", group)

    def documents_and_framework(self) -> None:
        for n, item in enumerate(self.p.legal_framework):
            if item.document not in self.docs:
                self.add(
                    "protocol",
                    f"legal_framework[{n}].document",
                    f"names an unknown document '{item.document}'",
                    "unknown_document",
                )

    def ladders_and_schedules(self) -> None:
        for name, rungs in self.p.escalation_ladders.items():
            where = f"escalation ladder '{name}'"
            previous = -1.0
            for n, rung in enumerate(rungs):
                field = f"rung {n + 1}"
                after = parse_duration(rung.after).to_timedelta().total_seconds()
                if after < previous:
                    self.add(where, field, "rungs must be in order of 'after'", "ladder_order")
                previous = after
                if rung.action != "remind_assignee" and not rung.targets:
                    self.add(
                        where,
                        field,
                        f"'{rung.action}' needs at least one target group",
                        "ladder_targets",
                    )
                for group in rung.targets:
                    self.group(where, f"{field}.targets", group)
        for name, schedule in self.p.follow_up_schedules.items():
            self.condition(f"follow-up schedule '{name}'", "until", schedule.until)
            self.clock(f"follow-up schedule '{name}'", "every", schedule.every, schedule.clock)

    def condition(self, where: str, field: str, cond: Condition) -> None:
        for leaf in leaves(cond):
            fact = self.facts.get(leaf.fact)
            if fact is None:
                self.add(
                    where,
                    field,
                    f"the condition uses an undeclared fact '{leaf.fact}'",
                    "unknown_fact",
                )
            elif leaf.value not in fact.domain():
                allowed = ", ".join(
                    ("true" if v else "false") if isinstance(v, bool) else v for v in fact.domain()
                )
                shown = (
                    ("true" if leaf.value else "false")
                    if isinstance(leaf.value, bool)
                    else leaf.value
                )
                self.add(
                    where,
                    field,
                    f"the fact '{leaf.fact}' cannot be '{shown}'; allowed: {allowed}",
                    "bad_fact_value",
                )

    def clock(self, where: str, field: str, duration: str, clock: str) -> None:
        parsed = parse_duration(duration)
        if clock in ("calendar_days", "business_days") and parsed.has_time:
            self.add(
                where,
                field,
                f"{duration} has hours or minutes but the clock counts "
                f"{clock.replace('_', ' ')}; use whole days (e.g. P3D)",
                "deadline_clock",
            )
        if clock == "business_days" and parsed.weeks:
            self.add(
                where,
                field,
                f"{duration} counts weeks on the business-days clock; "
                "write business days (e.g. P5D)",
                "deadline_clock",
            )

    def check_step(self, step: Step) -> None:
        where = f"step '{step.id}'"
        if step.phase not in {ph.id for ph in self.p.phases}:
            self.add(where, "phase", f"names an unknown phase '{step.phase}'", "unknown_phase")
        for field in ("requires", "requires_any", "after"):
            for dep in getattr(step, field):
                if dep not in self.steps:
                    self.add(where, field, f"names an unknown step '{dep}'", "unknown_step")
                elif dep == step.id:
                    self.add(where, field, "a step cannot require itself", "cycle")
        if step.when is not None:
            self.condition(where, "when", step.when)
        self.sources(where, step)
        self.form(where, step)
        self.deadline(where, step)
        if step.escalation is not None:
            if step.escalation not in self.p.escalation_ladders:
                self.add(
                    where,
                    "escalation",
                    f"names an unknown escalation ladder '{step.escalation}'",
                    "unknown_ladder",
                )
            if step.deadline is None:
                self.add(
                    where,
                    "escalation",
                    "has an escalation ladder but no deadline to escalate from",
                    "escalation_without_deadline",
                )
        if step.repeats is not None and step.repeats not in self.p.follow_up_schedules:
            self.add(
                where,
                "repeats",
                f"names an unknown follow-up schedule '{step.repeats}'",
                "unknown_schedule",
            )

    def sources(self, where: str, step: Step) -> None:
        if not step.sources:
            self.add(
                where,
                "sources",
                "has no source; every step must cite at least one "
                "(document, article or section, kind)",
                "missing_source",
            )
            return
        for n, source in enumerate(step.sources):
            doc = self.docs.get(source.document)
            if doc is None:
                self.add(
                    where,
                    f"sources[{n}].document",
                    f"names an unknown document '{source.document}'",
                    "unknown_document",
                )
            elif doc.kind != source.kind:
                self.add(
                    where,
                    f"sources[{n}].kind",
                    f"says '{source.kind}' but document '{doc.id}' is '{doc.kind}'",
                    "source_kind_mismatch",
                )
        firm = [s for s in step.sources if s.kind != "secondary" and s.evidence == "text_read"]
        if not firm and step.review != "required":
            self.add(
                where,
                "review",
                "every source of this step is secondary, index-only or "
                "inferred, so the step must be marked 'review: required'",
                "review_required",
            )

    def form(self, where: str, step: Step) -> None:
        if step.form is None:
            return
        for field_id, count in Counter(f.id for f in step.form.fields).items():
            if count > 1:
                self.add(
                    where,
                    f"form.fields.{field_id}",
                    f"the form has the field '{field_id}' {count} times",
                    "duplicate_field",
                )
        for form_field in step.form.fields:
            if form_field.type == "enum" and len(form_field.values or []) < 2:
                self.add(
                    where,
                    f"form.fields.{form_field.id}",
                    "an enum field needs at least two values",
                    "field_values",
                )
            if form_field.type != "enum" and form_field.values:
                self.add(
                    where,
                    f"form.fields.{form_field.id}",
                    f"only enum fields have values; this one is '{form_field.type}'",
                    "field_values",
                )
            if form_field.sets_fact is not None:
                self.field_fact(where, form_field)
        for fact_id, count in Counter(
            f.sets_fact for f in step.form.fields if f.sets_fact is not None
        ).items():
            if count > 1:
                self.add(
                    where,
                    "form.fields",
                    f"{count} fields of the form set the fact '{fact_id}'",
                    "field_fact",
                )

    def field_fact(self, where: str, form_field: FormField) -> None:
        """A field that records a fact must give only values the fact can take."""
        field = f"form.fields.{form_field.id}.sets_fact"
        fact = self.facts.get(form_field.sets_fact or "")
        if fact is None:
            self.add(
                where, field, f"sets the undeclared fact '{form_field.sets_fact}'", "field_fact"
            )
            return
        if form_field.pii:
            self.add(where, field, "a field that records a fact must not be pii", "field_fact")
        if form_field.type != fact.type:
            self.add(
                where,
                field,
                f"a {form_field.type} field cannot record the {fact.type} fact '{fact.id}'",
                "field_fact",
            )
        elif fact.type == "enum":
            extra = sorted(set(form_field.values or []) - set(fact.values or []))
            if extra:
                self.add(
                    where,
                    field,
                    f"the fact '{fact.id}' cannot take the value(s) {', '.join(extra)}",
                    "field_fact",
                )

    def deadline(self, where: str, step: Step) -> None:
        deadline = step.deadline
        if deadline is None:
            return
        self.clock(where, "deadline.duration", deadline.duration, deadline.clock)
        anchor = deadline.anchor
        if anchor.event == "step_completed":
            if anchor.step is None or anchor.step not in self.steps:
                self.add(
                    where,
                    "deadline.anchor.step",
                    f"the anchor needs an existing step; got '{anchor.step}'",
                    "bad_anchor",
                )
            elif anchor.step not in ancestors(self.p, step.id):
                self.add(
                    where,
                    "deadline.anchor.step",
                    f"the anchor step '{anchor.step}' is not among this step's "
                    "prerequisites, so it may never be completed first",
                    "bad_anchor",
                )
        elif anchor.event == "fact_recorded":
            if anchor.fact is None or anchor.fact not in self.facts:
                self.add(
                    where,
                    "deadline.anchor.fact",
                    f"the anchor needs a declared fact; got '{anchor.fact}'",
                    "bad_anchor",
                )
        elif anchor.step is not None or anchor.fact is not None:
            self.add(
                where,
                "deadline.anchor",
                f"the anchor '{anchor.event}' takes no step or fact",
                "bad_anchor",
            )
        citation = deadline.citation
        if deadline.basis == "operational":
            if citation is not None:
                self.add(
                    where,
                    "deadline.citation",
                    "an operational deadline is a target the "
                    "commission sets and claims no legal source; remove the citation or "
                    "change the basis",
                    "operational_with_citation",
                )
            return
        if citation is None:
            self.add(
                where,
                "deadline.citation",
                f"a {deadline.basis} deadline must cite the document and article that set it",
                "deadline_citation",
            )
            return
        doc = self.docs.get(citation.document)
        if doc is None:
            self.add(
                where,
                "deadline.citation.document",
                f"names an unknown document '{citation.document}'",
                "unknown_document",
            )
        elif deadline.basis == "statutory" and doc.kind != "law":
            self.add(
                where,
                "deadline.basis",
                f"a statutory deadline must come from a law; document '{doc.id}' is '{doc.kind}'",
                "statutory_not_law",
            )
        elif deadline.basis == "protocol" and doc.kind not in ("official_protocol", "law"):
            self.add(
                where,
                "deadline.basis",
                f"a protocol deadline must come from an official "
                f"protocol; document '{doc.id}' is '{doc.kind}'",
                "protocol_not_protocol",
            )

    def paths(self) -> None:
        size = space_size(self.p)
        if size > MAX_FACT_COMBINATIONS:
            self.add(
                "protocol",
                "facts",
                f"the facts the steps branch on have {size} "
                f"combinations; keep it under {MAX_FACT_COMBINATIONS}",
                "fact_space",
            )
            return
        order = step_order(self.p)
        closure = self.steps[self.p.closure_step]
        ever_reached: set[str] = set()
        unclosed: list[tuple[dict[str, Any], list[str]]] = []
        blocked: dict[str, dict[str, Any]] = {}
        for facts in fact_space(self.p):
            result = walk(self.p, facts, order)
            ever_reached.update(result.reached)
            if self.p.closure_step not in result.reached:
                unclosed.append((facts, [b for b in result.blocked if b != closure.id]))
            for step_id in result.blocked:
                if step_id != closure.id:
                    blocked.setdefault(step_id, facts)
        for step_id, facts in blocked.items():
            step = self.steps[step_id]
            deps = [*step.requires]
            if step.requires_any:
                deps.append("one of " + ", ".join(step.requires_any))
            self.add(
                f"step '{step_id}'",
                "requires",
                f"applies when {_facts(facts)} but can never start, because a step it "
                f"requires ({'; '.join(deps)}) does not apply then",
                "blocked_step",
            )
        if unclosed:
            facts, stuck = unclosed[0]
            if stuck:
                why = "the step(s) " + ", ".join(stuck) + " can never start"
            else:
                why = f"its condition ({describe(closure.when)}) does not hold"
            more = f" (and {len(unclosed) - 1} more combinations)" if len(unclosed) > 1 else ""
            self.add(
                "protocol",
                "closure_step",
                f"the case never reaches '{self.p.closure_step}' when {_facts(facts)}{more}: {why}",
                "closure_unreachable",
            )
        for step in self.p.steps:
            if step.id not in ever_reached and step.id not in blocked:
                self.add(
                    f"step '{step.id}'",
                    "when",
                    "no combination of facts ever reaches this step",
                    "unreachable_step",
                )


def _facts(facts: dict[str, Any]) -> str:
    if not facts:
        return "facts are anything"
    return ", ".join(
        f"{k}={('true' if v else 'false') if isinstance(v, bool) else v}" for k, v in facts.items()
    )


# --- entry points ----------------------------------------------------------------------------


def validate_data(raw: Any, file: str) -> tuple[Protocol | None, list[Problem]]:
    if not isinstance(raw, dict):
        return None, [
            Problem(
                file,
                "protocol",
                "",
                "the file must be a YAML mapping (key: value lines) describing one protocol",
                "structure",
            )
        ]
    try:
        protocol = Protocol.model_validate(raw)
    except ValidationError as error:
        return None, _structure_problems(file, raw, error)
    return protocol, _Checker(file, protocol).run()


def read_yaml(path: Path) -> tuple[Any, list[Problem]]:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")), []
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"
        problem = getattr(error, "problem", None) or str(error)
        return None, [
            Problem(path.name, at, "", f"the YAML cannot be read: {problem}", "yaml_syntax")
        ]


def validate_file(
    path: Path, *, check_lock: bool | None = None
) -> tuple[Protocol | None, list[Problem]]:
    """Validate one definition file. The pinning checks (file name, LOCK) run when the file's
    folder has a LOCK file, unless ``check_lock`` says otherwise."""
    raw, problems = read_yaml(path)
    if problems:
        return None, problems
    protocol, problems = validate_data(raw, path.name)
    lock_path = path.parent / LOCK_NAME
    if check_lock is None:
        check_lock = lock_path.exists()
    if protocol is not None and check_lock:
        problems.extend(pinning_problems(path, protocol, read_lock(lock_path)))
    return protocol, problems


def pinning_problems(path: Path, protocol: Protocol, lock: dict[str, str]) -> list[Problem]:
    problems = []
    expected_name = f"{protocol.id}-{protocol.version}.yaml"
    if path.name != expected_name:
        problems.append(
            Problem(
                path.name,
                "protocol",
                "version",
                f"the file for {protocol.key} must be named {expected_name}",
                "file_name",
            )
        )
    digest = content_hash(protocol)
    pinned = lock.get(protocol.key)
    if pinned is None:
        problems.append(
            Problem(
                path.name,
                "protocol",
                "version",
                f"{protocol.key} is not in the LOCK file; run `eri protocols lock` to pin it",
                "not_locked",
            )
        )
    elif pinned != digest:
        problems.append(
            Problem(
                path.name,
                "protocol",
                "version",
                f"the content of "
                f"{protocol.key} changed but its version did not; give the file "
                "a new version (and file name) instead of editing a released "
                "one",
                "lock_mismatch",
            )
        )
    return problems


def validate_path(path: Path) -> tuple[list[Protocol], list[Problem]]:
    """Validate a file or every ``*.yaml`` in a folder."""
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    protocols: list[Protocol] = []
    problems: list[Problem] = []
    for file in files:
        protocol, found = validate_file(file)
        problems.extend(found)
        if protocol is not None:
            protocols.append(protocol)
    for key, count in Counter(p.key for p in protocols).items():
        if count > 1:
            problems.append(
                Problem(
                    str(path),
                    "protocol",
                    "version",
                    f"{key} is defined in {count} files",
                    "duplicate_version",
                )
            )
    return protocols, problems
