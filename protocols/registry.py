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
#: The hash of each protocol object registered so far, by identity (the object is kept, so its
#: id is not reused). Protocols are frozen, and the loader hands out the same object while the
#: file is unchanged, so a hash is computed once per version, not on every API request.
_HASH_OF: dict[int, tuple[Protocol, str]] = {}


def register(protocol: Protocol) -> str:
    known = _HASH_OF.get(id(protocol))
    if known is not None and known[0] is protocol:
        digest = known[1]
    else:
        digest = content_hash(protocol)
        _HASH_OF[id(protocol)] = (protocol, digest)
    _BY_HASH[digest] = protocol
    return digest


def load_definitions(directory: Path | None = None) -> list[str]:
    from protocols.loader import list_protocols

    return [register(p) for p in list_protocols(directory)]


def pinned(protocol_hash: str) -> Protocol:
    try:
        return _BY_HASH[protocol_hash]
    except KeyError:
        raise LookupError(f"no protocol with content hash {protocol_hash} is loaded") from None
