"""Settings, read from the environment with the prefix ``ERI_`` (pydantic-settings).

Development mode creates its local secrets under ``ERI_KEYS_DIR`` on first run (mode 0600);
outside development a missing or placeholder secret stops start-up with a clear message.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDERS = frozenset(
    {"", "changeme", "change-me", "placeholder", "secret", "password", "xxx", "todo", "example"}
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class SettingsError(RuntimeError):
    """Configuration that must stop start-up; the message says what to set."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ERI_", extra="ignore", frozen=True)

    environment: Environment = Environment.DEVELOPMENT

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "eri"
    temporal_task_queue: str = "eri-cases"
    temporal_retention_days: int = Field(default=30, ge=1, le=3650)
    # Dev server only (``eri temporal`` / ``eri up``): the Web UI and the server's side ports.
    temporal_ui_port: int = 8233
    temporal_http_port: int = 7243
    temporal_metrics_port: int = 7234

    # Storage
    data_dir: Path = Path("data")
    keys_dir: Path | None = None
    database_url: str | None = None

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    ui_origin: str | None = None  # origin of the Temporal Web UI allowed to call /codec (CORS)

    # Authentication: tokens from the local issuer (embedded default) or an OIDC provider
    jwt_issuer: str = "eri-local"
    jwt_audience: str = "eri-api"
    oidc_jwks_url: str | None = None  # production: verify tokens with the provider's JWKS
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)  # JSON request bodies
    token_ttl_minutes: int = Field(default=15, ge=1, le=24 * 60)

    # Web pages (api/web): sessions expire after this much inactivity, and in any case after
    # the maximum; one-time sign-in links (``eri users link``) live this long. Production signs
    # in through the OIDC provider (authorization code flow with PKCE) when ``oidc_issuer`` is set.
    web_session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    web_session_max_hours: int = Field(default=12, ge=1, le=7 * 24)
    web_link_ttl_minutes: int = Field(default=15, ge=1, le=24 * 60)
    web_public_url: str | None = None  # e.g. https://eri.example.org (links, OIDC redirect)
    web_quick_exit_url: str = "https://www.google.com/"
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid profile"

    # Secrets outside development come from the environment
    kek: SecretStr | None = None  # base64 key-encryption key (ERI_KEK)
    kek_previous: SecretStr | None = None  # during a rotation: old KEKs, comma-separated base64

    # Retention of case data before it is crypto-shredded. No law found by our research sets
    # it: an operational setting of the deploying commission, per protocol (JSON object).
    default_retention_days: int = Field(default=3650, ge=1)
    retention_days: dict[str, int] = Field(default_factory=dict)

    # Notifications: the log channel by default; a webhook in production (PII-free bodies)
    notify_webhook_url: str | None = None

    # Audit trail: the log's origin line (also its signing key's name), the checkpoint schedule,
    # the witnesses whose cosignatures the API accepts (C2SP vkeys), the reports' k-anonymity k.
    audit_origin: str = Field(default="eri.invalid/audit", pattern=r"^[^\s+]{1,128}$")
    audit_checkpoint_minutes: int = Field(default=5, ge=1, le=24 * 60)
    audit_witnesses: list[str] = Field(default_factory=list)
    audit_k: int = Field(default=11, ge=2, le=1000)

    # Handoffs: this deployment's institution code (signs packages) and the evidence size limit
    institution: str = Field(default="ERI-DEV", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    evidence_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1)

    log_format: Literal["console", "json"] | None = None
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            if self.database_url is None:
                raise SettingsError(
                    "ERI_DATABASE_URL must be set in production "
                    "(e.g. postgresql+asyncpg://eri@db:5432/eri)"
                )
            if self.kek is None or self.kek.get_secret_value().strip().lower() in PLACEHOLDERS:
                raise SettingsError(
                    "ERI_KEK must hold the base64 key-encryption key in production; "
                    "a missing or placeholder value is refused"
                )
        return self

    @property
    def is_development(self) -> bool:
        return self.environment is not Environment.PRODUCTION

    @cached_property
    def effective_keys_dir(self) -> Path:
        return self.keys_dir if self.keys_dir is not None else self.data_dir / "keys"

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'eri.db').as_posix()}"

    @property
    def effective_log_format(self) -> Literal["console", "json"]:
        if self.log_format is not None:
            return self.log_format
        return "console" if self.environment is Environment.DEVELOPMENT else "json"

    @property
    def temporal_host_port(self) -> tuple[str, int]:
        host, _, port = self.temporal_address.rpartition(":")
        return host or "127.0.0.1", int(port)

    @property
    def cors_origins(self) -> list[str]:
        """Origins allowed to call the codec endpoint: the Temporal Web UI's."""
        if self.ui_origin:
            return [o.strip() for o in self.ui_origin.split(",") if o.strip()]
        if self.is_development:
            port = self.temporal_ui_port
            return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
        return []

    @property
    def codec_endpoint(self) -> str:
        return f"http://{self.api_host}:{self.api_port}/codec"

    def retention(self, protocol_id: str) -> timedelta:
        return timedelta(days=self.retention_days.get(protocol_id, self.default_retention_days))

    def dev_secret(self, name: str, size: int = 32) -> bytes:
        """Read the development secret ``name``, creating it (mode 0600) on first use.

        Outside development the file must already exist: nothing is invented in production.
        """
        path = self.effective_keys_dir / name
        if not path.exists():
            if not self.is_development:
                raise SettingsError(f"secret file {path} is missing; provision it before start-up")
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(size))
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise SettingsError(
                f"secret file {path} is readable by others (mode {mode:o}); chmod 600"
            )
        return path.read_bytes()

    def ensure_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.effective_keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)


def get_settings() -> Settings:
    return Settings()
