"""The Temporal payload codec: every payload encrypted under the key of the case it belongs to.

Temporal hands the codec a serialization context (``WithSerializationContext``) on every path a
case uses: ``WorkflowSerializationContext`` (client calls to a workflow, the workflow's own
payloads, child workflows with the *child's* id, external signals with the *target's* id) and
``ActivitySerializationContext`` (activity input/result, heartbeats, local activities; it carries
the id of the workflow that scheduled the activity). The workflow id of a case workflow is the
opaque case id (``case_…``), optionally followed by ``:suffix`` or ``/suffix`` for auxiliary
workflows of the same case. Such payloads are sealed under ``dk_<case id>``; everything else
(no context, non-case workflows, standalone activities, Nexus) uses the system key.

Encoded payload: metadata ``encoding: binary/encrypted``, ``eri-key-id``, ``eri-key-version``;
data is an :mod:`eri.crypto.aead` envelope of the whole original ``Payload`` message (its
metadata included). The key id travels in the metadata and the envelope header, so a decoder
without a workflow context (the Web UI's codec endpoint) can find the key.

Decoding uses the key the payload names, with a scope check: in a case's context only that
case's key and the system key are accepted (the system key covers context-free paths such as
asynchronous activity completion by task token), so a payload of case A copied into case B's
history is refused with :class:`KeyScopeError`, and a forged key id fails authentication.
Payloads that are not ``binary/encrypted`` pass through unchanged.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Self

from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

from eri.crypto.aead import AeadKey, make_aad, parse_header
from eri.crypto.errors import DecryptionError, InvalidKeyIdError, KeyScopeError
from eri.crypto.keys import (
    CASE_ID_PATTERN,
    SYSTEM_KEY_ID,
    WORKFLOW_ID_SEPARATORS,
    Keyring,
    case_key_id,
)

ENCODING: Final = b"binary/encrypted"
METADATA_ENCODING: Final = "encoding"
METADATA_KEY_ID: Final = "eri-key-id"
METADATA_KEY_VERSION: Final = "eri-key-version"
#: Associated data of every payload envelope: a domain label, so a payload envelope can never be
#: passed off as a vault row or a wrapped key (those bind other labels).
PAYLOAD_AAD: Final = make_aad("eri/temporal-payload/v1")


@dataclass(frozen=True, slots=True)
class CodecScope:
    """Which key a codec instance encrypts under and which keys it may decrypt with."""

    key_id: str
    case_id: str | None = None
    invalid: bool = False
    """The workflow id looks like a case id but is malformed: refuse to encode rather than
    fall back to the system key."""

    def allows(self, key_id: str) -> bool:
        if self.case_id is None:
            return True
        return key_id in (self.key_id, SYSTEM_KEY_ID)


SYSTEM_SCOPE: Final = CodecScope(SYSTEM_KEY_ID)


@functools.lru_cache(maxsize=4096)
def scope_for_workflow_id(workflow_id: str | None) -> CodecScope:
    """The codec scope of payloads belonging to workflow ``workflow_id``."""
    if not workflow_id or not workflow_id.startswith("case_"):
        return SYSTEM_SCOPE
    case_id = WORKFLOW_ID_SEPARATORS.split(workflow_id, maxsplit=1)[0]
    if CASE_ID_PATTERN.fullmatch(case_id) is None:
        return CodecScope(SYSTEM_KEY_ID, case_id=None, invalid=True)
    return CodecScope(case_key_id(case_id), case_id=case_id)


def scope_for_context(context: SerializationContext | None) -> CodecScope:
    """The codec scope for a Temporal serialization context (None: no context)."""
    if isinstance(context, WorkflowSerializationContext | ActivitySerializationContext):
        return scope_for_workflow_id(context.workflow_id)
    return SYSTEM_SCOPE


class CaseKeyCodec(PayloadCodec, WithSerializationContext):
    """AES-256-GCM payload codec with per-case keys chosen from the serialization context.

    Args:
        keyring: the data keys.
        allowed_key_ids: if given, decode refuses every other key with
            :class:`KeyScopeError` (the codec endpoint passes the keys of the cases the caller
            may see; see :func:`payload_key_ids`).
        create_keys: encode creates the case key if missing (a case's key is created when its
            workflow first sends a payload). A shredded case's key is never re-created.
    """

    def __init__(
        self,
        keyring: Keyring,
        *,
        allowed_key_ids: frozenset[str] | None = None,
        create_keys: bool = True,
    ) -> None:
        self._keyring = keyring
        self._allowed = allowed_key_ids
        self._create = create_keys
        self._scope = SYSTEM_SCOPE

    def __repr__(self) -> str:
        return f"CaseKeyCodec(scope={self._scope.key_id!r})"

    @property
    def scope(self) -> CodecScope:
        return self._scope

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    def with_context(self, context: SerializationContext) -> Self:
        """A copy bound to the key scope of ``context`` (called by the SDK per operation)."""
        scope = scope_for_context(context)
        if scope == self._scope:
            return self
        bound = copy.copy(self)
        bound._scope = scope
        return bound

    def restricted_to(self, key_ids: frozenset[str]) -> CaseKeyCodec:
        """A copy that decodes only payloads under ``key_ids`` (for the codec endpoint)."""
        bound = copy.copy(self)
        bound._allowed = frozenset(key_ids)
        return bound

    async def _encode_key(self) -> AeadKey:
        scope = self._scope
        if scope.invalid:
            raise InvalidKeyIdError("workflow id starts with 'case_' but is not a valid case id")
        key = self._keyring.cached(scope.key_id)
        if key is not None:
            return key
        if self._create:
            return await self._keyring.get_or_create_key(scope.key_id)
        return await self._keyring.get_key(scope.key_id)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if not payloads:
            return []
        key = await self._encode_key()
        metadata = {
            METADATA_ENCODING: ENCODING,
            METADATA_KEY_ID: key.key_id.encode("ascii"),
            METADATA_KEY_VERSION: str(key.key_version).encode("ascii"),
        }
        seal = key.seal
        return [
            Payload(metadata=metadata, data=seal(p.SerializeToString(), PAYLOAD_AAD))
            for p in payloads
        ]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out: list[Payload] = []
        for payload in payloads:
            if payload.metadata.get(METADATA_ENCODING) != ENCODING:
                out.append(payload)
                continue
            out.append(await self._decode_one(payload))
        return out

    async def _decode_one(self, payload: Payload) -> Payload:
        header = parse_header(payload.data)
        named = payload.metadata.get(METADATA_KEY_ID)
        if named is None or named != header.key_id.encode("ascii"):
            raise DecryptionError("payload metadata and envelope name different keys")
        key_id = header.key_id
        if self._scope.invalid:
            raise InvalidKeyIdError("workflow id starts with 'case_' but is not a valid case id")
        if not self._scope.allows(key_id):
            raise KeyScopeError(
                f"payload under key {key_id} in the context of key {self._scope.key_id}"
            )
        if self._allowed is not None and key_id not in self._allowed:
            raise KeyScopeError(f"payload under key {key_id} is outside the authorized keys")
        key = self._keyring.cached(key_id)
        if key is None:
            key = await self._keyring.get_key(key_id)
        # A header naming another version of the key fails inside open() (DecryptionError):
        # a key id has exactly one version, so a mismatch is tampering.
        inner = key.open(payload.data, PAYLOAD_AAD)
        try:
            return Payload.FromString(inner)
        except DecodeError:
            raise DecryptionError("decrypted payload is not a Payload message") from None


def payload_key_ids(payloads: Sequence[Payload]) -> frozenset[str]:
    """Key ids named by encrypted payloads, read without decrypting (for authorization in the
    codec endpoint: map them to cases with :func:`eri.crypto.keys.case_id_of_key`)."""
    ids: set[str] = set()
    for payload in payloads:
        if payload.metadata.get(METADATA_ENCODING) == ENCODING:
            ids.add(parse_header(payload.data).key_id)
    return frozenset(ids)


def data_converter(keyring: Keyring) -> DataConverter:
    """THE data converter of every client, worker, test and the codec endpoint: pydantic payload
    conversion (dataclasses and models with datetimes, enums, nested types),
    :class:`CaseKeyCodec`, and failures whose message and stack trace are moved into an encoded
    (so encrypted) attribute."""
    return DataConverter(
        payload_converter_class=PydanticPayloadConverter,
        payload_codec=CaseKeyCodec(keyring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
