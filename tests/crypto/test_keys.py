"""The ring: per-case keys, the cache, KEK rotation (online) and crypto-shredding."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from eri.crypto.aead import make_aad
from eri.crypto.errors import (
    DecryptionError,
    InvalidKeyIdError,
    KeyScopeError,
    KeyShreddedError,
    UnknownKeyError,
)
from eri.crypto.kek import EnvKEK, MultiKEK, wrapped_kek_id
from eri.crypto.keys import (
    SYSTEM_KEY_ID,
    Keyring,
    case_id_of_key,
    case_key_id,
    is_case_id,
)
from eri.crypto.testing import MemoryDataKeyStore
from tests.crypto.conftest import FakeClock, random_env_kek

STATEMENT = "Me llevaron a la finca de Don Tomás en Escuintla".encode()


def vault_aad(case_id: str, field: str = "statement", version: int = 1) -> bytes:
    return make_aad("vault", case_id, field, version)


def test_key_ids_derive_from_opaque_case_ids() -> None:
    assert case_key_id("case_01JABC") == "dk_case_01JABC"
    assert case_id_of_key("dk_case_01JABC") == "case_01JABC"
    assert case_id_of_key(SYSTEM_KEY_ID) is None
    assert case_id_of_key("kek_env_x") is None
    for bad in ("01JABC", "case_", "case_María", "case_a b", "case_" + "x" * 57, "CASE_x"):
        assert not is_case_id(bad)
        with pytest.raises(InvalidKeyIdError):
            case_key_id(bad)
    assert len(case_key_id("case_" + "x" * 56)) == 64


async def test_case_key_is_created_wrapped_and_stored(
    ring: Keyring, store: MemoryDataKeyStore, kek: EnvKEK
) -> None:
    key = await ring.case_key("case_a")
    assert (key.key_id, key.key_version) == ("dk_case_a", 1)
    row = store.raw_rows()["dk_case_a"]
    assert row.kek_id == kek.key_id
    assert row.wrapped is not None
    assert wrapped_kek_id(row.wrapped) == kek.key_id
    assert (await ring.case_key("case_a")) is key  # cached
    other = await ring.case_key("case_b")
    env = key.seal(STATEMENT, b"")
    with pytest.raises(DecryptionError):
        other.open(env, b"")
    # a second process (fresh ring, same store and KEK) unwraps the same key
    second = Keyring(store, kek)
    assert (await second.get_key("dk_case_a")).open(env, b"") == STATEMENT


async def test_unknown_key_is_not_created_by_get(ring: Keyring, store: MemoryDataKeyStore) -> None:
    with pytest.raises(UnknownKeyError, match="dk_case_zz"):
        await ring.get_key("dk_case_zz")
    with pytest.raises(UnknownKeyError):
        await ring.case_key("case_zz", create=False)
    assert store.raw_rows() == {}
    system = await ring.system_key()
    assert system.key_id == SYSTEM_KEY_ID


async def test_concurrent_creators_share_one_key(store: MemoryDataKeyStore, kek: EnvKEK) -> None:
    slow = MemoryDataKeyStore(yield_every_call=True)
    rings = [Keyring(slow, kek) for _ in range(8)]
    keys = await asyncio.gather(*(r.case_key("case_race") for r in rings))
    env = keys[0].seal(b"x", b"")
    for key in keys:
        assert key.open(env, b"") == b"x"
    assert len(slow.raw_rows()) == 1


async def test_cache_ttl(store: MemoryDataKeyStore, kek: EnvKEK, clock: FakeClock) -> None:
    ring = Keyring(store, kek, cache_ttl=30.0, clock=clock)
    await Keyring(store, kek).case_key("case_a")
    store.get_calls = 0
    await ring.get_key("dk_case_a")
    await ring.get_key("dk_case_a")
    clock.advance(29.9)
    await ring.get_key("dk_case_a")
    assert store.get_calls == 1
    clock.advance(0.2)  # absolute TTL from load time, not sliding
    assert ring.cached("dk_case_a") is None
    await ring.get_key("dk_case_a")
    assert store.get_calls == 2
    no_cache = Keyring(store, kek, cache_ttl=0, clock=clock)
    await no_cache.get_key("dk_case_a")
    await no_cache.get_key("dk_case_a")
    assert store.get_calls == 4


async def test_cache_is_bounded_lru(store: MemoryDataKeyStore, kek: EnvKEK) -> None:
    ring = Keyring(store, kek, cache_size=3)
    for name in ("a", "b", "c"):
        await ring.case_key(f"case_{name}")
    await ring.get_key("dk_case_a")  # a is now most recent
    await ring.case_key("case_d")  # evicts b
    assert ring.cached("dk_case_b") is None
    assert all(ring.cached(f"dk_case_{n}") is not None for n in "acd")
    with pytest.raises(ValueError, match="cache_size"):
        Keyring(store, kek, cache_size=0)


async def test_vault_row_swapped_into_another_case_fails(ring: Keyring) -> None:
    """The cross-case row swap: a statement sealed for case A and copied into case B's row."""
    a = await ring.case_key("case_a")
    await ring.case_key("case_b")
    row_a = await ring.seal(a.key_id, STATEMENT, vault_aad("case_a"))
    assert await ring.open(row_a, vault_aad("case_a"), expected_key_id="dk_case_a") == STATEMENT
    # read back as case B's row: refused before decrypting (key scope) ...
    with pytest.raises(KeyScopeError):
        await ring.open(row_a, vault_aad("case_b"), expected_key_id="dk_case_b")
    # ... and even without the scope check the associated data does not match
    with pytest.raises(DecryptionError):
        await ring.open(row_a, vault_aad("case_b"))
    # a forged header naming B's key fails authentication under B's key
    forged = row_a.replace(b"dk_case_a", b"dk_case_b", 1)
    with pytest.raises(DecryptionError):
        await ring.open(forged, vault_aad("case_b"), expected_key_id="dk_case_b")
    # wrong field or record version
    with pytest.raises(DecryptionError):
        await ring.open(row_a, vault_aad("case_a", "identity"))
    with pytest.raises(DecryptionError):
        await ring.open(row_a, vault_aad("case_a", version=2))


