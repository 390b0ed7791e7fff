"""The handoff package, format 1: seal, verify and open. ``docs/handoff-format.md`` is its spec.

Layout (integers big-endian)::

    magic "ERIHNDF\\0" (8) | format version u16 (= 1)
    header length u32 | header (canonical JSON, UTF-8)     signed, clear, no victim data
    signature length u32 | signature block (JSON)          Ed25519 + ML-DSA-65 over the header
    sections, back to back, in the order the header lists them:
      "key"       HPKE (RFC 9180, ML-KEM-768+X25519, HKDF-SHA256, AES-256-GCM) seal of the
                  32-byte content key to the recipient's public key
      "manifest"  AES-256-GCM under the content key: the manifest (JSON)
      every part  AES-256-GCM under the content key: facts, statements, timeline, custody,
                  evidence/<id>

The header names each section's size and the SHA-256 of its sealed bytes, and the SHA-256 of
the plaintext manifest, which in turn names every part's size and plaintext SHA-256. So:
``verify`` (no private key) checks the signature and every sealed section; ``open`` also
decrypts and checks the manifest and every part against their hashes, and only then returns
anything. Every failure names the section or part that failed.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from eri.handoff.keys import (
    InstitutionPrivateKey,
    InstitutionPublicKey,
    KeyFormatError,
    RecipientPrivateKey,
    RecipientPublicKey,
    Signature,
    key_from_json,
)

MAGIC: Final = b"ERIHNDF\x00"
FORMAT_VERSION: Final = 1
FORMAT_NAME: Final = "eri-handoff"
SIGNATURE_CONTEXT: Final = b"eri-handoff/v1 header"
HPKE_INFO_PREFIX: Final = b"eri-handoff/v1 content-key\x00"
SUITE: Final = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
SUITE_NAMES: Final = {
    "kem": "MLKEM768-X25519",
    "kdf": "HKDF-SHA256",
    "aead": "AES-256-GCM",
    "content": "AES-256-GCM",
    "signature": "Ed25519+ML-DSA-65",
}
MAX_HEADER: Final = 1 << 20
MAX_SIGNATURE: Final = 16 << 10
MAX_PACKAGE: Final = 1 << 31
PART_NAME: Final = re.compile(
    r"(facts|statements|timeline|custody|evidence/ev_[A-Za-z0-9_-]{4,48})"
)
PACKAGE_ID: Final = re.compile(r"hnd_[A-Za-z0-9_-]{8,48}")
KEY_SECTION: Final = "key"
MANIFEST_SECTION: Final = "manifest"
_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")


class PackageError(Exception):
    """A package that must not be trusted. ``part`` names what failed (``header``,
    ``signature``, ``key``, ``manifest``, a part name, or ``package`` for the container);
    ``code`` is a stable reason. The message never holds package content."""

    def __init__(self, part: str, code: str, message: str) -> None:
        super().__init__(f"{part}: {message}")
        self.part = part
        self.code = code
        self.message = message


class NotForThisKeyError(PackageError):
    """The package is addressed to another recipient key, or this key cannot open it."""


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _aad(package_id: str, section: str) -> bytes:
    pid, name = package_id.encode(), section.encode()
    return b"eri-handoff/v1\x00" + _U32.pack(len(pid)) + pid + _U32.pack(len(name)) + name


def _nonce(index: int) -> bytes:
    # The content key is fresh for every package and every section has its own index.
    return index.to_bytes(12, "big")


def new_package_id() -> str:
    return "hnd_" + secrets.token_urlsafe(18)


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- building --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One part to seal: a name (``facts``, ``statements``, ``timeline``, ``custody``,
    ``evidence/<evidence id>``), its media type and its bytes."""

    name: str
    data: bytes
    media_type: str = "application/json"


@dataclass(frozen=True)
class CaseRef:
    pseudonym: str  # opaque; links sender and receiver cases and nothing else
    protocol_id: str
    protocol_version: str
    protocol_hash: str | None = None


@dataclass(frozen=True)
class LegalBasis:
    basis: str  # code: consent | <protocol basis code for handoff without consent>
    reference: str | None = None  # consent record or order reference (a code or number)


