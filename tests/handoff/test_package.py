"""The package format: round trip, tampering named per part, wrong recipient, notices."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eri.handoff.package as pkg
from eri.handoff.keys import InstitutionPrivateKey, RecipientPrivateKey
from eri.handoff.notices import NoticeError, make_ack, make_recall, verify_notice
from eri.handoff.package import (
    CaseRef,
    LegalBasis,
    NotForThisKeyError,
    PackageError,
    Part,
    json_part,
    open_package,
    seal_package,
    verify_package,
)

SENDER = InstitutionPrivateKey.generate()
RECIPIENT = RecipientPrivateKey.generate()
PHOTO = bytes(range(256)) * 40  # a synthetic "photo"


def build(recipient: RecipientPrivateKey = RECIPIENT) -> bytes:
    return seal_package(
        parts=[
            json_part("facts", {"minor": False, "consent": "given", "foreign_national": True}),
            json_part("statements", {"statement": "Declaración sintética de prueba."}),
            json_part("timeline", [{"seq": 1, "action": "case.opened"}]),
            json_part("custody", [{"evidence_id": "ev_abcd1234", "event": "uploaded"}]),
            Part("evidence/ev_abcd1234", PHOTO, "image/jpeg"),
        ],
        case=CaseRef("psn_0123456789abcdef", "gt-eri", "1.0.0", "f" * 64),
        purpose="prosecution",
        legal_basis=LegalBasis("consent", "consent.recorded"),
        sender_institution="SVET",
        sender_key=SENDER,
        recipient=recipient.public(),
        recipient_institution="MP-FETP",
    )


PACKAGE = build()


def test_round_trip_checks_everything_and_returns_the_parts() -> None:
    opened = open_package(PACKAGE, RECIPIENT, trusted=[SENDER.public()])
    assert opened.verified.trusted
    assert opened.json("facts")["consent"] == "given"
    assert opened.json("statements") == {"statement": "Declaración sintética de prueba."}
    assert opened.parts["evidence/ev_abcd1234"] == PHOTO
    m = opened.manifest
    assert m["case"]["pseudonym"] == "psn_0123456789abcdef"
    assert m["sender"] == {"institution": "SVET", "key_id": SENDER.key_id}
    assert m["recipient"]["key_id"] == RECIPIENT.key_id
    assert m["purpose"] == "prosecution" and m["legal_basis"]["basis"] == "consent"
    assert [p["name"] for p in m["parts"]] == [
        "facts",
        "statements",
        "timeline",
        "custody",
        "evidence/ev_abcd1234",
    ]


def test_no_victim_data_in_the_clear() -> None:
    assert b"Declaraci" not in PACKAGE
    assert "Declaración".encode("utf-16-le") not in PACKAGE
    assert PHOTO[:64] not in PACKAGE


def _section_spans(package: bytes) -> dict[str, tuple[int, int]]:
    verified = verify_package(package)
    spans = {s.name: (s.offset, s.size) for s in verified.sections}
    header_len = int.from_bytes(package[10:14], "big")
    spans["header"] = (14, header_len)
    sig_len = int.from_bytes(package[14 + header_len : 18 + header_len], "big")
    spans["signature"] = (18 + header_len, sig_len)
    return spans


@pytest.mark.parametrize(
    ("region", "where"),
    [
        (r, w)
        for r in [
            "header",
            "signature",
            "key",
            "manifest",
            "facts",
            "statements",
            "timeline",
            "custody",
            "evidence/ev_abcd1234",
        ]
        for w in ("first", "middle", "last")
    ],
)
def test_a_tampered_byte_in_any_part_is_detected_and_named(region: str, where: str) -> None:
    offset, size = _section_spans(PACKAGE)[region]
    index = offset + {"first": 0, "middle": size // 2, "last": size - 1}[where]
    tampered = bytearray(PACKAGE)
    tampered[index] ^= 0x01
    with pytest.raises(PackageError) as err:
        open_package(bytes(tampered), RECIPIENT, trusted=[SENDER.public()])
    expected = {"header": "header", "signature": {"header", "signature"}}.get(region, region)
    if isinstance(expected, set):
        assert err.value.part in expected, err.value
    else:
        assert err.value.part == expected, err.value
    # verify alone (no private key) names the same part
    with pytest.raises(PackageError) as err2:
        verify_package(bytes(tampered))
    assert err2.value.part == err.value.part


def test_truncation_and_trailing_bytes_are_refused() -> None:
    with pytest.raises(PackageError) as err:
        verify_package(PACKAGE[:-1])
    assert err.value.part == "evidence/ev_abcd1234" and err.value.code == "truncated"
    with pytest.raises(PackageError) as err:
        verify_package(PACKAGE + b"\x00")
    assert err.value.code == "trailing_data"
    with pytest.raises(PackageError) as err:
        verify_package(b"PK\x03\x04not a package")
    assert err.value.code == "not_a_package"


def test_a_package_for_one_recipient_cannot_be_opened_by_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = RecipientPrivateKey.generate()
    with pytest.raises(NotForThisKeyError) as err:
        open_package(PACKAGE, other)
    assert err.value.code == "wrong_recipient"
    # Even past the key id check (as if the header named the other key), HPKE refuses.
    real = pkg.verify_package

    def addressed_to_other(data: bytes, trusted: object = None) -> pkg.Verified:
        return dataclasses.replace(real(data), recipient_key_id=other.key_id)

    monkeypatch.setattr(pkg, "verify_package", addressed_to_other)
    with pytest.raises(NotForThisKeyError) as err:
        pkg.open_package(PACKAGE, other)
    assert err.value.code == "cannot_decrypt"
    monkeypatch.undo()
    assert open_package(PACKAGE, RECIPIENT).parts["evidence/ev_abcd1234"] == PHOTO


def test_an_untrusted_signer_is_refused_even_if_self_consistent() -> None:
    impostor = InstitutionPrivateKey.generate()
    with pytest.raises(PackageError) as err:
        verify_package(PACKAGE, trusted=[impostor.public()])
    assert (err.value.part, err.value.code) == ("signature", "untrusted_signer")
    assert not verify_package(PACKAGE).trusted


def test_acks_and_recalls_are_signed_and_bound_to_the_package() -> None:
    prosecutor = InstitutionPrivateKey.generate()
    verified = verify_package(PACKAGE, trusted=[SENDER.public()])
    ack = make_ack(verified, prosecutor, "MP-FETP", at=datetime(2026, 1, 2, tzinfo=UTC))
    notice = verify_notice(
        ack,
        [prosecutor.public()],
        package_id=verified.package_id,
        header_sha256=verified.header_sha256,
    )
    assert (notice.kind, notice.status, notice.institution) == ("ack", "acknowledged", "MP-FETP")
    with pytest.raises(NoticeError, match="not a trusted key"):
        verify_notice(ack, [SENDER.public()])
    forged = ack.replace(b'"acknowledged"', b'"rejected"')
    with pytest.raises(NoticeError, match="does not verify"):
        verify_notice(forged, [prosecutor.public()])
    other = verify_package(build())
    with pytest.raises(NoticeError, match="another package"):
        verify_notice(ack, [prosecutor.public()], package_id=other.package_id)
    rejection = make_ack(verified, prosecutor, "MP-FETP", status="rejected", reason="incomplete")
    assert verify_notice(rejection, [prosecutor.public()]).reason == "incomplete"
    recall = make_recall(verified, SENDER, "SVET")
    assert verify_notice(recall, [SENDER.public()]).kind == "recall"


@settings(max_examples=150, deadline=None)
@given(
    cuts=st.lists(
        st.integers(min_value=0, max_value=len(PACKAGE) - 1), min_size=1, max_size=4, unique=True
    ),
    mode=st.sampled_from(["flip", "truncate", "extend", "delete"]),
    junk=st.binary(min_size=1, max_size=64),
)
def test_any_mangled_package_is_refused_with_a_package_error(
    cuts: list[int], mode: str, junk: bytes
) -> None:
    data = bytearray(PACKAGE)
    if mode == "flip":
        for cut in cuts:
            data[cut] ^= 0x80
    elif mode == "truncate":
        data = data[: min(cuts)]
    elif mode == "extend":
        data[cuts[0] : cuts[0]] = junk
    else:
        del data[min(cuts) : max(cuts) + 1]
    with pytest.raises(PackageError):
        open_package(bytes(data), RECIPIENT, trusted=[SENDER.public()])
