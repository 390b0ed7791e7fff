"""Key-encryption keys (KEKs): the one secret that wraps every data key.

A data key is stored only wrapped by a KEK. Every wrapped blob starts with a frame naming the
KEK that produced it, so a :class:`MultiKEK` can route an unwrap to the right KEK while a
rotation is under way::

    offset  size  field
    0       1     wrap format (0x01)
    1       1     n = length of the KEK id
    2       n     KEK id, ASCII
    2+n     …     provider-specific body

Providers:

- :class:`LocalFileKEK`: a 32-byte key in a file of mode 0600 (the development default;
  :meth:`LocalFileKEK.create_if_missing` creates it).
- :class:`EnvKEK`: a base64 key handed in from an environment variable (containers).
- :class:`MultiKEK`: the current KEK plus older ones, for online rotation.

**Plugging in a KMS or Vault transit.** Implement :class:`KEKProvider`: ``key_id`` is a stable
opaque id (e.g. ``kek_vault_eri-prod``); ``wrap`` sends the 32-byte data key with ``aad`` as
the encryption context (AWS KMS ``EncryptionContext``, GCP ``additionalAuthenticatedData``,
Vault transit ``context``/``associated_data``) and returns
``frame_wrapped(self.key_id, provider_ciphertext)``; ``unwrap`` checks the frame with
:func:`unframe_wrapped`, sends the body and the same ``aad`` back and returns the 32 bytes.
The methods are ``async`` precisely so such a provider can call the network; the keyring only
calls them on a cache miss, at key creation and during rotation. Vault's own key versions
stay inside its ciphertext; rotating to a *different* Vault key or KMS key is a KEK rotation
here (a new ``key_id`` in a :class:`MultiKEK`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from eri.crypto.aead import KEY_SIZE, NONCE_SIZE, TAG_SIZE, validate_key_id
from eri.crypto.errors import DecryptionError, KeyFileError, UnknownKeyError

WRAP_FORMAT: Final = 1
_WRAP_FORMAT_BYTE: Final = bytes([WRAP_FORMAT])


@runtime_checkable
class KEKProvider(Protocol):
    """What the keyring needs from a key-encryption key."""

    @property
    def key_id(self) -> str:
        """Opaque, stable id of the KEK that :meth:`wrap` uses (recorded with every data key)."""
        ...

    async def wrap(self, plaintext_dek: bytes, aad: bytes) -> bytes:
        """Wrap a data key, binding ``aad``; the result starts with :func:`frame_wrapped`'s
        frame naming :attr:`key_id`."""
        ...

    async def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        """Return the data key inside ``wrapped``; raise :class:`UnknownKeyError` if the frame
        names a KEK this provider does not hold, :class:`DecryptionError` if it fails."""
        ...


def frame_wrapped(kek_id: str, body: bytes) -> bytes:
    """Prefix a provider's ciphertext with the frame naming the KEK."""
    kid = validate_key_id(kek_id).encode("ascii")
    return _WRAP_FORMAT_BYTE + bytes([len(kid)]) + kid + body


