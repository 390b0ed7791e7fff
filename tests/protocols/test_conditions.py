from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import MissingFact, due_at, evaluate, evaluate_partial, parse_duration
from protocols.conditions import (
    AllOf,
    ConditionSyntaxError,
    FactIs,
    dump_condition,
    parse_condition,
)
from protocols.durations import Duration, DurationError


def test_parse_and_evaluate() -> None:
    cond = parse_condition({"all": ["minor == true", {"not": "consent == refused"}]})
    assert isinstance(cond, AllOf)
    assert cond.items[0] == FactIs("minor", True)
    assert evaluate(cond, {"minor": True, "consent": "given"})
    assert not evaluate(cond, {"minor": True, "consent": "refused"})
    assert not evaluate(cond, {"minor": False, "consent": "given"})
    assert evaluate(parse_condition("risk_level != high"), {"risk_level": "low"})
    assert evaluate(parse_condition({"any": ["a == x", "b == true"]}), {"a": "y", "b": True})
    assert evaluate(None, {})


def test_missing_fact_raises_and_partial_is_unknown() -> None:
    cond = parse_condition({"all": ["minor == true", "consent == given"]})
    with pytest.raises(MissingFact):
        evaluate(cond, {"minor": True})
    assert evaluate_partial(cond, {"minor": True}) is None
    assert evaluate_partial(cond, {"minor": False}) is False
    assert (
        evaluate_partial(parse_condition({"any": ["minor == true", "x == y"]}), {"minor": True})
        is True
    )


@pytest.mark.parametrize(
    "raw",
    [
        "minor",
        "minor = true",
        "__import__('os') == 1",
        {"all": []},
        {"xor": ["a == b"]},
        3,
        {"all": ["a == b"], "any": ["a == b"]},
    ],
)
def test_syntax_errors_are_rejected(raw: object) -> None:
    with pytest.raises(ConditionSyntaxError):
        parse_condition(raw)


leaf = st.builds(
    lambda f, v, neg: f"{f} {'!=' if neg else '=='} {v}",
    st.sampled_from(["minor", "consent", "risk_level"]),
    st.sampled_from(["true", "false", "given", "high"]),
    st.booleans(),
)
conditions = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, inner),
    ),
    max_leaves=8,
)


@given(conditions)
def test_dump_is_the_inverse_of_parse(raw: object) -> None:
    cond = parse_condition(raw)
    assert dump_condition(cond) == raw
    assert parse_condition(dump_condition(cond)) == cond


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT24H", Duration(hours=24)),
        ("P3D", Duration(days=3)),
        ("P2W", Duration(weeks=2)),
        ("P1DT12H", Duration(days=1, hours=12)),
        ("PT30M", Duration(minutes=30)),
        ("P1W2DT3H4M", Duration(1, 2, 3, 4)),
        ("PT0H", Duration()),
    ],
)
def test_durations(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["P", "PT", "P1Y", "PT1S", "24H", "P1DT", "p3d", "P-1D"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


def test_due_at_on_the_three_clocks() -> None:
    # Friday 2025-01-03 10:00 in Guatemala (UTC-6) = 16:00 UTC
    anchor = datetime(2025, 1, 3, 16, 0, tzinfo=UTC)
    assert due_at(anchor, "PT24H", "hours", "America/Guatemala") == datetime(
        2025, 1, 4, 16, 0, tzinfo=UTC
    )
    assert due_at(anchor, "P3D", "calendar_days", "America/Guatemala").astimezone(UTC) == (
        datetime(2025, 1, 6, 16, 0, tzinfo=UTC)
    )
    # 2 business days from Friday: Monday, Tuesday; with Monday a holiday: Tuesday, Wednesday
    assert due_at(anchor, "P2D", "business_days", "America/Guatemala").astimezone(UTC) == (
        datetime(2025, 1, 7, 16, 0, tzinfo=UTC)
    )
    holidays = frozenset({date(2025, 1, 6)})
    assert due_at(anchor, "P2D", "business_days", "America/Guatemala", holidays).astimezone(
        UTC
    ) == datetime(2025, 1, 8, 16, 0, tzinfo=UTC)