def json_part(name: str, value: Any) -> Part:
    return Part(name, canonical_json(value), "application/json")


def seal_package(
    *,
    parts: Iterable[Part],
    case: CaseRef,
    purpose: str,
    legal_basis: LegalBasis,
    sender_institution: str,
    sender_key: InstitutionPrivateKey,
    recipient: RecipientPublicKey,
    recipient_institution: str | None = None,
    package_id: str | None = None,
    created_at: datetime | None = None,
) -> bytes:
    """Seal ``parts`` for ``recipient`` and sign the package as ``sender_institution``."""
    package_id = package_id or new_package_id()
    if PACKAGE_ID.fullmatch(package_id) is None:
        raise ValueError("package id must be hnd_ plus 8-48 url-safe characters")
    created = _utc(created_at or datetime.now(UTC))
    parts = list(parts)
    names = [p.name for p in parts]
    for name in names:
        if PART_NAME.fullmatch(name) is None:
            raise ValueError(f"part name {name!r} is not one of the format's part names")
    if len(set(names)) != len(names):
        raise ValueError("part names must be unique")
    sender_pub = sender_key.public()
    sender = {
        "institution": sender_institution,
        "key_id": sender_pub.key_id,
        "public_key": sender_pub.to_json(),
    }
    recipient_ref: dict[str, Any] = {"key_id": recipient.key_id}
    if recipient_institution is not None:
        recipient_ref["institution"] = recipient_institution
    manifest = {
        "format": FORMAT_NAME + "-manifest",
        "version": FORMAT_VERSION,
        "package_id": package_id,
        "created_at": created,
        "sender": {"institution": sender_institution, "key_id": sender_pub.key_id},
        "recipient": recipient_ref,
        "case": {
            "pseudonym": case.pseudonym,
            "protocol_id": case.protocol_id,
            "protocol_version": case.protocol_version,
            "protocol_hash": case.protocol_hash,
        },
        "purpose": purpose,
        "legal_basis": {"basis": legal_basis.basis, "reference": legal_basis.reference},
        "parts": [
            {
                "name": p.name,
                "media_type": p.media_type,
                "size": len(p.data),
                "sha256": sha256_hex(p.data),
            }
            for p in parts
        ],
    }
    manifest_bytes = canonical_json(manifest)
    content_key = AESGCM.generate_key(bit_length=256)
    aes = AESGCM(content_key)
    sections: list[tuple[str, bytes]] = [
        (
            KEY_SECTION,
            SUITE.encrypt(
                content_key, recipient.hpke_key(), info=HPKE_INFO_PREFIX + package_id.encode()
            ),
        )
    ]
    plain = [(MANIFEST_SECTION, manifest_bytes), *((p.name, p.data) for p in parts)]
    for index, (name, data) in enumerate(plain, start=1):
        sections.append((name, aes.encrypt(_nonce(index), data, _aad(package_id, name))))
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "package_id": package_id,
        "created_at": created,
        "sender": sender,
        "recipient": recipient_ref,
        "suite": SUITE_NAMES,
        "manifest_sha256": sha256_hex(manifest_bytes),
        "sections": [{"name": n, "size": len(b), "sha256": sha256_hex(b)} for n, b in sections],
    }
    header_bytes = canonical_json(header)
    signature = canonical_json(sender_key.sign(header_bytes, SIGNATURE_CONTEXT).to_json())
    out = bytearray(MAGIC + _U16.pack(FORMAT_VERSION))
    out += _U32.pack(len(header_bytes)) + header_bytes
    out += _U32.pack(len(signature)) + signature
    for _, data in sections:
        out += data
    return bytes(out)


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    name: str
    offset: int
    size: int
    sha256: str


@dataclass(frozen=True)
class Verified:
    """A package whose signature and every sealed section checked out."""

    package_id: str
    created_at: str
    sender_institution: str
    sender_key: InstitutionPublicKey
    recipient_key_id: str
    recipient_institution: str | None
    header: dict[str, Any]
    header_sha256: str
    package_sha256: str
    sections: list[Section]
    trusted: bool
    """Whether the signing key is one of the caller's trusted keys (False if none given)."""