async def test_wrapped_key_copied_to_another_id_does_not_unwrap(
    ring: Keyring, store: MemoryDataKeyStore, kek: EnvKEK
) -> None:
    await ring.case_key("case_a")
    row_a = store.raw_rows()["dk_case_a"]
    await store.put_wrapped(dataclasses.replace(row_a, key_id="dk_case_evil"))
    with pytest.raises(DecryptionError):
        await Keyring(store, kek).get_key("dk_case_evil")


async def test_other_key_version_in_header_is_refused(ring: Keyring) -> None:
    key = await ring.case_key("case_a")
    env = bytearray(key.seal(b"x", b""))
    env[2 + len(key.key_id) + 3] = 2  # version 1 -> 2 in the header
    with pytest.raises(DecryptionError):  # one version per key id: a different one is tampering
        await ring.open(bytes(env), b"")


async def test_rotation_rewraps_every_key(store: MemoryDataKeyStore, clock: FakeClock) -> None:
    old, new = random_env_kek(), random_env_kek()
    ring = Keyring(store, old, clock=clock)
    envelopes = {}
    for i in range(23):
        key = await ring.case_key(f"case_{i:03d}")
        envelopes[key.key_id] = key.seal(STATEMENT, vault_aad(f"case_{i:03d}"))
    await ring.system_key()
    await ring.shred_case("case_007")
    assert await ring.kek_usage() == {old.key_id: 23}

    # step 2 of the runbook: the new KEK is current, the old one still readable
    ring.use_kek(MultiKEK(new, old))
    ring.clear_cache()
    half = Keyring(store, MultiKEK(new, old))
    # during rotation, old-wrapped keys are readable by a process that already switched
    assert await half.open(envelopes["dk_case_000"], vault_aad("case_000")) == STATEMENT
    created_during = await half.case_key("case_new")
    assert wrapped_kek_id(store.raw_rows()["dk_case_new"].wrapped or b"") == new.key_id

    report = await ring.rotate(batch_size=5)
    assert report.kek_id == new.key_id
    assert (report.rewrapped, report.already_current, report.shredded, report.raced) == (
        23,
        1,
        1,
        0,
    )
    assert report.complete
    assert await ring.kek_usage() == {new.key_id: 24}
    for row in store.raw_rows().values():
        if row.wrapped is not None:
            assert row.kek_id == new.key_id
            assert wrapped_kek_id(row.wrapped) == new.key_id
    again = await ring.rotate()
    assert (again.rewrapped, again.already_current) == (0, 24)

    # after rotation the new KEK alone reads everything; the old one alone reads nothing
    only_new = Keyring(store, new)
    for key_id, env in envelopes.items():
        case_id = case_id_of_key(key_id)
        assert case_id is not None
        if case_id == "case_007":
            with pytest.raises(KeyShreddedError):
                await only_new.open(env, vault_aad(case_id))
        else:
            assert await only_new.open(env, vault_aad(case_id)) == STATEMENT
    assert (await only_new.get_key("dk_case_new")).open(created_during.seal(b"y", b""), b"") == b"y"
    with pytest.raises(UnknownKeyError, match="not"):
        await Keyring(store, old).get_key("dk_case_000")


