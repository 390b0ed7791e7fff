"""Per-case data keys: creation, wrapping, a short-lived cache, KEK rotation and shredding.

Every case has its own AES-256-GCM data key, id ``dk_<case id>`` (the case id is random and
opaque, e.g. ``case_01J…``; nothing about a person goes into either). Non-case data uses the
system key ``dk_system``. Data keys are stored only wrapped by the KEK (:mod:`eri.crypto.kek`)
in a :class:`DataKeyStore` (the SQL table ``data_keys``), and kept unwrapped in this process's
memory for at most ``cache_ttl`` seconds.

Shredding replaces the wrapped key by a tombstone. From then on every decrypt with that key,
in this process at once and in every other process once its cache entry expires (at most
``cache_ttl``), raises :class:`KeyShreddedError`, and no new key can be created under that id.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final, Protocol, runtime_checkable

from eri.crypto.aead import AeadKey, generate_key, make_aad, parse_header, validate_key_id
from eri.crypto.errors import (
    InvalidKeyIdError,
    KeyScopeError,
    KeyShreddedError,
    UnknownKeyError,
)
from eri.crypto.kek import KEKProvider, wrapped_kek_id

SYSTEM_KEY_ID: Final = "dk_system"
CASE_KEY_PREFIX: Final = "dk_"
#: ``case_`` plus up to 56 characters, so that ``dk_<case id>`` fits the 64-character key id.
CASE_ID_PATTERN: Final = re.compile(r"case_[A-Za-z0-9_-]{1,56}")
#: A workflow whose id is ``<case id>`` or ``<case id>:<suffix>`` / ``<case id>/<suffix>``
#: belongs to that case (e.g. a child workflow of the case).
WORKFLOW_ID_SEPARATORS: Final = re.compile(r"[:/]")
DEFAULT_KEY_VERSION: Final = 1


def is_case_id(value: str) -> bool:
    return CASE_ID_PATTERN.fullmatch(value) is not None


def case_key_id(case_id: str) -> str:
    """The data key id of a case: ``dk_`` + the opaque case id."""
    if not is_case_id(case_id):
        raise InvalidKeyIdError("case id must be 'case_' plus 1-56 characters of [A-Za-z0-9_-]")
    return CASE_KEY_PREFIX + case_id


def case_id_of_key(key_id: str) -> str | None:
    """The case id a data key belongs to, or None for the system key and other keys."""
    if key_id.startswith(CASE_KEY_PREFIX):
        candidate = key_id[len(CASE_KEY_PREFIX) :]
        if is_case_id(candidate):
            return candidate
    return None


def wrap_aad(key_id: str, version: int) -> bytes:
    """Associated data binding a wrapped data key to its id and version: a wrapped key copied
    to another row (another case) does not unwrap."""
    return make_aad("eri/dek/v1", key_id, version)


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """One row of the key store (mirrors the ``data_keys`` table)."""

    key_id: str
    version: int
    kek_id: str
    wrapped: bytes | None
    """The data key wrapped by KEK ``kek_id``; None once shredded (a tombstone)."""
    created_at: datetime
    rewrapped_at: datetime | None = None
    shredded_at: datetime | None = None

    @property
    def is_shredded(self) -> bool:
        return self.wrapped is None or self.shredded_at is not None

    def __repr__(self) -> str:  # the wrapped bytes are not secret, but they are noise
        state = "shredded" if self.is_shredded else "live"
        return f"WrappedKey({self.key_id!r}, v{self.version}, kek={self.kek_id!r}, {state})"


@runtime_checkable
class DataKeyStore(Protocol):
    """Where wrapped data keys live. The real one is SQL (``data_keys``); every method must be
    atomic on its own, because several processes share the store.

    ``tests/crypto/store_contract.py`` holds a contract test any implementation can run.
    """

    async def get_wrapped(self, key_id: str) -> WrappedKey | None:
        """The row for ``key_id`` (live or tombstone), or None if none exists."""
        ...

    async def put_wrapped(self, key: WrappedKey, *, replace_kek_id: str | None = None) -> bool:
        """Write a wrapped key; return whether the row was written.

        - ``replace_kek_id is None``: insert only if no row with ``key.key_id`` exists, live or
          tombstone (``INSERT … ON CONFLICT DO NOTHING``). Two processes creating the same case
          key at once: exactly one wins; the other reads the winner's row.
        - ``replace_kek_id`` given (rotation): update ``wrapped``, ``kek_id`` and
          ``rewrapped_at`` only where ``key_id`` matches, ``kek_id = replace_kek_id``,
          ``version`` matches and the key is not shredded (compare-and-set). A rotation
          racing with a shred therefore can never bring a shredded key back.
        """
        ...

    async def mark_shredded(self, key_id: str, at: datetime) -> bool:
        """Destroy the wrapped key: set ``wrapped = NULL`` and ``shredded_at = at`` (keeping
        an earlier ``shredded_at``). If no row exists, insert a tombstone (``version`` 0,
        ``kek_id`` ``"-"``) so the id can never get a key later. Return True if a live key
        was destroyed by this call."""
        ...

    async def list_wrapped(
        self, *, after: str | None = None, limit: int = 500
    ) -> Sequence[WrappedKey]:
        """Rows (tombstones included) with ``key_id > after``, ordered by ``key_id``, at most
        ``limit`` of them (keyset pagination)."""
        ...


@dataclass(frozen=True, slots=True)
class RotationReport:
    """What one :meth:`Keyring.rotate` pass did."""

    kek_id: str
    rewrapped: int
    already_current: int
    shredded: int
    raced: int
    """Rows changed by someone else between read and write (another rotation or a shred);
    a second pass settles them."""

    @property
    def complete(self) -> bool:
        return self.raced == 0


@dataclass(frozen=True, slots=True)
class ShredResult:
    key_id: str
    shredded_at: datetime
    destroyed: bool
    """False if the key was already shredded or never existed (a tombstone was written)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Keyring:
    """Data keys for cases and the system, over a :class:`DataKeyStore` and a KEK.

    Args:
        store: where wrapped keys live.
        kek: the KEK provider; a :class:`eri.crypto.kek.MultiKEK` during rotation.
        cache_ttl: seconds an unwrapped key stays in memory after it was loaded (absolute,
            not sliding, so a shred elsewhere takes effect here within this bound). 0 disables
            the cache.
        cache_size: most keys held at once (least recently used are dropped first).
        clock: monotonic seconds (tests inject a fake one).
        now: wall-clock UTC time for the store's timestamps.
    """

    def __init__(
        self,
        store: DataKeyStore,
        kek: KEKProvider,
        *,
        cache_ttl: float = 60.0,
        cache_size: int = 1024,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        if cache_ttl < 0 or cache_size < 1:
            raise ValueError("cache_ttl must be >= 0 and cache_size >= 1")
        self._store = store
        self._kek = kek
        self._ttl = float(cache_ttl)
        self._size = cache_size
        self._clock = clock
        self._now = now
        self._cache: OrderedDict[str, tuple[float, AeadKey]] = OrderedDict()
        # Shredding is final: remembered for the life of the process, checked before caching.
        self._shredded: set[str] = set()

    def __repr__(self) -> str:
        return f"Keyring(kek={self._kek.key_id!r}, cached={len(self._cache)})"

    @property
    def store(self) -> DataKeyStore:
        return self._store

    @property
    def kek(self) -> KEKProvider:
        return self._kek

    def use_kek(self, kek: KEKProvider) -> None:
        """Switch the KEK (e.g. to a :class:`MultiKEK` at the start of a rotation). Cached data
        keys stay valid: rotation changes their wrapping, never the keys."""
        self._kek = kek

    # --- cache -------------------------------------------------------------------------

    def cached(self, key_id: str) -> AeadKey | None:
        """The unwrapped key if it is in the cache and fresh; never touches the store."""
        entry = self._cache.get(key_id)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            self._cache.pop(key_id, None)
            return None
        self._cache.move_to_end(key_id)
        return entry[1]

    def _remember(self, key: AeadKey) -> None:
        if self._ttl <= 0 or key.key_id in self._shredded:
            return
        self._cache[key.key_id] = (self._clock() + self._ttl, key)
        self._cache.move_to_end(key.key_id)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)

    def evict(self, key_id: str) -> None:
        self._cache.pop(key_id, None)

    def clear_cache(self) -> None:
        self._cache.clear()

    # --- lookup and creation -----------------------------------------------------------

    async def get_key(self, key_id: str) -> AeadKey:
        """The data key ``key_id``, from the cache or unwrapped from the store.

        Raises :class:`UnknownKeyError` if no such key exists, :class:`KeyShreddedError` if it
        was shredded. Never creates a key.
        """
        hit = self.cached(key_id)
        if hit is not None:
            return hit
        if key_id in self._shredded:
            raise KeyShreddedError(f"data key {key_id} has been shredded")
        validate_key_id(key_id)
        row = await self._store.get_wrapped(key_id)
        return await self._load(key_id, row)

    async def _load(self, key_id: str, row: WrappedKey | None) -> AeadKey:
        if row is None:
            raise UnknownKeyError(f"no data key {key_id}")
        if row.is_shredded or row.wrapped is None:
            self._shredded.add(key_id)
            self.evict(key_id)
            raise KeyShreddedError(f"data key {key_id} has been shredded")
        secret = await self._kek.unwrap(row.wrapped, wrap_aad(key_id, row.version))
        key = AeadKey(secret, key_id, row.version)
        if key_id in self._shredded:  # shredded by this process while we were unwrapping
            raise KeyShreddedError(f"data key {key_id} has been shredded")
        self._remember(key)
        return key

    async def get_or_create_key(self, key_id: str) -> AeadKey:
        """The data key ``key_id``, created (random, wrapped by the current KEK) if missing.

        Safe against concurrent creators in other processes: the store inserts only if absent,
        and the loser uses the winner's key. Raises :class:`KeyShreddedError` for a shredded id.
        """
        hit = self.cached(key_id)
        if hit is not None:
            return hit
        if key_id in self._shredded:
            raise KeyShreddedError(f"data key {key_id} has been shredded")
        validate_key_id(key_id)
        row = await self._store.get_wrapped(key_id)
        if row is not None:
            return await self._load(key_id, row)
        version = DEFAULT_KEY_VERSION
        secret = generate_key()
        kek = self._kek
        wrapped = await kek.wrap(secret, wrap_aad(key_id, version))
        new_row = WrappedKey(key_id, version, wrapped_kek_id(wrapped), wrapped, self._now())
        if await self._store.put_wrapped(new_row):
            key = AeadKey(secret, key_id, version)
            self._remember(key)
            return key
        return await self._load(key_id, await self._store.get_wrapped(key_id))

    async def case_key(self, case_id: str, *, create: bool = True) -> AeadKey:
        """The data key of a case (created when the case opens, i.e. on first use)."""
        key_id = case_key_id(case_id)
        return await (self.get_or_create_key(key_id) if create else self.get_key(key_id))

    async def system_key(self) -> AeadKey:
        """The key for data that belongs to no case."""
        return await self.get_or_create_key(SYSTEM_KEY_ID)

    # --- sealing helpers for the vault -------------------------------------------------

    async def seal(
        self, key_id: str, plaintext: bytes, aad: bytes, *, create: bool = False
    ) -> bytes:
        """Seal under data key ``key_id``. ``aad`` must bind the context (for vault rows:
        ``make_aad("vault", case_id, field, record_version)``)."""
        key = await (self.get_or_create_key(key_id) if create else self.get_key(key_id))
        return key.seal(plaintext, aad)

    async def open(
        self, envelope: bytes, aad: bytes, *, expected_key_id: str | None = None
    ) -> bytes:
        """Open an envelope with the key it names. With ``expected_key_id`` (the key of the
        case the row belongs to), an envelope under any other key is refused before decrypting."""
        header = parse_header(envelope)
        if expected_key_id is not None and header.key_id != expected_key_id:
            raise KeyScopeError(
                f"envelope under key {header.key_id} where key {expected_key_id} was expected"
            )
        key = await self.get_key(header.key_id)
        return key.open(envelope, aad)  # another key version in the header: DecryptionError

    # --- rotation and shredding --------------------------------------------------------

    async def rotate(self, *, batch_size: int = 500) -> RotationReport:
        """Re-wrap every live data key under the current KEK, online.

        Needs a KEK that can still unwrap the old keys (a :class:`MultiKEK` of new and old).
        Keys in use stay usable throughout: the data keys themselves do not change, only their
        wrapping, and every write is a compare-and-set against the wrapping that was read.
        Idempotent and resumable; run again until ``report.complete``.
        """
        target = self._kek.key_id
        rewrapped = current = shredded = raced = 0
        after: str | None = None
        while True:
            rows = await self._store.list_wrapped(after=after, limit=batch_size)
            for row in rows:
                after = row.key_id
                if row.is_shredded or row.wrapped is None:
                    shredded += 1
                    continue
                if row.kek_id == target and wrapped_kek_id(row.wrapped) == target:
                    current += 1
                    continue
                aad = wrap_aad(row.key_id, row.version)
                secret = await self._kek.unwrap(row.wrapped, aad)
                wrapped = await self._kek.wrap(secret, aad)
                new_row = replace(
                    row, kek_id=wrapped_kek_id(wrapped), wrapped=wrapped, rewrapped_at=self._now()
                )
                if await self._store.put_wrapped(new_row, replace_kek_id=row.kek_id):
                    rewrapped += 1
                else:
                    raced += 1
            if len(rows) < batch_size:
                break
        return RotationReport(target, rewrapped, current, shredded, raced)

    async def kek_usage(self) -> dict[str, int]:
        """Live data keys per KEK id (``eri keys status``; a rotation is done when only the new
        KEK id is left)."""
        usage: dict[str, int] = {}
        after: str | None = None
        while True:
            rows = await self._store.list_wrapped(after=after, limit=500)
            for row in rows:
                after = row.key_id
                if not row.is_shredded:
                    usage[row.kek_id] = usage.get(row.kek_id, 0) + 1
            if len(rows) < 500:
                return usage

    async def shred(self, key_id: str, *, allow_system: bool = False) -> ShredResult:
        """Destroy data key ``key_id`` for good (crypto-shredding).

        This process refuses the key at once; other processes within ``cache_ttl``. The caller
        records the shred receipt (case pseudonym, key id, time, who authorized it).
        """
        validate_key_id(key_id)
        if key_id == SYSTEM_KEY_ID and not allow_system:
            raise InvalidKeyIdError("refusing to shred the system key without allow_system=True")
        self._shredded.add(key_id)
        self.evict(key_id)
        at = self._now()
        destroyed = await self._store.mark_shredded(key_id, at)
        return ShredResult(key_id, at, destroyed)

    async def shred_case(self, case_id: str) -> ShredResult:
        return await self.shred(case_key_id(case_id))
