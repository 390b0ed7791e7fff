"""Property: whatever the facts, every applicable step can start and the case reaches closure."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import Protocol, fact_space, load_protocol, step_order, walk
from protocols.conditions import FactValue
from protocols.paths import space_size

PROTOCOLS = {pid: load_protocol(pid) for pid in ("gt-eri", "hn-cicesct")}


def facts_for(protocol: Protocol) -> st.SearchStrategy[dict[str, FactValue]]:
    return st.fixed_dictionaries(
        {fact.id: st.sampled_from(fact.domain()) for fact in protocol.facts}
    )


@st.composite
def protocol_and_facts(draw: st.DrawFn) -> tuple[Protocol, dict[str, FactValue]]:
    protocol = draw(st.sampled_from(list(PROTOCOLS.values())))
    return protocol, draw(facts_for(protocol))


@settings(max_examples=300, deadline=None)
@given(protocol_and_facts())
def test_random_facts_reach_closure(case: tuple[Protocol, dict[str, FactValue]]) -> None:
    protocol, facts = case
    result = walk(protocol, facts)
    assert result.blocked == []
    assert result.reached[-1] == protocol.closure_step
    assert result.reached[0] == protocol.steps[0].id
    # prerequisites always come first
    position = {step_id: n for n, step_id in enumerate(result.reached)}
    for step_id in result.reached:
        step = protocol.step(step_id)
        assert all(position[dep] < position[step_id] for dep in step.requires)


def test_whole_fact_space_is_enumerated_fast() -> None:
    for protocol in PROTOCOLS.values():
        started = time.perf_counter()
        order = step_order(protocol)
        count = 0
        for facts in fact_space(protocol):
            assert protocol.closure_step in walk(protocol, facts, order).reached
            count += 1
        assert count == space_size(protocol) == 2**7 * 3 * 3
        assert time.perf_counter() - started < 1.0