async def test_rotation_online_under_concurrent_use_and_shredding() -> None:
    """Rotation interleaved (every store call yields) with readers, creators and a shred."""
    store = MemoryDataKeyStore(yield_every_call=True)
    old, new = random_env_kek(), random_env_kek()
    setup = Keyring(store, old)
    sealed = {}
    for i in range(40):
        cid = f"case_{i:03d}"
        sealed[cid] = await setup.seal(case_key_id(cid), STATEMENT, vault_aad(cid), create=True)

    rotator = Keyring(store, MultiKEK(new, old), cache_ttl=0)
    readers = [Keyring(store, MultiKEK(new, old), cache_ttl=0) for _ in range(3)]
    stop = asyncio.Event()
    reads = 0

    async def read_loop(ring: Keyring, offset: int) -> None:
        nonlocal reads
        i = offset
        while not stop.is_set():
            cid = f"case_{i % 40:03d}"
            try:
                assert await ring.open(sealed[cid], vault_aad(cid)) == STATEMENT
                reads += 1
            except KeyShreddedError:
                assert cid == "case_013"
            i += 7

    async def create_loop(ring: Keyring) -> None:
        for i in range(20):
            await ring.case_key(f"case_late_{i}")

    tasks = [asyncio.create_task(read_loop(r, n)) for n, r in enumerate(readers)]
    creator = asyncio.create_task(create_loop(readers[0]))
    shredder = asyncio.create_task(readers[1].shred_case("case_013"))
    report = await rotator.rotate(batch_size=8)
    await creator
    await shredder
    stop.set()
    await asyncio.gather(*tasks)
    assert reads > 0
    # the shred was never undone by the concurrent rotation
    row = store.raw_rows()["dk_case_013"]
    assert row.wrapped is None
    # a second pass leaves nothing under the old KEK
    final = await rotator.rotate()
    assert final.complete
    assert set(await rotator.kek_usage()) == {new.key_id}
    assert report.rewrapped + final.rewrapped >= 39


async def test_rotation_without_the_old_kek_fails_loudly(store: MemoryDataKeyStore) -> None:
    old, new = random_env_kek(), random_env_kek()
    await Keyring(store, old).case_key("case_a")
    with pytest.raises(UnknownKeyError, match=old.key_id):
        await Keyring(store, new).rotate()
    assert store.raw_rows()["dk_case_a"].kek_id == old.key_id  # untouched


async def test_shredding(store: MemoryDataKeyStore, kek: EnvKEK, clock: FakeClock) -> None:
    ring = Keyring(store, kek, cache_ttl=30.0, clock=clock)
    other_process = Keyring(store, kek, cache_ttl=30.0, clock=clock)
    a = await ring.case_key("case_a")
    b = await ring.case_key("case_b")
    env_a = a.seal(STATEMENT, vault_aad("case_a"))
    env_b = b.seal(STATEMENT, vault_aad("case_b"))
    assert await other_process.open(env_a, vault_aad("case_a")) == STATEMENT  # now cached there

    result = await ring.shred_case("case_a")
    assert result.destroyed
    assert result.key_id == "dk_case_a"
    row = store.raw_rows()["dk_case_a"]
    assert row.wrapped is None
    assert row.shredded_at == result.shredded_at

    with pytest.raises(KeyShreddedError, match="dk_case_a"):
        await ring.open(env_a, vault_aad("case_a"))
    with pytest.raises(KeyShreddedError):
        await ring.case_key("case_a")  # never re-created
    with pytest.raises(KeyShreddedError):
        await ring.seal("dk_case_a", b"new data", b"", create=True)
    # another process: refuses once its cached copy expires (bounded by cache_ttl)
    clock.advance(30.0)
    with pytest.raises(KeyShreddedError):
        await other_process.open(env_a, vault_aad("case_a"))
    fresh = Keyring(store, kek)
    with pytest.raises(KeyShreddedError):
        await fresh.get_key("dk_case_a")
    with pytest.raises(KeyShreddedError):
        await fresh.case_key("case_a")
    # other cases are untouched
    assert await fresh.open(env_b, vault_aad("case_b")) == STATEMENT
    # idempotent, and an id that never had a key is tombstoned
    assert not (await ring.shred_case("case_a")).destroyed
    assert not (await ring.shred_case("case_never")).destroyed
    with pytest.raises(KeyShreddedError):
        await fresh.case_key("case_never")
    with pytest.raises(InvalidKeyIdError):
        await ring.shred(SYSTEM_KEY_ID)


async def test_shred_during_unwrap_does_not_cache(kek: EnvKEK) -> None:
    store = MemoryDataKeyStore(yield_every_call=True)
    await Keyring(store, kek).case_key("case_a")
    ring = Keyring(store, kek)
    getter = asyncio.create_task(ring.get_key("dk_case_a"))
    await asyncio.sleep(0)  # the getter is inside the store call
    await ring.shred_case("case_a")
    with pytest.raises(KeyShreddedError):
        await getter
    assert ring.cached("dk_case_a") is None


def test_reprs_hold_no_secrets(ring: Keyring) -> None:
    assert repr(ring) == f"Keyring(kek={ring.kek.key_id!r}, cached=0)"
