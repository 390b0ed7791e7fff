"""Exceptions of the crypto core.

Messages name at most opaque key ids (``dk_case_…``, ``kek_…``) and fixed reasons. They never
carry plaintext, ciphertext, key material or the underlying library's exception text, and they
are raised ``from None`` so no chained exception can bring such text along.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class of every error raised by :mod:`eri.crypto`."""


class DecryptionError(CryptoError):
    """A ciphertext could not be authenticated: wrong key, wrong associated data, tampering,
    truncation or a malformed envelope. Deliberately does not say which."""


class KeyScopeError(DecryptionError):
    """A ciphertext names a key that the current scope must not use (e.g. a payload sealed for
    one case appearing in another case's workflow)."""


class UnknownKeyError(CryptoError):
    """No data key or key-encryption key exists under the requested id."""


class KeyShreddedError(CryptoError):
    """The data key was destroyed (crypto-shredding); what it protected is gone for good."""


class KeyFileError(CryptoError):
    """A KEK file or KEK value is missing or malformed, or a KEK file is open to group/others."""


class InvalidKeyIdError(CryptoError, ValueError):
    """A key id or case id does not have the opaque-id shape ERI requires."""
