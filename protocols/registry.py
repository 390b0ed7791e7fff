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


def register(protocol: Protocol) -> str:
    digest = content_hash(protocol)
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
