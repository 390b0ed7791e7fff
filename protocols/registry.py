"""Protocol versions by content hash, for the case engine.

A case pins its protocol by id, version and content hash. The worker loads every definition
file once (``load_definitions``) and the case workflow looks its protocol up by hash: the
content behind a hash can never change, so a running case keeps its version after the file
changes, and a replay finds the same protocol. A worker without that version fails the
workflow task (and retries) until a worker that has it is deployed.
"""

from __future__ import annotations

from pathlib import Path

from protocols.lock import content_hash
from protocols.model import Protocol

_BY_HASH: dict[str, Protocol] = {}
#: The digest of each protocol object already registered (the loader caches the objects, and
#: hashing the canonical JSON costs milliseconds: the API registers on every protocols() call).
_DIGESTS: dict[int, tuple[Protocol, str]] = {}


def register(protocol: Protocol) -> str:
    known = _DIGESTS.get(id(protocol))
    if known is not None and known[0] is protocol:
        return known[1]
    digest = content_hash(protocol)
    _BY_HASH[digest] = protocol
    _DIGESTS[id(protocol)] = (protocol, digest)
    return digest


def load_definitions(directory: Path | None = None) -> list[str]:
    from protocols.loader import list_protocols

    return [register(p) for p in list_protocols(directory)]


def pinned(protocol_hash: str) -> Protocol:
    try:
        return _BY_HASH[protocol_hash]
    except KeyError:
        raise LookupError(f"no protocol with content hash {protocol_hash} is loaded") from None
