from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from eri.settings import Environment, Settings, SettingsError


@pytest.mark.usefixtures("clean_env")
def test_defaults_are_the_embedded_loopback_setup() -> None:
    s = Settings()
    assert s.environment is Environment.DEVELOPMENT
    assert s.temporal_address == "127.0.0.1:7233"
    assert s.temporal_namespace == "eri"
    assert (s.api_host, s.api_port) == ("127.0.0.1", 8000)
    assert s.effective_database_url == "sqlite+aiosqlite:///data/eri.db"
    assert s.effective_keys_dir == Path("data/keys")
    assert s.effective_log_format == "console"


def test_environment_variables_use_the_eri_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERI_DATABASE_URL", "postgresql+asyncpg://eri@db/eri")
    monkeypatch.setenv("ERI_API_PORT", "9000")
    s = Settings()
    assert s.effective_database_url == "postgresql+asyncpg://eri@db/eri"
    assert s.api_port == 9000


@pytest.mark.usefixtures("clean_env")
def test_production_refuses_missing_database_url() -> None:
    with pytest.raises(SettingsError, match="ERI_DATABASE_URL must be set"):
        Settings(environment=Environment.PRODUCTION, kek=SecretStr("a" * 44))


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("kek", [None, "changeme", "  Placeholder "])
def test_production_refuses_missing_or_placeholder_kek(kek: str | None) -> None:
    with pytest.raises(SettingsError, match="ERI_KEK"):
        Settings(
            environment=Environment.PRODUCTION,
            database_url="postgresql+asyncpg://eri@db/eri",
            kek=SecretStr(kek) if kek is not None else None,
        )


@pytest.mark.usefixtures("clean_env")
def test_production_logs_json() -> None:
    s = Settings(
        environment=Environment.PRODUCTION,
        database_url="postgresql+asyncpg://eri@db/eri",
        kek=SecretStr("k" * 44),
    )
    assert s.effective_log_format == "json"


@pytest.mark.usefixtures("clean_env")
def test_development_creates_private_secret_once(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    first = s.dev_secret("jwt.key")
    assert len(first) == 32
    path = tmp_path / "keys" / "jwt.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert s.dev_secret("jwt.key") == first


@pytest.mark.usefixtures("clean_env")
def test_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    s.dev_secret("kek")
    (tmp_path / "keys" / "kek").chmod(0o644)
    with pytest.raises(SettingsError, match="readable by others"):
        s.dev_secret("kek")


@pytest.mark.usefixtures("clean_env")
def test_production_never_invents_a_secret(tmp_path: Path) -> None:
    s = Settings(
        environment=Environment.PRODUCTION,
        data_dir=tmp_path,
        database_url="postgresql+asyncpg://eri@db/eri",
        kek=SecretStr("k" * 44),
    )
    with pytest.raises(SettingsError, match="is missing"):
        s.dev_secret("log.key")
    assert not (tmp_path / "keys" / "log.key").exists()
