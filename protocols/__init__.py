"""Protocols as data: the Guatemalan ERI guidelines and the Honduran CICESCT procedure as
validated, versioned, cited definitions that the case engine runs.

Public API::

    load_protocol(id, version=None) -> Protocol
    list_protocols() -> list[Protocol]
    content_hash(protocol) -> str
    evaluate(condition, facts) -> bool
    applicable_steps(protocol, facts) -> list[str]
    validate_path(path) -> (protocols, problems)
    due_at(anchor, duration, clock, timezone, holidays) -> datetime
"""

from protocols.conditions import Condition, MissingFact, evaluate, evaluate_partial
from protocols.durations import Duration, due_at, parse_duration
from protocols.explain import applicable_steps, explain, parse_facts
from protocols.loader import definitions_dir, list_protocols, load_file, load_protocol
from protocols.lock import canonical_json, content_hash
from protocols.model import Deadline, Fact, Form, FormField, Protocol, Rung, SourceRef, Step
from protocols.paths import fact_space, step_order, walk
from protocols.validator import Problem, ProtocolInvalid, validate_file, validate_path

__all__ = [
    "Condition",
    "Deadline",
    "Duration",
    "Fact",
    "Form",
    "FormField",
    "MissingFact",
    "Problem",
    "Protocol",
    "ProtocolInvalid",
    "Rung",
    "SourceRef",
    "Step",
    "applicable_steps",
    "canonical_json",
    "content_hash",
    "definitions_dir",
    "due_at",
    "evaluate",
    "evaluate_partial",
    "explain",
    "fact_space",
    "list_protocols",
    "load_file",
    "load_protocol",
    "parse_duration",
    "parse_facts",
    "step_order",
    "validate_file",
    "validate_path",
    "walk",
]
