"""The scanner itself: it must see every encoding it claims, and nothing else."""

from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path

import pytest
from sqlalchemy import text

from eri.canary import LeakScanner, encodings
from eri.db import create_engine

NAME = "Ximena Quetzal-Canarió"
PLANTED = {"name": NAME, "passport": "XQ7719034C"}


@pytest.mark.parametrize("shift", [0, 1, 2, 5])
def test_base64_is_found_at_every_alignment(shift: int) -> None:
    blob = base64.b64encode(b"x" * shift + NAME.encode() + b"tail")
    found = LeakScanner(PLANTED).scan_bytes(b"prefix " + blob, "blob")
    assert any(f.label == "name" and f.encoding.startswith("base64/") for f in found)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda v: v.encode("utf-16-le"),
        lambda v: v.encode("utf-16-be"),
        lambda v: json.dumps({"n": v}).encode(),
        lambda v: json.dumps({"n": v}, ensure_ascii=False).encode(),
        lambda v: urllib.parse.urlencode({"n": v}).encode(),
        lambda v: urllib.parse.quote(v).encode(),
        lambda v: base64.urlsafe_b64encode(b"??" + v.encode()),
    ],
)
def test_each_encoding_is_found(wrap: object) -> None:
    assert callable(wrap)
    data = b"\x00\x01header" + wrap(NAME) + b"\xfftrailer"
    assert {f.label for f in LeakScanner(PLANTED).scan_bytes(data, "x")} == {"name"}


def test_no_false_positive_on_other_data() -> None:
    data = json.dumps({"case": "case_1234abcd", "name": "Otra Persona"}).encode()
    assert LeakScanner(PLANTED).scan_bytes(data, "x") == []


def test_too_short_values_are_refused() -> None:
    with pytest.raises(ValueError, match="too short"):
        LeakScanner({"x": "Ana"})


def test_encodings_are_distinct() -> None:
    forms = encodings("XQ7719034C")
    assert len(set(forms.values())) == len(forms)


async def test_scan_database_and_sqlite_files(database_url: str, tmp_path: Path) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO data_keys (key_id, version, kek_id, wrapped, created_at) "
                    "VALUES ('case_x', 1, 'kek', :w, CURRENT_TIMESTAMP)"
                ),
                {"w": b"\x01" + "XQ7719034C".encode("utf-16-le")},
            )
    finally:
        await engine.dispose()
    scanner = LeakScanner(PLANTED)
    found = await scanner.scan_database(database_url)
    assert [(f.label, f.encoding, f.where) for f in found] == [
        ("passport", "utf-16-le", "data_keys.wrapped")
    ]
    if database_url.startswith("sqlite"):
        db_file = Path(database_url.split("///", 1)[1])
        assert any(f.label == "passport" for f in scanner.scan_sqlite_files(db_file))