@dataclass(frozen=True)
class Opened:
    """A package opened with the recipient key: manifest and every part checked."""

    verified: Verified
    manifest: dict[str, Any]
    parts: dict[str, bytes] = field(repr=False)

    def json(self, name: str) -> Any:
        return json.loads(self.parts[name])


def _take(data: bytes, offset: int, size: int, part: str) -> bytes:
    if offset + size > len(data):
        raise PackageError(part, "truncated", "the package is truncated")
    return data[offset : offset + size]


def _str(obj: Mapping[str, Any], key: str, part: str = "header") -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise PackageError(part, "malformed", f"field {key} is missing or not a string")
    return value


def verify_package(data: bytes, trusted: Iterable[InstitutionPublicKey] | None = None) -> Verified:
    """Check the container, the signature and every sealed section's size and SHA-256.

    ``trusted``: the sending institutions' registered keys. If given and the signer is not
    among them, :class:`PackageError` (``signature``, ``untrusted_signer``). If not given, the
    key embedded in the package is used and ``Verified.trusted`` is False.
    """
    if len(data) > MAX_PACKAGE:
        raise PackageError("package", "too_large", "the package exceeds 2 GiB")
    if data[:8] != MAGIC:
        raise PackageError("package", "not_a_package", "not an ERI handoff package")
    if len(data) < 10:
        raise PackageError("package", "truncated", "the package is truncated")
    (version,) = _U16.unpack_from(data, 8)
    if version != FORMAT_VERSION:
        raise PackageError("package", "unsupported_version", f"format version {version}")
    offset = 10
    (hlen,) = _U32.unpack_from(_take(data, offset, 4, "header"), 0)
    if hlen > MAX_HEADER:
        raise PackageError("header", "malformed", "header length is out of range")
    header_bytes = _take(data, offset + 4, hlen, "header")
    offset += 4 + hlen
    (slen,) = _U32.unpack_from(_take(data, offset, 4, "signature"), 0)
    if slen > MAX_SIGNATURE:
        raise PackageError("signature", "malformed", "signature length is out of range")
    sig_bytes = _take(data, offset + 4, slen, "signature")
    offset += 4 + slen
    # The signature first: nothing in an unsigned header is believed.
    try:
        header = json.loads(header_bytes)
        if not isinstance(header, dict):
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise PackageError("header", "malformed", "the header is not JSON") from None
    sender = header.get("sender")
    if not isinstance(sender, dict):
        raise PackageError("header", "malformed", "the header names no sender")
    try:
        embedded = key_from_json(sender.get("public_key"))
    except KeyFormatError as exc:
        raise PackageError("header", "malformed", str(exc)) from None
    try:
        signature = Signature.from_json(json.loads(sig_bytes))
    except KeyFormatError as exc:
        raise PackageError("signature", "malformed", str(exc)) from None
    except (ValueError, UnicodeDecodeError):
        raise PackageError("signature", "malformed", "the signature block is not JSON") from None
    if not isinstance(embedded, InstitutionPublicKey):
        raise PackageError("header", "malformed", "the sender key is not an institution key")
    is_trusted = False
    signer = embedded
    if trusted is not None:
        known = {k.key_id: k for k in trusted}
        if signature.key_id not in known:
            raise PackageError(
                "signature",
                "untrusted_signer",
                f"signed by {signature.key_id}, which is not a trusted sender key",
            )
        signer, is_trusted = known[signature.key_id], True
    if not signer.verify(signature, header_bytes, SIGNATURE_CONTEXT):
        raise PackageError(
            "header", "bad_signature", "the signature does not verify (header or signature changed)"
        )
    # The header is authentic from here on.
    if header.get("format") != FORMAT_NAME or header.get("version") != FORMAT_VERSION:
        raise PackageError("header", "unsupported_version", "header format or version unknown")
    if header.get("suite") != SUITE_NAMES:
        raise PackageError("header", "unsupported_suite", "unsupported algorithm suite")
    package_id = _str(header, "package_id")
    recipient = header.get("recipient")
    if not isinstance(recipient, dict):
        raise PackageError("header", "malformed", "the header names no recipient")
    raw_sections = header.get("sections")
    if not isinstance(raw_sections, list) or len(raw_sections) < 2:
        raise PackageError("header", "malformed", "the header lists no sections")
    sections: list[Section] = []
    for raw in raw_sections:
        size = raw.get("size") if isinstance(raw, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise PackageError("header", "malformed", "a section entry is malformed")
        sections.append(Section(_str(raw, "name"), offset, raw["size"], _str(raw, "sha256")))
        offset += raw["size"]
    names = [s.name for s in sections]
    if names[:2] != [KEY_SECTION, MANIFEST_SECTION] or len(set(names)) != len(names):
        raise PackageError("header", "malformed", "sections must be key, manifest, parts")
    for section in sections:
        chunk = _take(data, section.offset, section.size, section.name)
        if sha256_hex(chunk) != section.sha256:
            raise PackageError(
                section.name, "hash_mismatch", "SHA-256 of the sealed bytes does not match"
            )
    if offset != len(data):
        raise PackageError("package", "trailing_data", "bytes after the last section")
    return Verified(
        package_id=package_id,
        created_at=_str(header, "created_at"),
        sender_institution=_str(sender, "institution"),
        sender_key=signer,
        recipient_key_id=_str(recipient, "key_id"),
        recipient_institution=recipient.get("institution"),
        header=header,
        header_sha256=sha256_hex(header_bytes),
        package_sha256=sha256_hex(data),
        sections=sections,
        trusted=is_trusted,
    )


def open_package(
    data: bytes,
    key: RecipientPrivateKey,
    trusted: Iterable[InstitutionPublicKey] | None = None,
) -> Opened:
    """Verify, then decrypt and check the manifest and every part. Returns nothing unless
    every check passed."""
    verified = verify_package(data, trusted)
    if verified.recipient_key_id != key.key_id:
        raise NotForThisKeyError(
            "key",
            "wrong_recipient",
            f"the package is sealed for {verified.recipient_key_id}, not for {key.key_id}",
        )
    by_name = {s.name: s for s in verified.sections}
    key_section = by_name[KEY_SECTION]
    try:
        content_key = SUITE.decrypt(
            data[key_section.offset : key_section.offset + key_section.size],
            key.hpke_key(),
            info=HPKE_INFO_PREFIX + verified.package_id.encode(),
        )
    except (InvalidTag, ValueError):
        raise NotForThisKeyError(
            "key", "cannot_decrypt", "this key cannot open the package's content key"
        ) from None
    aes = AESGCM(content_key)
    plain: dict[str, bytes] = {}
    for index, section in enumerate(verified.sections[1:], start=1):
        sealed = data[section.offset : section.offset + section.size]
        try:
            plain[section.name] = aes.decrypt(
                _nonce(index), sealed, _aad(verified.package_id, section.name)
            )
        except InvalidTag:
            raise PackageError(section.name, "decrypt_failed", "authentication failed") from None
    manifest_bytes = plain.pop(MANIFEST_SECTION)
    if sha256_hex(manifest_bytes) != verified.header.get("manifest_sha256"):
        raise PackageError("manifest", "hash_mismatch", "SHA-256 of the manifest does not match")
    try:
        manifest = json.loads(manifest_bytes)
    except (ValueError, UnicodeDecodeError):
        raise PackageError("manifest", "malformed", "the manifest is not JSON") from None
    for key_name in ("package_id", "created_at"):
        if manifest.get(key_name) != verified.header.get(key_name):
            raise PackageError("manifest", "mismatch", f"{key_name} differs from the header")
    listed = manifest.get("parts")
    if not isinstance(listed, list):
        raise PackageError("manifest", "malformed", "the manifest lists no parts")
    listed_names = [p.get("name") for p in listed if isinstance(p, dict)]
    if listed_names != list(plain):
        raise PackageError("manifest", "mismatch", "parts differ from the sealed sections")
    for entry in listed:
        name = entry["name"]
        body = plain[name]
        if entry.get("size") != len(body) or entry.get("sha256") != sha256_hex(body):
            raise PackageError(name, "hash_mismatch", "SHA-256 of the part does not match")
    return Opened(verified, manifest, plain)