def unframe_wrapped(wrapped: bytes) -> tuple[str, bytes, bytes]:
    """Split a wrapped blob into ``(kek_id, frame, body)``; raise DecryptionError if malformed."""
    if len(wrapped) < 3 or wrapped[0] != WRAP_FORMAT:
        raise DecryptionError("malformed wrapped key")
    n = wrapped[1]
    if n == 0 or len(wrapped) < 2 + n:
        raise DecryptionError("malformed wrapped key")
    try:
        kek_id = validate_key_id(wrapped[2 : 2 + n].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise DecryptionError("malformed wrapped key") from None
    return kek_id, wrapped[: 2 + n], wrapped[2 + n :]


def wrapped_kek_id(wrapped: bytes) -> str:
    """The id of the KEK that produced ``wrapped``."""
    return unframe_wrapped(wrapped)[0]


def fingerprint_key_id(key: bytes) -> str:
    """A stable opaque id for a local KEK: a keyed hash of a fixed label, never the key.

    It depends on the key bytes only, not on where they came from, so moving the same KEK from a
    file to ``ERI_KEK`` keeps every stored data key readable."""
    digest = hmac.new(key, b"eri/kek-id/v1", hashlib.sha256).hexdigest()[:16]
    return f"kek_{digest}"


class _AesGcmKEK:
    """AES-256-GCM key wrapping with a local 32-byte KEK. Body: nonce ‖ ciphertext ‖ tag."""

    __slots__ = ("_aes", "_key_id")

    def __init__(self, key: bytes, key_id: str) -> None:
        if len(key) != KEY_SIZE:
            raise KeyFileError("a key-encryption key is exactly 32 bytes")
        self._aes = AESGCM(key)
        self._key_id = validate_key_id(key_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_id={self._key_id!r})"

    @property
    def key_id(self) -> str:
        return self._key_id

    async def wrap(self, plaintext_dek: bytes, aad: bytes) -> bytes:
        frame = frame_wrapped(self._key_id, b"")
        nonce = os.urandom(NONCE_SIZE)
        return frame + nonce + self._aes.encrypt(nonce, plaintext_dek, frame + aad)

    async def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        kek_id, frame, body = unframe_wrapped(wrapped)
        if kek_id != self._key_id:
            raise UnknownKeyError(f"data key is wrapped by KEK {kek_id}, not {self._key_id}")
        if len(body) < NONCE_SIZE + TAG_SIZE:
            raise DecryptionError("malformed wrapped key")
        try:
            return self._aes.decrypt(body[:NONCE_SIZE], body[NONCE_SIZE:], frame + aad)
        except InvalidTag:
            raise DecryptionError(f"unwrapping failed under KEK {self._key_id}") from None


class LocalFileKEK(_AesGcmKEK):
    """A KEK read from a file holding exactly 32 raw bytes, mode 0600 (or stricter).

    Compatible with the development secret ``eri up`` creates (``Settings.dev_secret("kek")``).
    """

    __slots__ = ()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, key_id: str | None = None) -> LocalFileKEK:
        """Read the KEK; refuse a file that is not a regular file of the current user's, that is
        readable or writable by group or others, or that is not exactly 32 bytes."""
        p = Path(path)
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise KeyFileError(f"KEK file {p} does not exist") from None
        except OSError as exc:
            raise KeyFileError(f"KEK file {p} cannot be opened ({type(exc).__name__})") from None
        try:
            # fstat on the open descriptor: no window between the check and the read.
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise KeyFileError(f"KEK file {p} is not a regular file")
            mode = stat.S_IMODE(st.st_mode)
            if mode & 0o077:
                raise KeyFileError(
                    f"KEK file {p} has mode {mode:o}, open to group or others; chmod 600"
                )
            if st.st_uid != os.geteuid():
                raise KeyFileError(f"KEK file {p} is owned by another user")
            data = os.read(fd, KEY_SIZE + 1)
        finally:
            os.close(fd)
        if len(data) != KEY_SIZE:
            raise KeyFileError(f"KEK file {p} must hold exactly {KEY_SIZE} bytes")
        return cls(data, key_id or fingerprint_key_id(data))

    @classmethod
    def create_if_missing(
        cls, path: str | os.PathLike[str], *, key_id: str | None = None
    ) -> LocalFileKEK:
        """Create the KEK file (32 random bytes, mode 0600) unless it exists, then read it.

        Atomic: the key is written and fsynced to a 0600 temporary file in the same directory and
        hard-linked into place, so a concurrent creator or a crash never leaves a partial or
        second key; whoever loses the race reads the winner's key.
        """
        p = Path(path)
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".kek-", dir=p.parent)  # mode 0600
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, AESGCM.generate_key(bit_length=256))
                os.fsync(fd)
                os.close(fd)
                fd = -1
                try:
                    os.link(tmp, p)
                except FileExistsError:
                    pass
                else:
                    _fsync_dir(p.parent)
            finally:
                if fd >= 0:
                    os.close(fd)
                os.unlink(tmp)
        return cls.from_file(p, key_id=key_id)


def _fsync_dir(directory: Path) -> None:
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class EnvKEK(_AesGcmKEK):
    """A KEK given as base64 text (standard or URL-safe alphabet), e.g. the value of ``ERI_KEK``.

    The caller reads the environment (pydantic settings) and passes the value in; error
    messages name ``variable`` only, never the value.
    """

    __slots__ = ()

    def __init__(self, value: str, *, key_id: str | None = None, variable: str = "ERI_KEK") -> None:
        key = _decode_base64(value.strip())
        if len(key) != KEY_SIZE:
            raise KeyFileError(f"{variable} must be the base64 encoding of exactly 32 bytes")
        super().__init__(key, key_id or fingerprint_key_id(key))


def _decode_base64(text: str) -> bytes:
    """Strict base64 in either alphabet; ``b""`` if ``text`` is not base64."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        return b""
    try:
        return base64.b64decode(raw.translate(bytes.maketrans(b"-_", b"+/")), validate=True)
    except (ValueError, binascii.Error):
        return b""


class MultiKEK:
    """The current KEK plus older ones: wraps with the current, unwraps with whichever KEK the
    wrapped blob names. This is what makes KEK rotation online.

    Rotation, in order: (1) deploy every process with ``MultiKEK(old, new)`` (old still current,
    new readable); (2) switch to ``MultiKEK(new, old)``; (3) run ``Keyring.rotate()`` (``eri keys
    rotate``) until it reports nothing left under ``old``; (4) deploy with ``new`` alone.
    Step (1) matters when processes restart one by one: a key wrapped by the new KEK must be
    readable by a process that has not switched yet.
    """

    __slots__ = ("_by_id", "_current")

    def __init__(self, current: KEKProvider, *others: KEKProvider) -> None:
        self._current = current
        self._by_id: dict[str, KEKProvider] = {}
        for kek in (current, *others):
            if kek.key_id in self._by_id:
                raise ValueError(f"KEK id {kek.key_id} given twice")
            self._by_id[kek.key_id] = kek

    def __repr__(self) -> str:
        return f"MultiKEK(current={self.key_id!r}, known={sorted(self._by_id)!r})"

    @property
    def key_id(self) -> str:
        return self._current.key_id

    @property
    def current(self) -> KEKProvider:
        return self._current

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._by_id)

    def providers(self) -> Iterable[KEKProvider]:
        return tuple(self._by_id.values())

    async def wrap(self, plaintext_dek: bytes, aad: bytes) -> bytes:
        return await self._current.wrap(plaintext_dek, aad)

    async def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        kek_id = wrapped_kek_id(wrapped)
        kek = self._by_id.get(kek_id)
        if kek is None:
            raise UnknownKeyError(f"no key-encryption key {kek_id} is configured")
        return await kek.unwrap(wrapped, aad)
