"""When a case may be handed off: the consent in force, or a legal basis that allows it without.

The victim's informed decision is the case fact ``consent`` (``given``, ``refused``, ``revoked``;
absent until recorded). A handoff goes ahead when consent is ``given``. Without it, only a basis
listed here for the case's protocol allows it, and only if its condition on the case facts holds
and the reference it requires is given; which basis was used is recorded (ledger and handoff row).

The two bases mirror what both protocols already encode: their ``cross_border_handoff`` step
applies when ``consent == given or minor == true`` (child protection acts without the child's
consent), and a judge's order compels disclosure to the prosecutor. Both need the commission's
legal review before production (see the protocols' ``review: required``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

FactValue = str | bool | int | float | None


@dataclass(frozen=True)
class Basis:
    code: str
    when: Mapping[str, FactValue]  # facts that must hold (all)
    needs_reference: bool = False


NO_CONSENT_BASES: Final[Mapping[str, Mapping[str, Basis]]] = {
    protocol: {
        "child_protection": Basis("child_protection", {"minor": True}),
        "court_order": Basis("court_order", {}, needs_reference=True),
    }
    for protocol in ("gt-eri", "hn-cicesct")
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    basis: str  # consent | a basis code | the refused basis
    reason: str | None = None  # code when refused
    message: tuple[str, str] | None = None  # (es, en)


def decide(
    protocol_id: str,
    facts: Mapping[str, FactValue],
    requested_basis: str,
    reference: str | None,
) -> Decision:
    consent = facts.get("consent")
    if requested_basis == "consent" or consent == "given":
        if consent == "given":
            return Decision(True, "consent")
        reason = f"consent_{consent}" if consent in ("refused", "revoked") else "consent_missing"
        return Decision(
            False,
            "consent",
            reason,
            (
                "La víctima no ha dado su consentimiento para compartir el caso "
                f"(consentimiento: {consent or 'no registrado'}).",
                "The victim has not consented to sharing the case "
                f"(consent: {consent or 'not recorded'}).",
            ),
        )
    basis = NO_CONSENT_BASES.get(protocol_id, {}).get(requested_basis)
    if basis is None:
        return Decision(
            False,
            requested_basis,
            "basis_unknown",
            (
                f"El protocolo {protocol_id} no prevé la base «{requested_basis}» "
                "para entregar sin consentimiento.",
                f"Protocol {protocol_id} has no basis '{requested_basis}' "
                "for a handoff without consent.",
            ),
        )
    unmet = sorted(k for k, v in basis.when.items() if facts.get(k) != v)
    if unmet:
        return Decision(
            False,
            basis.code,
            "basis_not_applicable",
            (
                f"La base «{basis.code}» no se aplica a este caso (hechos: {', '.join(unmet)}).",
                f"Basis '{basis.code}' does not apply to this case (facts: {', '.join(unmet)}).",
            ),
        )
    if basis.needs_reference and not reference:
        return Decision(
            False,
            basis.code,
            "reference_missing",
            (
                f"La base «{basis.code}» requiere la referencia de la orden.",
                f"Basis '{basis.code}' needs the order's reference.",
            ),
        )
    return Decision(True, basis.code)


#: Facts a receiving ERI takes over from another country's package (data minimisation: the
#: rest, e.g. ``foreign_national``, means something else on the other side of the border).
CROSS_BORDER_FACTS: Final = ("minor", "consent", "risk_level", "family_involved")
