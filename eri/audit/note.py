"""C2SP signed notes, checkpoints and cosignatures (Ed25519).

- signed-note (c2sp.org/signed-note): a text ending in a newline, a blank line, then signature
  lines ``— <key name> base64(key ID || signature)``. An Ed25519 key's ID is
  ``SHA-256(name || "\\n" || 0x01 || public key)[:4]``; the signature is over the text.
  A verifier key is written ``<name>+<hex key ID>+base64(0x01 || public key)``.
- tlog-checkpoint (c2sp.org/tlog-checkpoint): the text is ``<origin>\\n<tree size>\\n<base64
  root hash>\\n``.
- tlog-cosignature (c2sp.org/tlog-cosignature, v1): a witness signs ``cosignature/v1\\ntime
  <unix seconds>\\n`` followed by the checkpoint text; key ID uses 0x04; the line carries
  ``key ID || u64 big-endian timestamp || signature``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DASH = "\u2014"
ED25519 = 0x01
COSIGNATURE_V1 = 0x04
KEY_NAME = re.compile(r"[^\s+]+")


class NoteError(ValueError):
    """A note, checkpoint or key that does not parse or does not verify."""


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public: Ed25519PublicKey, alg: int = ED25519) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + _raw(public)).digest()[:4]


@dataclass(frozen=True)
class VerifierKey:
    """A named Ed25519 public key: the log's (alg 0x01) or a witness's (alg 0x04)."""

    name: str
    public: Ed25519PublicKey
    alg: int = ED25519

    @property
    def id(self) -> bytes:
        return key_id(self.name, self.public, self.alg)

    def encode(self) -> str:
        material = base64.b64encode(bytes([self.alg]) + _raw(self.public)).decode()
        return f"{self.name}+{self.id.hex()}+{material}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        try:
            name, hex_id, material = text.strip().split("+", 2)
            raw = base64.b64decode(material, validate=True)
        except (ValueError, binascii.Error):
            raise NoteError("a verifier key is <name>+<hex key id>+<base64 key>") from None
        if not KEY_NAME.fullmatch(name) or len(raw) != 33 or raw[0] not in (ED25519, 0x04):
            raise NoteError("not an Ed25519 verifier key (type 0x01 or 0x04, 32 bytes)")
        key = cls(name, Ed25519PublicKey.from_public_bytes(raw[1:]), raw[0])
        if key.id.hex() != hex_id.lower():
            raise NoteError(f"the key id {hex_id} does not match key {name}")
        return key


@dataclass(frozen=True)
class Signer:
    name: str
    private: Ed25519PrivateKey
    alg: int = ED25519

    @classmethod
    def from_seed(cls, name: str, seed: bytes, alg: int = ED25519) -> Signer:
        if not KEY_NAME.fullmatch(name):
            raise NoteError("a key name is non-empty and has no spaces or '+'")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed), alg)

    @property
    def verifier(self) -> VerifierKey:
        return VerifierKey(self.name, self.private.public_key(), self.alg)

    def encode(self) -> str:
        """``PRIVATE+KEY+<name>+<hex key ID>+base64(type || seed)`` (signed-note's skey)."""
        seed = self.private.private_bytes_raw()
        material = base64.b64encode(bytes([self.alg]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.id.hex()}+{material}"

    @classmethod
    def parse(cls, text: str) -> Signer:
        try:
            private, key, name, hex_id, material = text.strip().split("+", 4)
            raw = base64.b64decode(material, validate=True)
        except (ValueError, binascii.Error):
            raise NoteError("a signing key is PRIVATE+KEY+<name>+<hex id>+<base64 key>") from None
        if (private, key) != ("PRIVATE", "KEY") or len(raw) != 33 or raw[0] not in (1, 4):
            raise NoteError("not an Ed25519 signing key")
        signer = cls.from_seed(name, raw[1:], raw[0])
        if signer.verifier.id.hex() != hex_id.lower():
            raise NoteError(f"the key id {hex_id} does not match key {name}")
        return signer


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse_body(cls, body: str) -> Checkpoint:
        lines = body.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint is origin, size and root hash, each on its own line")
        origin, size, root = lines[0], lines[1], lines[2]
        if not origin or not re.fullmatch(r"0|[1-9][0-9]{0,18}", size):
            raise NoteError("the checkpoint's origin or tree size is malformed")
        try:
            digest = base64.b64decode(root, validate=True)
        except binascii.Error:
            raise NoteError("the checkpoint's root hash is not base64") from None
        if len(digest) != 32:
            raise NoteError("the checkpoint's root hash is not 32 bytes")
        return cls(origin, int(size), digest)


@dataclass(frozen=True)
class SignatureLine:
    name: str
    key_id: bytes
    payload: bytes  # signature, or timestamp || signature for a cosignature

    def render(self) -> str:
        return f"{DASH} {self.name} {base64.b64encode(self.key_id + self.payload).decode()}\n"

    @classmethod
    def parse(cls, line: str) -> SignatureLine:
        parts = line.rstrip("\n").split(" ")
        if len(parts) != 3 or parts[0] != DASH or not parts[1]:
            raise NoteError("a signature line is '— <key name> <base64 signature>'")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            raise NoteError("a signature is not base64") from None
        if len(raw) < 5:
            raise NoteError("a signature is too short")
        return cls(parts[1], raw[:4], raw[4:])


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[SignatureLine, ...]

    def render(self) -> str:
        return self.text + "\n" + "".join(s.render() for s in self.signatures)

    @classmethod
    def parse(cls, note: str) -> Note:
        text, sep, sigs = note.rpartition("\n\n")
        if not sep or not sigs.endswith("\n"):
            raise NoteError("a signed note is text, a blank line and signature lines")
        lines = [SignatureLine.parse(line) for line in sigs[:-1].split("\n")]
        return cls(text + "\n", tuple(lines))

    def with_signature(self, line: SignatureLine) -> Note:
        kept = [s for s in self.signatures if (s.name, s.key_id) != (line.name, line.key_id)]
        return Note(self.text, (*kept, line))


def sign(text: str, signer: Signer) -> Note:
    return Note(
        text, (SignatureLine(signer.name, signer.verifier.id, signer.private.sign(text.encode())),)
    )


def _cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def cosign(note: Note, witness: Signer, timestamp: int) -> SignatureLine:
    if witness.alg != COSIGNATURE_V1:
        raise NoteError("a witness key has type 0x04 (cosignature/v1)")
    signature = witness.private.sign(_cosigned_message(note.text, timestamp))
    return SignatureLine(
        witness.name, witness.verifier.id, struct.pack(">Q", timestamp) + signature
    )


def verify(note: Note, key: VerifierKey) -> SignatureLine:
    """The signature line of ``key`` on ``note`` if it verifies, else :class:`NoteError`."""
    for line in note.signatures:
        if line.name != key.name or line.key_id != key.id:
            continue
        try:
            if key.alg == COSIGNATURE_V1:
                if len(line.payload) != 72:
                    raise InvalidSignature
                (timestamp,) = struct.unpack(">Q", line.payload[:8])
                key.public.verify(line.payload[8:], _cosigned_message(note.text, timestamp))
            else:
                key.public.verify(line.payload, note.text.encode())
        except InvalidSignature:
            raise NoteError(f"the signature of {key.name} does not verify") from None
        return line
    raise NoteError(f"the note carries no signature by {key.name} ({key.id.hex()})")


def cosignature_time(line: SignatureLine) -> int:
    return int(struct.unpack(">Q", line.payload[:8])[0])
