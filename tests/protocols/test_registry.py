"""The protocol registry: a protocol version's content hash is computed once, not per request.

``api.casework.protocols()`` registers every loaded version on each call (the inbox calls it
twice per request); hashing a definition (canonical JSON + SHA-256) cost about 7 ms each, so
the inbox spent ~30 ms per request re-hashing unchanged files (bench/RESULTS.md, task API).
"""

from __future__ import annotations

import pytest

from api import casework
from protocols import lock, registry
from protocols.loader import list_protocols


def test_registering_an_unchanged_protocol_does_not_hash_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    casework.protocols()  # every version registered once
    hashed: list[str] = []

    def counting(protocol):  # type: ignore[no-untyped-def]
        hashed.append(protocol.key)
        return lock.content_hash(protocol)

    monkeypatch.setattr(registry, "content_hash", counting)
    found = casework.protocols()
    assert [registry.register(p) for p in found] == [lock.content_hash(p) for p in found]
    assert hashed == []


def test_the_hash_is_still_the_content_hash_and_pins_the_protocol() -> None:
    for protocol in list_protocols():
        digest = registry.register(protocol)
        assert digest == lock.content_hash(protocol)
        assert registry.pinned(digest) is protocol
