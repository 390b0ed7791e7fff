"""The AES-256-GCM envelope: round trips, wrong keys, tampering, associated data, messages."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eri.crypto import aead
from eri.crypto.aead import AeadKey, make_aad, open_, parse_header, seal
from eri.crypto.errors import CryptoError, DecryptionError, InvalidKeyIdError

SECRET = "María Pérez, pasaporte G12345678, +502 5555 0101".encode()
AAD = make_aad("vault", "case_01JABCDEF", "statement", 3)


def test_round_trip_and_layout() -> None:
    key = os.urandom(32)
    env = seal(key, "dk_case_01JABCDEF", 7, SECRET, AAD)
    assert open_(key, "dk_case_01JABCDEF", 7, env, AAD) == SECRET
    header = parse_header(env)
    assert (header.format_version, header.key_id, header.key_version) == (
        1,
        "dk_case_01JABCDEF",
        7,
    )
    # version ‖ len ‖ key id ‖ u32 version ‖ nonce ‖ ciphertext ‖ tag
    assert env[0] == 1
    assert env[1] == len("dk_case_01JABCDEF")
    assert header.length == 2 + 17 + 4
    assert len(env) == header.length + 12 + len(SECRET) + 16
    assert SECRET not in env


def test_nonces_are_fresh() -> None:
    key = AeadKey(os.urandom(32), "dk_system", 1)
    envs = {key.seal(b"same", b"") for _ in range(200)}
    assert len(envs) == 200


@given(plaintext=st.binary(max_size=2048), aad=st.binary(max_size=64))
@settings(max_examples=100, deadline=None)
def test_round_trip_property(plaintext: bytes, aad: bytes) -> None:
    key = AeadKey(os.urandom(32), "dk_case_x", 1)
    assert key.open(key.seal(plaintext, aad), aad) == plaintext


def test_wrong_key_fails() -> None:
    env = seal(os.urandom(32), "dk_case_a", 1, SECRET, AAD)
    with pytest.raises(DecryptionError):
        open_(os.urandom(32), "dk_case_a", 1, env, AAD)


def test_other_key_id_or_version_is_refused() -> None:
    key = os.urandom(32)
    env = seal(key, "dk_case_a", 1, SECRET, AAD)
    with pytest.raises(DecryptionError):
        open_(key, "dk_case_b", 1, env, AAD)
    with pytest.raises(DecryptionError):
        open_(key, "dk_case_a", 2, env, AAD)


def test_every_flipped_byte_fails() -> None:
    key = os.urandom(32)
    env = seal(key, "dk_case_a", 1, b"short statement", AAD)
    for i in range(len(env)):
        for bit in (0x01, 0x80):
            tampered = bytearray(env)
            tampered[i] ^= bit
            with pytest.raises(DecryptionError):
                open_(key, "dk_case_a", 1, bytes(tampered), AAD)


def test_truncation_and_extension_fail() -> None:
    key = os.urandom(32)
    env = seal(key, "dk_case_a", 1, SECRET, AAD)
    for cut in range(len(env)):
        with pytest.raises(DecryptionError):
            open_(key, "dk_case_a", 1, env[:cut], AAD)
    with pytest.raises(DecryptionError):
        open_(key, "dk_case_a", 1, env + b"\x00", AAD)


def test_associated_data_is_bound() -> None:
    """A vault row sealed for case A does not open as case B's (cross-case row swap)."""
    key = os.urandom(32)
    env = seal(key, "dk_case_a", 1, SECRET, make_aad("vault", "case_a", "statement", 3))
    for wrong in (
        make_aad("vault", "case_b", "statement", 3),
        make_aad("vault", "case_a", "identity", 3),
        make_aad("vault", "case_a", "statement", 2),
        b"",
    ):
        with pytest.raises(DecryptionError):
            open_(key, "dk_case_a", 1, env, wrong)


def test_make_aad_is_unambiguous() -> None:
    assert make_aad("ab", "c") != make_aad("a", "bc")
    assert make_aad("1") != make_aad(1)
    assert make_aad(b"x") != make_aad("x")
    assert make_aad("a", "") != make_aad("a")
    with pytest.raises(TypeError):
        make_aad(True)


def test_malformed_envelopes() -> None:
    for junk in (b"", b"\x01", b"\x02" + b"\x00" * 40, b"\x01\x00" + b"\x00" * 40, b"\x01\x05ab"):
        with pytest.raises(DecryptionError):
            parse_header(junk)
    # a key id with non-ASCII bytes
    with pytest.raises(DecryptionError):
        parse_header(b"\x01\x02\xc3\xa9" + b"\x00" * 40)


def test_key_ids_are_opaque_tokens() -> None:
    for bad in ("", "María", "case a", "x" * 65, "-lead"):
        with pytest.raises(InvalidKeyIdError):
            seal(os.urandom(32), bad, 1, b"", b"")
    with pytest.raises(ValueError, match="key version"):
        seal(os.urandom(32), "dk_x", -1, b"", b"")
    with pytest.raises(ValueError, match="32 bytes"):
        AeadKey(os.urandom(16), "dk_x", 1)


def test_errors_never_carry_plaintext_or_key_material() -> None:
    key = os.urandom(32)
    env = seal(key, "dk_case_a", 1, SECRET, AAD)
    failures: list[CryptoError] = []
    for attempt in (
        lambda: open_(os.urandom(32), "dk_case_a", 1, env, AAD),
        lambda: open_(key, "dk_case_a", 1, env, b"wrong"),
        lambda: open_(key, "dk_case_b", 1, env, AAD),
        lambda: open_(key, "dk_case_a", 1, env[:-1], AAD),
    ):
        with pytest.raises(DecryptionError) as info:
            attempt()
        failures.append(info.value)
    for exc in failures:
        text = f"{exc!s} {exc!r}"
        assert exc.__cause__ is None
        assert exc.__context__ is None or exc.__suppress_context__
        for secret in (SECRET, key, env[-16:], b"Mar"):
            assert secret.hex() not in text
            assert repr(secret) not in text
        assert "María" not in text
    assert key.hex() not in repr(AeadKey(key, "dk_case_a", 1))


def test_public_constants() -> None:
    assert aead.NONCE_SIZE == 12
    assert aead.KEY_SIZE == 32
    assert len(aead.generate_key()) == 32
