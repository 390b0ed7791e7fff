"""Handoff keys: recipient (HPKE, ML-KEM-768 + X25519) and institution (Ed25519 + ML-DSA-65).

A *recipient key* opens packages: a prosecutor's office or another ERI deployment holds the
private half offline; the sending ERI registers the public half. An *institution key* signs:
the sending institution signs packages with it, and a recipient signs acknowledgements with
its own. Both signatures are hybrid: Ed25519 and ML-DSA-65 (FIPS 204), and both must verify.

Key files are JSON (``kind``, ``key_id``, base64 fields). A key id is the kind's prefix
(``rk_`` or ``ik_``) and the first 20 bytes of the SHA-256 of the public key material, in hex:
anyone can recompute it from the public key, so a key file cannot claim another key's id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mldsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

KeyKind = Literal["recipient", "institution"]
RECIPIENT_PREFIX: Final = "rk_"
INSTITUTION_PREFIX: Final = "ik_"
FILE_FORMAT: Final = "eri-handoff-key/1"


class KeyFormatError(ValueError):
    """A key file that is not an ERI handoff key of the expected kind, or is malformed."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise KeyFormatError(f"{what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise KeyFormatError(f"{what} is not base64") from None


def _key_id(prefix: str, *publics: bytes) -> str:
    digest = hashlib.sha256()
    for raw in publics:
        digest.update(len(raw).to_bytes(4, "big") + raw)
    return prefix + digest.hexdigest()[:40]


# --- recipient keys (HPKE) ---------------------------------------------------------------


@dataclass(frozen=True)
class RecipientPublicKey:
    mlkem: bytes  # ML-KEM-768 encapsulation key, 1184 bytes
    x25519: bytes  # 32 bytes

    @property
    def key_id(self) -> str:
        return _key_id(RECIPIENT_PREFIX, self.mlkem, self.x25519)

    def hpke_key(self) -> hpke.MLKEM768X25519PublicKey:
        try:
            return hpke.MLKEM768X25519PublicKey(
                MLKEM768PublicKey.from_public_bytes(self.mlkem),
                X25519PublicKey.from_public_bytes(self.x25519),
            )
        except ValueError:
            raise KeyFormatError("recipient public key is malformed") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FILE_FORMAT,
            "kind": "recipient",
            "part": "public",
            "key_id": self.key_id,
            "mlkem768": _b64(self.mlkem),
            "x25519": _b64(self.x25519),
        }


@dataclass(frozen=True)
class RecipientPrivateKey:
    mlkem_seed: bytes  # 64 bytes (d || z)
    x25519: bytes  # 32 bytes

    @classmethod
    def generate(cls) -> RecipientPrivateKey:
        return cls(
            MLKEM768PrivateKey.generate().private_bytes_raw(),
            X25519PrivateKey.generate().private_bytes_raw(),
        )

    def _parts(self) -> tuple[MLKEM768PrivateKey, X25519PrivateKey]:
        try:
            return (
                MLKEM768PrivateKey.from_seed_bytes(self.mlkem_seed),
                X25519PrivateKey.from_private_bytes(self.x25519),
            )
        except ValueError:
            raise KeyFormatError("recipient private key is malformed") from None

    def hpke_key(self) -> hpke.MLKEM768X25519PrivateKey:
        return hpke.MLKEM768X25519PrivateKey(*self._parts())

    def public(self) -> RecipientPublicKey:
        kem, dh = self._parts()
        return RecipientPublicKey(
            kem.public_key().public_bytes_raw(), dh.public_key().public_bytes_raw()
        )

    @property
    def key_id(self) -> str:
        return self.public().key_id

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FILE_FORMAT,
            "kind": "recipient",
            "part": "private",
            "key_id": self.key_id,
            "mlkem768_seed": _b64(self.mlkem_seed),
            "x25519": _b64(self.x25519),
        }


# --- institution keys (signatures) -------------------------------------------------------


@dataclass(frozen=True)
class InstitutionPublicKey:
    ed25519: bytes  # 32 bytes
    mldsa65: bytes  # 1952 bytes

    @property
    def key_id(self) -> str:
        return _key_id(INSTITUTION_PREFIX, self.ed25519, self.mldsa65)

    def verify(self, signature: Signature, message: bytes, context: bytes) -> bool:
        """True only if both the Ed25519 and the ML-DSA-65 signature verify."""
        if signature.key_id != self.key_id:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.ed25519).verify(
                signature.ed25519, context + message
            )
            mldsa.MLDSA65PublicKey.from_public_bytes(self.mldsa65).verify(
                signature.mldsa65, message, context
            )
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FILE_FORMAT,
            "kind": "institution",
            "part": "public",
            "key_id": self.key_id,
            "ed25519": _b64(self.ed25519),
            "mldsa65": _b64(self.mldsa65),
        }


@dataclass(frozen=True)
class Signature:
    key_id: str
    ed25519: bytes
    mldsa65: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "ed25519": _b64(self.ed25519),
            "mldsa65": _b64(self.mldsa65),
        }

    @classmethod
    def from_json(cls, data: Any) -> Signature:
        if not isinstance(data, dict) or not isinstance(data.get("key_id"), str):
            raise KeyFormatError("signature block is malformed")
        return cls(
            data["key_id"],
            _unb64(data.get("ed25519"), "Ed25519 signature"),
            _unb64(data.get("mldsa65"), "ML-DSA-65 signature"),
        )


