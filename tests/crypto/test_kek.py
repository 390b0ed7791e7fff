"""Key-encryption keys: the key file (mode 0600, atomic creation), the environment key, and
the rotation set."""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path

import pytest

from eri.crypto.aead import make_aad
from eri.crypto.errors import DecryptionError, KeyFileError, UnknownKeyError
from eri.crypto.kek import (
    EnvKEK,
    KEKProvider,
    LocalFileKEK,
    MultiKEK,
    frame_wrapped,
    unframe_wrapped,
    wrapped_kek_id,
)

DEK = os.urandom(32)
AAD = make_aad("eri/dek/v1", "dk_case_a", 1)


def test_create_if_missing_writes_0600_and_reuses(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "kek"
    kek = LocalFileKEK.create_if_missing(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size == 32
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = LocalFileKEK.create_if_missing(path)
    assert again.key_id == kek.key_id
    assert kek.key_id.startswith("kek_")
    # the id depends on the key only: the same key given through ERI_KEK has the same id
    assert EnvKEK(base64.b64encode(path.read_bytes()).decode()).key_id == kek.key_id
    assert [p.name for p in path.parent.iterdir()] == ["kek"]  # no temporary files left


async def test_file_kek_round_trip(tmp_path: Path) -> None:
    kek = LocalFileKEK.create_if_missing(tmp_path / "kek")
    assert isinstance(kek, KEKProvider)
    wrapped = await kek.wrap(DEK, AAD)
    assert wrapped_kek_id(wrapped) == kek.key_id
    assert DEK not in wrapped
    reread = LocalFileKEK.from_file(tmp_path / "kek")
    assert await reread.unwrap(wrapped, AAD) == DEK
    with pytest.raises(DecryptionError):
        await reread.unwrap(wrapped, make_aad("eri/dek/v1", "dk_case_b", 1))


def test_concurrent_creators_agree(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    ids: list[str] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            ids.append(LocalFileKEK.create_if_missing(path).key_id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(ids)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["kek"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o602])
def test_refuses_group_or_other_permissions(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "kek"
    LocalFileKEK.create_if_missing(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="chmod 600") as info:
        LocalFileKEK.from_file(path)
    assert path.read_bytes().hex() not in str(info.value)


def test_accepts_0400(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    kek = LocalFileKEK.create_if_missing(path)
    path.chmod(0o400)
    assert LocalFileKEK.from_file(path).key_id == kek.key_id


def test_refuses_symlink_wrong_size_and_missing(tmp_path: Path) -> None:
    real = tmp_path / "real"
    LocalFileKEK.create_if_missing(real)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(KeyFileError):
        LocalFileKEK.from_file(link)
    short = tmp_path / "short"
    fd = os.open(short, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"\x00" * 31)
    os.close(fd)
    with pytest.raises(KeyFileError, match="exactly 32"):
        LocalFileKEK.from_file(short)
    with pytest.raises(KeyFileError, match="does not exist"):
        LocalFileKEK.from_file(tmp_path / "absent")
    with pytest.raises(KeyFileError):
        LocalFileKEK.from_file(tmp_path)  # a directory


async def test_env_kek_alphabets_and_errors() -> None:
    raw = os.urandom(32)
    std = EnvKEK(base64.b64encode(raw).decode())
    url = EnvKEK(" " + base64.urlsafe_b64encode(raw).decode() + "\n")
    assert std.key_id == url.key_id
    assert std.key_id.startswith("kek_")
    assert await url.unwrap(await std.wrap(DEK, AAD), AAD) == DEK
    for bad in ("", "not base64!", base64.b64encode(os.urandom(16)).decode(), "ñññ"):
        with pytest.raises(KeyFileError, match="ERI_KEK") as info:
            EnvKEK(bad)
        if bad:
            assert bad not in str(info.value)
    assert EnvKEK(base64.b64encode(raw).decode(), key_id="kek_prod_2026").key_id == "kek_prod_2026"


async def test_wrong_kek_is_unknown_not_garbage() -> None:
    a = EnvKEK(base64.b64encode(os.urandom(32)).decode())
    b = EnvKEK(base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(UnknownKeyError):
        await b.unwrap(await a.wrap(DEK, AAD), AAD)
    # the same id but another key (a forged frame) fails authentication
    forged = EnvKEK(base64.b64encode(os.urandom(32)).decode(), key_id=a.key_id)
    with pytest.raises(DecryptionError):
        await forged.unwrap(await a.wrap(DEK, AAD), AAD)


async def test_tampered_wrapped_key_fails() -> None:
    kek = EnvKEK(base64.b64encode(os.urandom(32)).decode())
    wrapped = await kek.wrap(DEK, AAD)
    for i in range(len(wrapped)):
        tampered = bytearray(wrapped)
        tampered[i] ^= 0x04
        with pytest.raises((DecryptionError, UnknownKeyError)):
            await kek.unwrap(bytes(tampered), AAD)


async def test_multikek_routes_by_frame() -> None:
    old = EnvKEK(base64.b64encode(os.urandom(32)).decode())
    new = EnvKEK(base64.b64encode(os.urandom(32)).decode())
    old_wrapped = await old.wrap(DEK, AAD)
    both = MultiKEK(new, old)
    assert both.key_id == new.key_id
    assert both.key_ids == {old.key_id, new.key_id}
    new_wrapped = await both.wrap(DEK, AAD)
    assert wrapped_kek_id(new_wrapped) == new.key_id
    assert await both.unwrap(old_wrapped, AAD) == DEK
    assert await both.unwrap(new_wrapped, AAD) == DEK
    with pytest.raises(UnknownKeyError):
        await MultiKEK(new).unwrap(old_wrapped, AAD)
    with pytest.raises(ValueError, match="twice"):
        MultiKEK(new, new)
    assert new.key_id in repr(both)


def test_frames() -> None:
    framed = frame_wrapped("kek_vault_prod", b"vault:v3:abc")
    assert unframe_wrapped(framed) == ("kek_vault_prod", framed[:16], b"vault:v3:abc")
    for junk in (b"", b"\x01", b"\x02\x01a", b"\x01\x09short", b"\x01\x02\xff\xfe"):
        with pytest.raises(DecryptionError):
            unframe_wrapped(junk)
