"""The payload codec with per-case keys, through the real DataConverter (no server)."""

from __future__ import annotations

import dataclasses
import traceback

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    NexusSerializationContext,
    WorkflowSerializationContext,
)
from temporalio.exceptions import ApplicationError

from eri.crypto.codec import (
    ENCODING,
    METADATA_KEY_ID,
    METADATA_KEY_VERSION,
    CaseKeyCodec,
    data_converter,
    payload_key_ids,
    scope_for_context,
    scope_for_workflow_id,
)
from eri.crypto.errors import (
    DecryptionError,
    InvalidKeyIdError,
    KeyScopeError,
    KeyShreddedError,
    UnknownKeyError,
)
from eri.crypto.keys import SYSTEM_KEY_ID, Keyring

NAME = "Ana Lucía Xiloj Tzoc"
PASSPORT = "G48213377"


def wf(workflow_id: str) -> WorkflowSerializationContext:
    return WorkflowSerializationContext(namespace="eri", workflow_id=workflow_id)


def act(workflow_id: str | None, *, local: bool = False) -> ActivitySerializationContext:
    return ActivitySerializationContext(
        namespace="eri",
        activity_id="1",
        activity_type="record_statement",
        activity_task_queue="eri",
        workflow_id=workflow_id,
        workflow_type="CaseWorkflow" if workflow_id else None,
        is_local=local,
    )


def raw(payloads: list[Payload]) -> bytes:
    return b"".join(p.SerializeToString() for p in payloads)


def test_scopes() -> None:
    assert scope_for_workflow_id("case_01JABC").key_id == "dk_case_01JABC"
    assert scope_for_workflow_id("case_01JABC:purge-check").key_id == "dk_case_01JABC"
    assert scope_for_workflow_id("case_01JABC/child-2").case_id == "case_01JABC"
    assert scope_for_workflow_id("retention-sweep").key_id == SYSTEM_KEY_ID
    assert scope_for_workflow_id("purge_case_01JABC").key_id == SYSTEM_KEY_ID
    assert scope_for_workflow_id(None).key_id == SYSTEM_KEY_ID
    assert scope_for_workflow_id("case_bad id").invalid
    assert scope_for_context(act("case_x")).key_id == "dk_case_x"
    assert scope_for_context(act(None)).key_id == SYSTEM_KEY_ID
    nexus = NexusSerializationContext(endpoint="e", service="s", operation="o")
    assert scope_for_context(nexus).key_id == SYSTEM_KEY_ID


async def test_round_trip_per_case(ring: Keyring) -> None:
    dc = data_converter(ring)
    assert dc.failure_converter_class is DefaultFailureConverterWithEncodedAttributes
    a, b = dc.with_context(wf("case_a")), dc.with_context(wf("case_b"))
    value = {"name": NAME, "passport": PASSPORT, "n": 3}
    pa = await a.encode([value, "second"])
    pb = await b.encode([value])
    assert pa[0].metadata["encoding"] == ENCODING
    assert pa[0].metadata[METADATA_KEY_ID] == b"dk_case_a"
    assert pb[0].metadata[METADATA_KEY_ID] == b"dk_case_b"
    assert pa[0].metadata[METADATA_KEY_VERSION] == b"1"
    assert set(pa[0].metadata) == {"encoding", METADATA_KEY_ID, METADATA_KEY_VERSION}
    for blob in (raw(pa), raw(pb)):
        assert NAME.encode() not in blob
        assert PASSPORT.encode() not in blob
        assert b"json/plain" not in blob  # the inner payload's metadata is hidden too
    assert await a.decode(pa) == [value, "second"]
    assert await b.decode(pb) == [value]
    # the activity context of the same case and a context-free decoder (codec endpoint)
    assert await dc.with_context(act("case_a")).decode(pa) == [value, "second"]
    assert await dc.decode(pa) == [value, "second"]
    assert payload_key_ids(pa + pb) == {"dk_case_a", "dk_case_b"}


async def test_non_case_payloads_use_the_system_key(ring: Keyring) -> None:
    dc = data_converter(ring)
    for conv in (dc, dc.with_context(wf("retention-sweep")), dc.with_context(act(None))):
        [p] = await conv.encode(["x"])
        assert p.metadata[METADATA_KEY_ID] == SYSTEM_KEY_ID.encode()
    # a system-key payload is accepted in a case's context (async activity completion by
    # task token encodes without context)
    [p] = await dc.encode(["from a context-free path"])
    assert await dc.with_context(wf("case_a")).decode([p]) == ["from a context-free path"]


async def test_with_context_binds_copies(ring: Keyring) -> None:
    codec = CaseKeyCodec(ring)
    bound = codec.with_context(wf("case_a"))
    assert bound is not codec
    assert codec.scope.key_id == SYSTEM_KEY_ID
    assert bound.scope.key_id == "dk_case_a"
    assert bound.with_context(act("case_a")) is bound
    assert isinstance(bound, CaseKeyCodec)


