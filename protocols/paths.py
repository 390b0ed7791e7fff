"""Paths through a protocol: step order, the finite fact space, and which steps a given set of
facts reaches.

Semantics (the case engine follows the same rules):

- a step *applies* when its ``when`` condition holds for the case facts (no condition: always);
- a step can *start* when every step in ``requires`` has been done, if ``requires_any`` is
  given at least one of those has been done, and every step in ``after`` that applies to the
  case has been done (``after`` orders optional steps without making them mandatory);
- the closure step implicitly comes ``after`` every other step: a case closes only when every
  step that applies to it is done;
- a step is *reached* when it applies and can start. A step that applies but can never start
  is *blocked*, which the validator reports as an error.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from protocols.conditions import FactValue, evaluate, evaluate_partial, leaves
from protocols.model import Protocol, Step


class CycleError(ValueError):
    def __init__(self, cycle: list[str]) -> None:
        super().__init__(" -> ".join(cycle))
        self.cycle = cycle


def soft_prerequisites(protocol: Protocol, step: Step) -> list[str]:
    """``after``, plus every other step for the closure step."""
    if step.id == protocol.closure_step:
        return [s.id for s in protocol.steps if s.id != step.id]
    return list(step.after)


def prerequisites(protocol: Protocol, step: Step) -> list[str]:
    return [*step.requires, *step.requires_any, *soft_prerequisites(protocol, step)]


def find_cycle(protocol: Protocol) -> list[str] | None:
    """A prerequisite cycle (as a closed list of step ids), or None."""
    known = {step.id: step for step in protocol.steps}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(step_id: str) -> list[str] | None:
        state[step_id] = 1
        stack.append(step_id)
        for dep in prerequisites(protocol, known[step_id]):
            if dep not in known:
                continue
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[step_id] = 2
        return None

    for step in protocol.steps:
        if step.id not in state:
            found = visit(step.id)
            if found:
                return found
    return None


def step_order(protocol: Protocol) -> list[Step]:
    """Steps in an order where each comes after its prerequisites; ties keep file order."""
    cycle = find_cycle(protocol)
    if cycle:
        raise CycleError(cycle)
    index = {step.id: n for n, step in enumerate(protocol.steps)}
    done: set[str] = set()
    order: list[Step] = []
    pending = list(protocol.steps)
    while pending:
        for step in pending:
            if all(dep in done or dep not in index for dep in prerequisites(protocol, step)):
                order.append(step)
                done.add(step.id)
                pending.remove(step)
                break
    return order


def ancestors(protocol: Protocol, step_id: str) -> set[str]:
    known = {step.id: step for step in protocol.steps}
    seen: set[str] = set()
    todo = list(prerequisites(protocol, known[step_id])) if step_id in known else []
    while todo:
        current = todo.pop()
        if current in seen or current not in known:
            continue
        seen.add(current)
        todo.extend(prerequisites(protocol, known[current]))
    return seen


def branching_facts(protocol: Protocol) -> list[str]:
    """Facts that some step condition reads (in declaration order)."""
    used = {leaf.fact for step in protocol.steps if step.when for leaf in leaves(step.when)}
    return [fact.id for fact in protocol.facts if fact.id in used]


def space_size(protocol: Protocol) -> int:
    size = 1
    for fact_id in branching_facts(protocol):
        size *= max(1, len(protocol.fact(fact_id).domain()))
    return size


def fact_space(protocol: Protocol) -> Iterator[dict[str, FactValue]]:
    """Every combination of values of the facts the steps branch on."""
    ids = branching_facts(protocol)
    domains = [protocol.fact(fact_id).domain() for fact_id in ids]
    for combo in itertools.product(*domains):
        yield dict(zip(ids, combo, strict=True))


@dataclass(frozen=True)
class Walk:
    """The outcome of running a protocol's steps over one full set of facts."""

    reached: list[str]
    blocked: list[str]


def walk(protocol: Protocol, facts: dict[str, FactValue], order: list[Step] | None = None) -> Walk:
    applies = {step.id: evaluate(step.when, facts) for step in protocol.steps}
    reached: set[str] = set()
    reached_list: list[str] = []
    blocked: list[str] = []
    for step in order if order is not None else step_order(protocol):
        if not applies[step.id]:
            continue
        can_start = (
            all(dep in reached for dep in step.requires)
            and (not step.requires_any or any(dep in reached for dep in step.requires_any))
            and all(
                dep in reached or not applies.get(dep, False)
                for dep in soft_prerequisites(protocol, step)
            )
        )
        if can_start:
            reached.add(step.id)
            reached_list.append(step.id)
        else:
            blocked.append(step.id)
    return Walk(reached=reached_list, blocked=blocked)


Status = Literal["applies", "may_apply", "does_not_apply"]


def partial_walk(protocol: Protocol, facts: dict[str, FactValue]) -> list[tuple[Step, Status]]:
    """Like :func:`walk` with facts that may be incomplete: steps whose applicability depends on
    facts not yet recorded are ``may_apply``. Returned in step order."""
    status: dict[str, bool | None] = {}
    result: list[tuple[Step, Status]] = []
    for step in step_order(protocol):
        applies = evaluate_partial(step.when, facts)
        required = [status.get(dep, False) for dep in step.requires]
        alternatives = [status.get(dep, False) for dep in step.requires_any]
        soft = [status.get(dep, False) for dep in soft_prerequisites(protocol, step)]
        required += [None for value in soft if value is None]
        if False in required or (alternatives and all(a is False for a in alternatives)):
            can_start: bool | None = False
        elif None in required or (alternatives and True not in alternatives):
            can_start = None
        else:
            can_start = True
        if applies is False or can_start is False:
            value: bool | None = False
        elif applies is None or can_start is None:
            value = None
        else:
            value = True
        status[step.id] = value
        label: Status = (
            "applies" if value is True else "may_apply" if value is None else "does_not_apply"
        )
        result.append((step, label))
    return result
