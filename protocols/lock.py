"""Content hash and version pinning.

A protocol version is identified by ``id@version`` and the SHA-256 of its canonical form: the
parsed model dumped as JSON with sorted keys, no insignificant whitespace, UTF-8. Comments,
key order and YAML layout therefore do not change the hash; any change of content does.

``definitions/LOCK`` records the hash of every released version. Changing a file without
bumping its version is a validation error.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from protocols.model import Protocol

LOCK_NAME = "LOCK"
_HEADER = (
    "# Pinned protocol versions: id@version sha256-of-canonical-form.\n"
    "# Written by `eri protocols lock`. A changed definition needs a new version, not a new hash.\n"
)


def canonical_form(protocol: Protocol) -> dict[str, Any]:
    return protocol.model_dump(mode="json", exclude_none=True)


def canonical_json(protocol: Protocol) -> bytes:
    return json.dumps(
        canonical_form(protocol), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def content_hash(protocol: Protocol) -> str:
    """SHA-256 (hex) of the protocol's canonical JSON form."""
    return hashlib.sha256(canonical_json(protocol)).hexdigest()


def read_lock(path: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    if not path.exists():
        return entries
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, digest = line.partition(" ")
        entries[key] = digest.strip()
    return entries


def write_lock(path: Path, entries: dict[str, str]) -> None:
    body = "".join(f"{key} {entries[key]}\n" for key in sorted(entries))
    path.write_text(_HEADER + body, encoding="utf-8")