async def test_payload_of_case_a_is_refused_in_case_b(ring: Keyring) -> None:
    dc = data_converter(ring)
    a, b = dc.with_context(wf("case_a")), dc.with_context(wf("case_b"))
    await b.encode(["make b's key"])
    [pa] = await a.encode([NAME])

    # copied as-is into case B's history: scope check
    with pytest.raises(KeyScopeError) as info:
        await b.decode([pa])
    assert NAME not in str(info.value)

    # metadata forged to name B's key: metadata and envelope disagree
    forged_meta = Payload()
    forged_meta.CopyFrom(pa)
    forged_meta.metadata[METADATA_KEY_ID] = b"dk_case_b"
    with pytest.raises(DecryptionError):
        await b.decode([forged_meta])

    # both metadata and envelope header forged to B's key: authentication fails under B's key
    forged = Payload()
    forged.CopyFrom(pa)
    forged.metadata[METADATA_KEY_ID] = b"dk_case_b"
    forged.data = pa.data.replace(b"dk_case_a", b"dk_case_b", 1)
    with pytest.raises(DecryptionError) as info2:
        await b.decode([forged])
    assert NAME not in str(info2.value)
    with pytest.raises(DecryptionError):
        await dc.decode([forged])  # also without any context


async def test_tampered_payload_fails(ring: Keyring) -> None:
    a = data_converter(ring).with_context(wf("case_a"))
    [p] = await a.encode([NAME])
    for i in range(len(p.data)):
        tampered = Payload()
        tampered.CopyFrom(p)
        data = bytearray(p.data)
        data[i] ^= 0x20
        tampered.data = bytes(data)
        with pytest.raises(DecryptionError):
            await a.decode([tampered])


async def test_restricted_codec_for_the_endpoint(ring: Keyring) -> None:
    codec = CaseKeyCodec(ring)
    a = codec.with_context(wf("case_a"))
    b = codec.with_context(wf("case_b"))
    plain = await DataConverter.default.encode(["visible"])
    pa = await a.encode(plain)
    pb = await b.encode(plain)
    only_a = codec.restricted_to(frozenset({"dk_case_a"}))
    assert await only_a.decode(pa) == plain
    with pytest.raises(KeyScopeError):
        await only_a.decode(pb)


async def test_plain_payloads_pass_through(ring: Keyring) -> None:
    plain = await DataConverter.default.encode(["not encrypted"])
    codec = CaseKeyCodec(ring).with_context(wf("case_a"))
    assert await codec.decode(plain) == plain
    assert await codec.encode([]) == []


async def test_invalid_case_workflow_id_refuses_rather_than_system_key(ring: Keyring) -> None:
    conv = data_converter(ring).with_context(wf("case_not valid"))
    with pytest.raises(InvalidKeyIdError):
        await conv.encode([NAME])


async def test_failures_are_encoded(ring: Keyring) -> None:
    dc = data_converter(ring)
    a = dc.with_context(wf("case_a"))
    try:
        raise ApplicationError(f"no match for passport {PASSPORT}", {"name": NAME}, type="NoMatch")
    except ApplicationError as err:
        error = err
    failure = Failure()
    await a.encode_failure(error, failure)
    blob = failure.SerializeToString()
    assert PASSPORT.encode() not in blob
    assert NAME.encode() not in blob
    assert failure.message == "Encoded failure"
    assert failure.stack_trace == ""
    assert failure.encoded_attributes.metadata[METADATA_KEY_ID] == b"dk_case_a"
    details = failure.application_failure_info.details.payloads[0]
    assert details.metadata[METADATA_KEY_ID] == b"dk_case_a"

    copy = Failure()
    copy.CopyFrom(failure)
    decoded = await a.decode_failure(copy)
    assert isinstance(decoded, ApplicationError)
    assert decoded.message == f"no match for passport {PASSPORT}"
    assert decoded.details == ({"name": NAME},)
    assert decoded.type == "NoMatch"
    # the failure cannot be decoded in another case's context
    other = Failure()
    other.CopyFrom(failure)
    with pytest.raises(KeyScopeError):
        await dc.with_context(wf("case_b")).decode_failure(other)
    assert traceback.format_exception(error)  # the original is untouched


async def test_shredded_case_is_undecodable_and_takes_no_new_data(ring: Keyring) -> None:
    dc = data_converter(ring)
    a = dc.with_context(wf("case_a"))
    b = dc.with_context(wf("case_b"))
    pa = await a.encode([NAME])
    pb = await b.encode([NAME])
    await ring.shred_case("case_a")
    with pytest.raises(KeyShreddedError):
        await a.decode(pa)
    with pytest.raises(KeyShreddedError):
        await dc.decode(pa)
    with pytest.raises(KeyShreddedError):
        await a.encode(["new data for a shredded case"])
    assert await b.decode(pb) == [NAME]


async def test_decode_only_codec_does_not_create_keys(ring: Keyring) -> None:
    codec = CaseKeyCodec(ring, create_keys=False).with_context(wf("case_new"))
    with pytest.raises(UnknownKeyError):
        await codec.encode(await DataConverter.default.encode(["x"]))


def test_data_converter_is_a_plain_dataclass(ring: Keyring) -> None:
    dc = data_converter(ring)
    assert isinstance(dc.payload_codec, CaseKeyCodec)
    assert dataclasses.replace(dc).payload_codec is dc.payload_codec
