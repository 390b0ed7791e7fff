"""A small declarative condition language over case facts (never ``eval``).

Written in YAML as::

    when: "minor == true"
    when:
      all:
        - "foreign_national == true"
        - not: "consent == refused"
      # or: any: [...]

A leaf is ``fact == value`` or ``fact != value``; ``true``/``false`` are booleans, anything
else is an enum value. Composites are ``all`` (every item holds), ``any`` (at least one holds)
and ``not`` (the item does not hold).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

FactValue = str | bool
Facts = Mapping[str, FactValue]

_LEAF = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*(==|!=)\s*([A-Za-z0-9_\-]+)\s*$")


class ConditionSyntaxError(ValueError):
    """A condition that cannot be read; the message is meant for a person."""


class MissingFact(KeyError):
    """A condition needs a fact that has not been recorded."""

    def __init__(self, fact: str) -> None:
        super().__init__(fact)
        self.fact = fact

    def __str__(self) -> str:
        return f"the fact '{self.fact}' has not been recorded"


@dataclass(frozen=True)
class FactIs:
    """``fact == value`` (or ``!=`` when ``negate``)."""

    fact: str
    value: FactValue
    negate: bool = False


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = FactIs | AllOf | AnyOf | Not


def _value(text: str) -> FactValue:
    if text == "true":
        return True
    if text == "false":
        return False
    return text


def parse_condition(raw: Any) -> Condition:
    """Read a condition from its YAML form; raises :class:`ConditionSyntaxError`."""
    if isinstance(raw, FactIs | AllOf | AnyOf | Not):
        return raw
    if isinstance(raw, str):
        match = _LEAF.match(raw)
        if not match:
            raise ConditionSyntaxError(
                f"cannot read the condition {raw!r}; write it as 'fact == value' or 'fact != value'"
            )
        fact, op, value = match.groups()
        return FactIs(fact=fact, value=_value(value), negate=op == "!=")
    if isinstance(raw, dict) and len(raw) == 1:
        ((key, inner),) = raw.items()
        if key in ("all", "any"):
            if not isinstance(inner, list) or not inner:
                raise ConditionSyntaxError(f"'{key}' needs a non-empty list of conditions")
            items = tuple(parse_condition(item) for item in inner)
            return AllOf(items) if key == "all" else AnyOf(items)
        if key == "not":
            return Not(parse_condition(inner))
    raise ConditionSyntaxError(
        "a condition is 'fact == value', 'fact != value', or one of all: [...], any: [...], "
        f"not: ...; got {raw!r}"
    )


def dump_condition(cond: Condition) -> Any:
    """The canonical YAML/JSON form of a condition (inverse of :func:`parse_condition`)."""
    if isinstance(cond, FactIs):
        value = ("true" if cond.value else "false") if isinstance(cond.value, bool) else cond.value
        return f"{cond.fact} {'!=' if cond.negate else '=='} {value}"
    if isinstance(cond, AllOf):
        return {"all": [dump_condition(item) for item in cond.items]}
    if isinstance(cond, AnyOf):
        return {"any": [dump_condition(item) for item in cond.items]}
    return {"not": dump_condition(cond.item)}


def leaves(cond: Condition) -> Iterator[FactIs]:
    """Every ``fact == value`` test inside a condition."""
    if isinstance(cond, FactIs):
        yield cond
    elif isinstance(cond, AllOf | AnyOf):
        for item in cond.items:
            yield from leaves(item)
    else:
        yield from leaves(cond.item)


def evaluate(cond: Condition | None, facts: Facts) -> bool:
    """Whether ``cond`` holds for ``facts``; ``None`` (no condition) always holds.

    Raises :class:`MissingFact` when a needed fact is absent.
    """
    if cond is None:
        return True
    if isinstance(cond, FactIs):
        if cond.fact not in facts:
            raise MissingFact(cond.fact)
        return (facts[cond.fact] == cond.value) != cond.negate
    if isinstance(cond, AllOf):
        return all(evaluate(item, facts) for item in cond.items)
    if isinstance(cond, AnyOf):
        return any(evaluate(item, facts) for item in cond.items)
    return not evaluate(cond.item, facts)


def evaluate_partial(cond: Condition | None, facts: Facts) -> bool | None:
    """Three-valued evaluation: ``None`` when the answer depends on facts not yet recorded."""
    if cond is None:
        return True
    if isinstance(cond, FactIs):
        if cond.fact not in facts:
            return None
        return (facts[cond.fact] == cond.value) != cond.negate
    if isinstance(cond, AllOf | AnyOf):
        results = [evaluate_partial(item, facts) for item in cond.items]
        if isinstance(cond, AllOf):
            if False in results:
                return False
            return None if None in results else True
        if True in results:
            return True
        return None if None in results else False
    inner = evaluate_partial(cond.item, facts)
    return None if inner is None else not inner


def describe(cond: Condition | None) -> str:
    """A one-line human reading of a condition."""
    if cond is None:
        return "always"
    if isinstance(cond, FactIs):
        return str(dump_condition(cond))
    if isinstance(cond, AllOf):
        return "(" + " and ".join(describe(item) for item in cond.items) + ")"
    if isinstance(cond, AnyOf):
        return "(" + " or ".join(describe(item) for item in cond.items) + ")"
    return "not " + describe(cond.item)
