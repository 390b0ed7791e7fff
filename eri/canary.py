"""The leak canary's scanner: finds planted identifiers wherever they might have leaked.

Plant unique synthetic values (a name, a passport number, a phone number, a birth date, a
sentence of statement text), run the system, then scan every place victim data must never
reach in plaintext: the Temporal SQLite file and its WAL/journal, ERI's database (every column
of every table), captured log lines, API bodies, workflow ids and search attributes. Each value
is looked for as bytes in the encodings a leak would take: UTF-8, UTF-16 (LE/BE), base64 and
base64url at all three byte alignments, JSON-escaped (ASCII and not) and URL-encoded.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import MetaData, select

from eri.db.engine import create_engine

MIN_NEEDLE = 6  # shorter encoded fragments would match by chance


@dataclass(frozen=True)
class Finding:
    label: str  # which planted value
    encoding: str
    where: str
    offset: int


def _base64_needles(data: bytes) -> dict[str, bytes]:
    """Fragments of the base64 of ``data`` that appear whatever bytes surround it."""
    needles: dict[str, bytes] = {}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data)
        start = 4 if shift else 0
        end = ((shift + len(data)) // 3) * 4
        fragment = encoded[start:end]
        if len(fragment) >= MIN_NEEDLE:
            needles[f"base64/{shift}"] = fragment
            needles[f"base64url/{shift}"] = fragment.replace(b"+", b"-").replace(b"/", b"_")
    return needles


def encodings(value: str) -> dict[str, bytes]:
    """Every byte form of ``value`` the scanner looks for."""
    raw = value.encode()
    forms: dict[str, bytes] = {
        "utf-8": raw,
        "utf-16-le": value.encode("utf-16-le"),
        "utf-16-be": value.encode("utf-16-be"),
        "json-ascii": json.dumps(value)[1:-1].encode(),
        "json": json.dumps(value, ensure_ascii=False)[1:-1].encode(),
        "url": urllib.parse.quote(value).encode(),
        "url-plus": urllib.parse.quote_plus(value).encode(),
        **_base64_needles(raw),
    }
    unique: dict[str, bytes] = {}
    for name, form in forms.items():
        if form not in unique.values():
            unique[name] = form
    return unique


class LeakScanner:
    def __init__(self, planted: Mapping[str, str]) -> None:
        for label, value in planted.items():
            if len(value.encode()) < 8:
                raise ValueError(f"planted value {label!r} is too short to be unique")
        self.planted = dict(planted)
        self._needles = [
            (label, enc, needle)
            for label, value in planted.items()
            for enc, needle in encodings(value).items()
        ]

    def scan_bytes(self, data: bytes, where: str) -> list[Finding]:
        found: list[Finding] = []
        for label, enc, needle in self._needles:
            offset = data.find(needle)
            if offset >= 0:
                found.append(Finding(label, enc, where, offset))
        return found

    def scan_text(self, text: str, where: str) -> list[Finding]:
        return self.scan_bytes(text.encode("utf-8", "surrogatepass"), where)

    def scan_texts(self, texts: Iterable[str], where: str) -> list[Finding]:
        return [f for i, t in enumerate(texts) for f in self.scan_text(t, f"{where}[{i}]")]

    def scan_file(self, path: Path) -> list[Finding]:
        return self.scan_bytes(path.read_bytes(), str(path)) if path.is_file() else []

    def scan_sqlite_files(self, database: Path) -> list[Finding]:
        """The database file and its companions (-wal, -shm, -journal)."""
        found: list[Finding] = []
        for suffix in ("", "-wal", "-shm", "-journal"):
            found += self.scan_file(database.with_name(database.name + suffix))
        return found

    async def scan_database(self, url: str) -> list[Finding]:
        """Every column of every row of every table, as the database returns it."""
        engine = create_engine(url)
        found: list[Finding] = []
        try:
            async with engine.connect() as conn:
                meta = MetaData()
                await conn.run_sync(meta.reflect)
                for table in meta.sorted_tables:
                    for row in (await conn.execute(select(table))).all():
                        for column, value in zip(table.columns, row, strict=True):
                            if value is None:
                                continue
                            data = value if isinstance(value, bytes) else str(value).encode()
                            found += self.scan_bytes(data, f"{table.name}.{column.name}")
        finally:
            await engine.dispose()
        return found
