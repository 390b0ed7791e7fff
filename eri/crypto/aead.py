"""AES-256-GCM envelopes: one compact, versioned binary format for every ciphertext ERI stores.

Envelope format 1 (all integers big-endian)::

    offset    size  field
    0         1     format version (0x01)
    1         1     n = length of the key id (1..64)
    2         n     key id, ASCII (an opaque id such as ``dk_case_…`` or ``dk_system``)
    2+n       4     key version (unsigned)
    6+n       12    nonce (random per envelope)
    18+n      …     ciphertext followed by the 16-byte GCM tag

The GCM associated data is the header (bytes ``0 .. 6+n``) followed by the caller's associated
data. Binding the header means a changed key id or key version fails authentication like any
other tampering; the caller's part binds the context (for the vault: case id, field, record
version; for Temporal payloads: a fixed domain label). Use :func:`make_aad` to build it so
concatenated parts can never be confused with each other.

Random 96-bit nonces keep the collision probability negligible far beyond the number of
envelopes one data key will ever seal (NIST SP 800-38D's 2**32 bound per key).
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from eri.crypto.errors import DecryptionError, InvalidKeyIdError

FORMAT_VERSION: Final = 1
KEY_SIZE: Final = 32
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
MAX_KEY_ID_LENGTH: Final = 64
MAX_KEY_VERSION: Final = 0xFFFFFFFF

#: Key ids are opaque ASCII tokens; nothing else (and so no personal data) fits.
KEY_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")

_VERSION_BYTE: Final = bytes([FORMAT_VERSION])
_U32: Final = struct.Struct(">I")


def validate_key_id(key_id: str) -> str:
    """Return ``key_id`` if it is an opaque key id, else raise :class:`InvalidKeyIdError`."""
    if not isinstance(key_id, str) or KEY_ID_PATTERN.fullmatch(key_id) is None:
        raise InvalidKeyIdError("key id must be 1-64 characters of [A-Za-z0-9_.:-]")
    return key_id


def _validate_key_version(key_version: int) -> int:
    if not isinstance(key_version, int) or not 0 <= key_version <= MAX_KEY_VERSION:
        raise ValueError("key version must be an integer in 0..2**32-1")
    return key_version


def _header(key_id: str, key_version: int) -> bytes:
    kid = validate_key_id(key_id).encode("ascii")
    return _VERSION_BYTE + bytes([len(kid)]) + kid + _U32.pack(_validate_key_version(key_version))


def make_aad(*parts: str | bytes | int) -> bytes:
    """Unambiguous associated data from parts: each is length-prefixed and type-tagged.

    ``make_aad("vault", case_id, "statement", 3)`` never equals the encoding of any other
    sequence of parts, so no two contexts can be made to collide by moving a separator.
    """
    out = bytearray()
    for part in parts:
        if isinstance(part, bool):
            raise TypeError("associated data parts are str, bytes or int")
        if isinstance(part, str):
            tag, raw = b"s", part.encode("utf-8")
        elif isinstance(part, bytes):
            tag, raw = b"b", part
        elif isinstance(part, int):
            tag, raw = b"i", str(part).encode("ascii")
        else:
            raise TypeError("associated data parts are str, bytes or int")
        out += tag + _U32.pack(len(raw)) + raw
    return bytes(out)


@dataclass(frozen=True, slots=True)
class EnvelopeHeader:
    """The clear part of an envelope: enough to look up the key, nothing else."""

    format_version: int
    key_id: str
    key_version: int
    length: int
    """Length of the header in bytes; the nonce starts here."""


def parse_header(envelope: bytes) -> EnvelopeHeader:
    """Read the key id and version of an envelope without decrypting it.

    Raises :class:`DecryptionError` if the envelope is malformed or too short to hold a nonce
    and a tag.
    """
    if not isinstance(envelope, bytes | bytearray | memoryview):
        raise DecryptionError("envelope is not bytes")
    env = bytes(envelope)
    if len(env) < 2 or env[0] != FORMAT_VERSION:
        raise DecryptionError("unsupported or malformed envelope")
    n = env[1]
    end = 2 + n + 4
    if n == 0 or n > MAX_KEY_ID_LENGTH or len(env) < end + NONCE_SIZE + TAG_SIZE:
        raise DecryptionError("malformed envelope")
    try:
        key_id = env[2 : 2 + n].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError("malformed envelope") from None
    if KEY_ID_PATTERN.fullmatch(key_id) is None:
        raise DecryptionError("malformed envelope")
    (key_version,) = _U32.unpack_from(env, 2 + n)
    return EnvelopeHeader(FORMAT_VERSION, key_id, key_version, end)


class AeadKey:
    """An unwrapped data key bound to its id and version, ready to seal and open envelopes.

    Holds the ``AESGCM`` object and the precomputed header so the hot path (the Temporal codec
    with a cached key) does no per-call set-up. Its ``repr`` shows the id only.
    """

    __slots__ = ("_aes", "_header", "key_id", "key_version")

    def __init__(self, key: bytes, key_id: str, key_version: int) -> None:
        if not isinstance(key, bytes) or len(key) != KEY_SIZE:
            raise ValueError("an AES-256-GCM key is exactly 32 bytes")
        self._header = _header(key_id, key_version)
        self._aes = AESGCM(key)
        self.key_id = key_id
        self.key_version = key_version

    def __repr__(self) -> str:
        return f"AeadKey(key_id={self.key_id!r}, key_version={self.key_version})"

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt ``plaintext`` bound to ``aad``; returns a complete envelope."""
        nonce = os.urandom(NONCE_SIZE)
        header = self._header
        return header + nonce + self._aes.encrypt(nonce, plaintext, header + aad)

    def open(self, envelope: bytes, aad: bytes) -> bytes:
        """Authenticate and decrypt an envelope sealed by this key with the same ``aad``.

        Raises :class:`DecryptionError` on any mismatch: other key id or version in the header,
        wrong key, wrong associated data, any flipped bit, truncation.
        """
        header = self._header
        hlen = len(header)
        if envelope[:hlen] != header:
            # Another key's envelope (or a tampered header): refuse before touching GCM.
            raise DecryptionError(f"envelope was not sealed with key {self.key_id}")
        if len(envelope) < hlen + NONCE_SIZE + TAG_SIZE:
            raise DecryptionError("malformed envelope")
        nonce = envelope[hlen : hlen + NONCE_SIZE]
        try:
            return self._aes.decrypt(nonce, envelope[hlen + NONCE_SIZE :], header + aad)
        except InvalidTag:
            raise DecryptionError(
                f"authentication failed for an envelope under key {self.key_id}"
            ) from None


def generate_key() -> bytes:
    """32 random bytes from the OS CSPRNG: a fresh AES-256-GCM data key."""
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, key_id: str, key_version: int, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt ``plaintext`` under ``key`` into an envelope naming ``key_id`` and version."""
    return AeadKey(key, key_id, key_version).seal(plaintext, aad)


def open_(key: bytes, key_id: str, key_version: int, envelope: bytes, aad: bytes) -> bytes:
    """Decrypt an envelope produced by :func:`seal` with the same key, id, version and aad.

    Raises :class:`DecryptionError` (never with plaintext or key material in its message).
    """
    return AeadKey(key, key_id, key_version).open(bytes(envelope), aad)