@dataclass(frozen=True)
class InstitutionPrivateKey:
    ed25519: bytes  # 32-byte seed
    mldsa65_seed: bytes  # 32-byte seed

    @classmethod
    def generate(cls) -> InstitutionPrivateKey:
        return cls(
            Ed25519PrivateKey.generate().private_bytes_raw(),
            mldsa.MLDSA65PrivateKey.generate().private_bytes_raw(),
        )

    def public(self) -> InstitutionPublicKey:
        return InstitutionPublicKey(
            Ed25519PrivateKey.from_private_bytes(self.ed25519).public_key().public_bytes_raw(),
            mldsa.MLDSA65PrivateKey.from_seed_bytes(self.mldsa65_seed)
            .public_key()
            .public_bytes_raw(),
        )

    @property
    def key_id(self) -> str:
        return self.public().key_id

    def sign(self, message: bytes, context: bytes) -> Signature:
        """Sign ``message`` under a domain-separation ``context`` with both algorithms."""
        try:
            ed = Ed25519PrivateKey.from_private_bytes(self.ed25519)
            ml = mldsa.MLDSA65PrivateKey.from_seed_bytes(self.mldsa65_seed)
        except ValueError:
            raise KeyFormatError("institution private key is malformed") from None
        return Signature(self.key_id, ed.sign(context + message), ml.sign(message, context))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FILE_FORMAT,
            "kind": "institution",
            "part": "private",
            "key_id": self.key_id,
            "ed25519_seed": _b64(self.ed25519),
            "mldsa65_seed": _b64(self.mldsa65_seed),
        }


AnyKey = RecipientPublicKey | RecipientPrivateKey | InstitutionPublicKey | InstitutionPrivateKey


def key_from_json(data: Any) -> AnyKey:
    """Parse a key file's JSON; the stated key id must match the key material."""
    if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
        raise KeyFormatError(f"not an ERI handoff key file (expected format {FILE_FORMAT})")
    kind, part = data.get("kind"), data.get("part")
    key: AnyKey
    if (kind, part) == ("recipient", "public"):
        key = RecipientPublicKey(
            _unb64(data.get("mlkem768"), "mlkem768"), _unb64(data.get("x25519"), "x25519")
        )
        key.hpke_key()  # validates lengths
    elif (kind, part) == ("recipient", "private"):
        key = RecipientPrivateKey(
            _unb64(data.get("mlkem768_seed"), "mlkem768_seed"),
            _unb64(data.get("x25519"), "x25519"),
        )
    elif (kind, part) == ("institution", "public"):
        key = InstitutionPublicKey(
            _unb64(data.get("ed25519"), "ed25519"), _unb64(data.get("mldsa65"), "mldsa65")
        )
        try:
            Ed25519PublicKey.from_public_bytes(key.ed25519)
            mldsa.MLDSA65PublicKey.from_public_bytes(key.mldsa65)
        except ValueError:
            raise KeyFormatError("institution public key is malformed") from None
    elif (kind, part) == ("institution", "private"):
        key = InstitutionPrivateKey(
            _unb64(data.get("ed25519_seed"), "ed25519_seed"),
            _unb64(data.get("mldsa65_seed"), "mldsa65_seed"),
        )
    else:
        raise KeyFormatError("key file kind/part must be recipient|institution, public|private")
    try:
        actual = key.key_id
    except ValueError:
        raise KeyFormatError(f"{kind} {part} key is malformed") from None
    if data.get("key_id") != actual:
        raise KeyFormatError("key id in the file does not match the key material")
    return key


def load_key(path: Path) -> AnyKey:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise KeyFormatError(f"cannot read key file {path.name}") from None
    return key_from_json(data)


def write_key(path: Path, key: AnyKey) -> None:
    """Write a key file; private keys are created with mode 0600 and never overwritten."""
    text = json.dumps(key.to_json(), indent=2) + "\n"
    private = isinstance(key, RecipientPrivateKey | InstitutionPrivateKey)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


SIGNING_SECRET: Final = "handoff-signing"  # noqa: S105 (a file name, not a secret)


def institution_key_from_settings(settings: Any) -> InstitutionPrivateKey:
    """This deployment's institution signing key: the 64-byte secret ``handoff-signing`` in
    the key directory (Ed25519 seed ‖ ML-DSA-65 seed); created on first use in development,
    required to exist in production (:meth:`eri.settings.Settings.dev_secret`)."""
    secret: bytes = settings.dev_secret(SIGNING_SECRET, 64)
    if len(secret) != 64:
        raise KeyFormatError("the handoff signing secret must be 64 bytes")
    return InstitutionPrivateKey(secret[:32], secret[32:])


RECIPIENT_SECRET: Final = "handoff-recipient"  # noqa: S105 (a file name, not a secret)


def recipient_key_from_settings(settings: Any) -> RecipientPrivateKey:
    """This deployment's own recipient key (packages other ERIs send to it): the 96-byte
    secret ``handoff-recipient`` (ML-KEM-768 seed ‖ X25519 key), as the signing key above."""
    secret: bytes = settings.dev_secret(RECIPIENT_SECRET, 96)
    if len(secret) != 96:
        raise KeyFormatError("the handoff recipient secret must be 96 bytes")
    return RecipientPrivateKey(secret[:64], secret[64:])
