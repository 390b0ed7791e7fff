"""Which steps apply to a case, in order, with their deadlines."""

from __future__ import annotations

from dataclasses import dataclass

from protocols.conditions import FactValue, describe
from protocols.model import Deadline, Protocol, Step
from protocols.paths import Status, partial_walk


class FactsError(ValueError):
    pass


def parse_facts(protocol: Protocol, text: str) -> dict[str, FactValue]:
    """Read ``minor=true,consent=given`` against the protocol's declared facts."""
    facts: dict[str, FactValue] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep:
            raise FactsError(f"'{item}' should be written fact=value")
        try:
            fact = protocol.fact(name)
        except KeyError:
            known = ", ".join(f.id for f in protocol.facts)
            raise FactsError(f"unknown fact '{name}'; known facts: {known}") from None
        parsed: FactValue
        if fact.type == "boolean":
            if value not in ("true", "false"):
                raise FactsError(f"'{name}' is true or false, not '{value}'")
            parsed = value == "true"
        else:
            if value not in (fact.values or []):
                raise FactsError(f"'{name}' must be one of {', '.join(fact.values or [])}")
            parsed = value
        facts[name] = parsed
    return facts


@dataclass(frozen=True)
class Explained:
    step: Step
    status: Status

    @property
    def id(self) -> str:
        return self.step.id


def explain(protocol: Protocol, facts: dict[str, FactValue]) -> list[Explained]:
    """Steps that apply (or may apply, when facts are missing), in an order that respects
    prerequisites."""
    return [
        Explained(step, status)
        for step, status in partial_walk(protocol, facts)
        if status != "does_not_apply"
    ]


def applicable_steps(protocol: Protocol, facts: dict[str, FactValue]) -> list[str]:
    """Ids of the steps that surely apply for these facts, in order."""
    return [item.id for item in explain(protocol, facts) if item.status == "applies"]


def describe_deadline(deadline: Deadline | None, lang: str = "en") -> str:
    if deadline is None:
        return "no deadline" if lang == "en" else "sin plazo"
    anchor = deadline.anchor.event.replace("_", " ")
    if deadline.anchor.step:
        anchor += f" {deadline.anchor.step}"
    if deadline.anchor.fact:
        anchor += f" {deadline.anchor.fact}"
    text = f"{deadline.duration} ({deadline.clock.replace('_', ' ')}) from {anchor}"
    text += f"; basis {deadline.basis}"
    if deadline.citation:
        text += f": {deadline.citation.document} {deadline.citation.article}"
    return text


def render_explanation(protocol: Protocol, facts: dict[str, FactValue], lang: str = "en") -> str:
    lines = [f"{protocol.key}: {protocol.title.get(lang)}"]
    shown = ", ".join(f"{k}={str(v).lower()}" for k, v in facts.items()) or "(none)"
    lines.append(f"facts: {shown}")
    for n, item in enumerate(explain(protocol, facts), 1):
        step = item.step
        mark = "" if item.status == "applies" else "  [may apply: depends on facts not given]"
        lines.append(f"{n:2}. {step.id}: {step.title.get(lang)}{mark}")
        lines.append(f"      who: {', '.join(step.responsible)}")
        lines.append(f"      deadline: {describe_deadline(step.deadline, lang)}")
        if step.when is not None:
            lines.append(f"      when: {describe(step.when)}")
    return "\n".join(lines)
