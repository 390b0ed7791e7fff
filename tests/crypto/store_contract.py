"""The DataKeyStore contract, as one reusable check.

The SQL store runs it too, e.g.::

    from tests.crypto.store_contract import check_store_contract

    async def test_sql_key_store(database_url):
        await check_store_contract(lambda: SqlDataKeyStore(make_engine(database_url)))

``make_store`` must return an empty store on each call.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from eri.crypto.keys import DataKeyStore, WrappedKey

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _row(key_id: str, kek_id: str = "kek_a", wrapped: bytes = b"w1") -> WrappedKey:
    return WrappedKey(key_id, 1, kek_id, wrapped, T0)


async def check_store_contract(make_store: Callable[[], DataKeyStore]) -> None:
    store = make_store()
    assert await store.get_wrapped("dk_case_a") is None

    # insert only if absent
    assert await store.put_wrapped(_row("dk_case_a"))
    assert not await store.put_wrapped(_row("dk_case_a", wrapped=b"other"))
    got = await store.get_wrapped("dk_case_a")
    assert got is not None
    assert (got.key_id, got.version, got.kek_id, got.wrapped) == ("dk_case_a", 1, "kek_a", b"w1")
    assert got.created_at == T0
    assert got.shredded_at is None

    # compare-and-set re-wrap
    t1 = T0 + timedelta(minutes=1)
    rewrapped = WrappedKey("dk_case_a", 1, "kek_b", b"w2", T0, rewrapped_at=t1)
    assert not await store.put_wrapped(rewrapped, replace_kek_id="kek_zzz")
    assert await store.put_wrapped(rewrapped, replace_kek_id="kek_a")
    got = await store.get_wrapped("dk_case_a")
    assert got is not None
    assert (got.kek_id, got.wrapped, got.rewrapped_at, got.created_at) == ("kek_b", b"w2", t1, T0)
    assert not await store.put_wrapped(rewrapped, replace_kek_id="kek_a")  # stale read loses
    assert not await store.put_wrapped(_row("dk_case_nope"), replace_kek_id="kek_a")
    assert await store.get_wrapped("dk_case_nope") is None

    # shredding destroys the wrapped key, is final and idempotent
    t2 = T0 + timedelta(minutes=2)
    assert await store.mark_shredded("dk_case_a", t2)
    got = await store.get_wrapped("dk_case_a")
    assert got is not None
    assert got.wrapped is None
    assert got.shredded_at == t2
    assert got.is_shredded
    assert not await store.mark_shredded("dk_case_a", t2 + timedelta(minutes=1))
    got = await store.get_wrapped("dk_case_a")
    assert got is not None
    assert got.shredded_at == t2
    # neither a re-wrap nor a fresh insert can resurrect it
    assert not await store.put_wrapped(
        WrappedKey("dk_case_a", 1, "kek_c", b"w3", T0), replace_kek_id="kek_b"
    )
    assert not await store.put_wrapped(_row("dk_case_a", wrapped=b"w4"))
    got = await store.get_wrapped("dk_case_a")
    assert got is not None
    assert got.wrapped is None

    # shredding an id that never had a key leaves a tombstone
    assert not await store.mark_shredded("dk_case_never", t2)
    got = await store.get_wrapped("dk_case_never")
    assert got is not None
    assert got.is_shredded
    assert not await store.put_wrapped(_row("dk_case_never"))

    # keyset pagination in key id order, tombstones included
    for name in ("dk_case_c", "dk_case_b", "dk_system"):
        assert await store.put_wrapped(_row(name))
    page1 = await store.list_wrapped(limit=2)
    assert [r.key_id for r in page1] == ["dk_case_a", "dk_case_b"]
    page2 = await store.list_wrapped(after=page1[-1].key_id, limit=2)
    assert [r.key_id for r in page2] == ["dk_case_c", "dk_case_never"]
    page3 = await store.list_wrapped(after=page2[-1].key_id, limit=2)
    assert [r.key_id for r in page3] == ["dk_system"]
    assert list(await store.list_wrapped(after="dk_system")) == []
