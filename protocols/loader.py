"""Loading protocol definitions from ``protocols/definitions``."""

from __future__ import annotations

from pathlib import Path

from protocols.model import Protocol
from protocols.validator import ProtocolInvalid, validate_file

DEFINITIONS = Path(__file__).resolve().parent / "definitions"

_cache: dict[tuple[Path, int], Protocol] = {}


def definitions_dir() -> Path:
    return DEFINITIONS


def load_file(path: Path, *, check_lock: bool | None = None) -> Protocol:
    """Load and fully validate one definition; raises :class:`ProtocolInvalid`."""
    key = (path.resolve(), path.stat().st_mtime_ns)
    if check_lock is None and key in _cache:
        return _cache[key]
    protocol, problems = validate_file(path, check_lock=check_lock)
    if problems or protocol is None:
        raise ProtocolInvalid(problems)
    if check_lock is None:
        _cache[key] = protocol
    return protocol


def _version_key(protocol: Protocol) -> tuple[int, ...]:
    return tuple(int(part) for part in protocol.version.split("."))


def list_protocols(directory: Path | None = None) -> list[Protocol]:
    """Every protocol version in the definitions folder, by id then version."""
    folder = directory or DEFINITIONS
    protocols = [load_file(path) for path in sorted(folder.glob("*.yaml"))]
    return sorted(protocols, key=lambda p: (p.id, _version_key(p)))


def load_protocol(
    protocol_id: str, version: str | None = None, directory: Path | None = None
) -> Protocol:
    """A protocol by id; the newest version unless ``version`` is given. Raises LookupError."""
    matches = [p for p in list_protocols(directory) if p.id == protocol_id]
    if version is not None:
        matches = [p for p in matches if p.version == version]
    if not matches:
        wanted = f"{protocol_id}@{version}" if version else protocol_id
        known = ", ".join(sorted({p.key for p in list_protocols(directory)})) or "none"
        raise LookupError(f"no protocol {wanted}; known: {known}")
    return matches[-1]
