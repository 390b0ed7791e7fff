"""`explain`: the steps that apply, in order, for the five reference cases in both countries."""

from __future__ import annotations

from typing import Any

import pytest

from protocols import Protocol, applicable_steps, explain, parse_facts
from protocols.explain import FactsError

ADULT_NATIONAL: dict[str, Any] = {
    "minor": False,
    "foreign_national": False,
    "returned_from_abroad": False,
    "consent": "given",
    "consular_contact_agreed": False,
    "repatriation_requested": False,
    "cross_border": False,
    "risk_level": "low",
    "family_involved": False,
}
CASES: dict[str, dict[str, Any]] = {
    "child": {"minor": True, "family_involved": True},
    "adult": {},
    "foreign_national": {"foreign_national": True, "consular_contact_agreed": True},
    "refused_consent": {"consent": "refused"},
    "repatriation": {
        "foreign_national": True,
        "repatriation_requested": True,
        "cross_border": True,
    },
}

GT_START = [
    "detection",
    "eri_activation",
    "identification",
    "immediate_safety",
    "first_order_care",
    "language_and_rights",
    "consent_recorded",
]
GT_CARE_END = ["second_order_care", "life_plan"]
GT_ADULT = ["adult_care_plan", "adult_shelter_referral"]
GT: dict[str, list[str]] = {
    "child": [
        *GT_START,
        "risk_assessment",
        "child_pgn_intervention",
        "child_resources_and_host",
        "child_protection_measures",
        "child_family_placement_check",
        "child_transfer_and_referral",
        "child_file_handover",
        "complaint_to_prosecutor",
        "child_statement_specialised",
        *GT_CARE_END,
        "follow_up",
        "case_closure",
    ],
    "adult": [
        *GT_START,
        "risk_assessment",
        *GT_ADULT,
        "complaint_to_prosecutor",
        "victim_statement",
        *GT_CARE_END,
        "follow_up",
        "case_closure",
    ],
    "foreign_national": [
        *GT_START,
        "risk_assessment",
        *GT_ADULT,
        "migration_status",
        "consular_consultation",
        "consular_notification",
        "complaint_to_prosecutor",
        "victim_statement",
        *GT_CARE_END,
        "follow_up",
        "case_closure",
    ],
    "refused_consent": [
        *GT_START,
        "consent_refused",
        "risk_assessment",
        "complaint_to_prosecutor",
        "case_closure",
    ],
    "repatriation": [
        *GT_START,
        "risk_assessment",
        *GT_ADULT,
        "migration_status",
        "consular_consultation",
        "complaint_to_prosecutor",
        "victim_statement",
        *GT_CARE_END,
        "repatriation_outbound",
        "cross_border_handoff",
        "follow_up",
        "case_closure",
    ],
}

HN_START = [
    "detection_and_report",
    "eri_activation",
    "identification",
    "immediate_safety",
    "primary_care",
    "language_and_rights",
    "consent_recorded",
]
HN_CARE_END = ["secondary_care", "reintegration_plan"]
HN: dict[str, list[str]] = {
    "child": [
        *HN_START,
        "risk_assessment",
        "child_senaf_referral",
        "child_protection_measures",
        "child_family_placement_check",
        "complaint_to_prosecutor",
        "child_statement_specialised",
        *HN_CARE_END,
        "follow_up",
        "case_closure",
    ],
    "adult": [
        *HN_START,
        "risk_assessment",
        "adult_shelter_referral",
        "complaint_to_prosecutor",
        "victim_statement",
        *HN_CARE_END,
        "follow_up",
        "case_closure",
    ],
    "foreign_national": [
        *HN_START,
        "risk_assessment",
        "adult_shelter_referral",
        "migration_status",
        "consular_consultation",
        "consular_notification",
        "complaint_to_prosecutor",
        "victim_statement",
        *HN_CARE_END,
        "follow_up",
        "case_closure",
    ],
    "refused_consent": [
        *HN_START,
        "consent_refused",
        "risk_assessment",
        "complaint_to_prosecutor",
        "case_closure",
    ],
    "repatriation": [
        *HN_START,
        "risk_assessment",
        "adult_shelter_referral",
        "migration_status",
        "consular_consultation",
        "complaint_to_prosecutor",
        "victim_statement",
        *HN_CARE_END,
        "repatriation_outbound",
        "cross_border_handoff",
        "follow_up",
        "case_closure",
    ],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_explain_gt(gt: Protocol, case: str) -> None:
    assert applicable_steps(gt, {**ADULT_NATIONAL, **CASES[case]}) == GT[case]


@pytest.mark.parametrize("case", sorted(CASES))
def test_explain_hn(hn: Protocol, case: str) -> None:
    assert applicable_steps(hn, {**ADULT_NATIONAL, **CASES[case]}) == HN[case]


def test_returned_national_is_received(gt: Protocol, hn: Protocol) -> None:
    facts = {**ADULT_NATIONAL, "returned_from_abroad": True}
    assert "repatriation_inbound_reception" in applicable_steps(gt, facts)
    assert "repatriation_inbound_reception" in applicable_steps(hn, facts)
    assert "repatriation_outbound" not in applicable_steps(gt, facts)


def test_no_consular_contact_without_agreement(gt: Protocol, hn: Protocol) -> None:
    facts = {**ADULT_NATIONAL, "foreign_national": True, "consular_contact_agreed": False}
    for protocol in (gt, hn):
        steps = applicable_steps(protocol, facts)
        assert "consular_consultation" in steps
        assert "consular_notification" not in steps


def test_child_protection_does_not_hinge_on_consent(gt: Protocol) -> None:
    steps = applicable_steps(gt, {**ADULT_NATIONAL, "minor": True, "consent": "refused"})
    assert {"child_protection_measures", "consent_refused", "follow_up"} <= set(steps)


def test_partial_facts_mark_what_may_apply(gt: Protocol) -> None:
    result = {item.id: item.status for item in explain(gt, parse_facts(gt, "minor=true"))}
    assert result["child_protection_measures"] == "applies"
    assert result["high_risk_protection"] == "may_apply"
    assert result["case_closure"] == "may_apply"
    assert "adult_care_plan" not in result


def test_parse_facts_rejects_unknown_and_illegal(gt: Protocol) -> None:
    assert parse_facts(gt, "minor=true, consent=refused") == {"minor": True, "consent": "refused"}
    with pytest.raises(FactsError, match="unknown fact 'age'"):
        parse_facts(gt, "age=12")
    with pytest.raises(FactsError, match="'consent' must be one of given, refused, revoked"):
        parse_facts(gt, "consent=maybe")
    with pytest.raises(FactsError, match="true or false"):
        parse_facts(gt, "minor=yes")
