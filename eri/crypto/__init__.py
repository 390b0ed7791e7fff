"""ERI's crypto core: KEKs, AES-256-GCM envelopes, per-case data keys and the Temporal codec.

Database-independent. The SQL key store (``data_keys``) implements
:class:`eri.crypto.keys.DataKeyStore`; everything else is here:

- :mod:`eri.crypto.kek`: key-encryption key providers (file, environment, rotation set).
- :mod:`eri.crypto.aead`: the versioned AES-256-GCM envelope format.
- :mod:`eri.crypto.keys`: the :class:`Keyring` (per-case keys, cache, rotation, shredding).
- :mod:`eri.crypto.codec`: the Temporal payload codec and :func:`data_converter`.
"""

from eri.crypto.aead import AeadKey, make_aad, open_, parse_header, seal
from eri.crypto.codec import CaseKeyCodec, data_converter, payload_key_ids
from eri.crypto.errors import (
    CryptoError,
    DecryptionError,
    InvalidKeyIdError,
    KeyFileError,
    KeyScopeError,
    KeyShreddedError,
    UnknownKeyError,
)
from eri.crypto.kek import EnvKEK, KEKProvider, LocalFileKEK, MultiKEK
from eri.crypto.keys import (
    SYSTEM_KEY_ID,
    DataKeyStore,
    Keyring,
    RotationReport,
    ShredResult,
    WrappedKey,
    case_id_of_key,
    case_key_id,
)

__all__ = [
    "SYSTEM_KEY_ID",
    "AeadKey",
    "CaseKeyCodec",
    "CryptoError",
    "DataKeyStore",
    "DecryptionError",
    "EnvKEK",
    "InvalidKeyIdError",
    "KEKProvider",
    "KeyFileError",
    "KeyScopeError",
    "KeyShreddedError",
    "Keyring",
    "LocalFileKEK",
    "MultiKEK",
    "RotationReport",
    "ShredResult",
    "UnknownKeyError",
    "WrappedKey",
    "case_id_of_key",
    "case_key_id",
    "data_converter",
    "make_aad",
    "open_",
    "parse_header",
    "payload_key_ids",
    "seal",
]
