"""Who is calling: bearer JWTs, verified, turned into a ``Principal`` (id, role, institution).

The embedded default is its own issuer: tokens are signed with EdDSA (Ed25519) by a local key
whose 32-byte seed is the development secret ``jwt-signing`` (created 0600 on first use).
Production verifies tokens from an OIDC provider through its JWKS URL (``ERI_OIDC_JWKS_URL``);
issuer and audience are always checked. Authorization (who may do what) is separate.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from eri.settings import Settings

SIGNING_SECRET = "jwt-signing"  # noqa: S105 (a file name, not a secret)
ALGORITHMS = ["EdDSA", "RS256", "ES256"]
CLOCK_SKEW_SECONDS = 30
OPAQUE_SUBJECT = re.compile(r"[a-z]{2,12}_[A-Za-z0-9_-]{4,48}")
#: A protocol candidate group, ``institution:role`` (e.g. ``pgn:social_worker``).
GROUP = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}:[a-z0-9][a-z0-9_.-]{0,63}")
MAX_GROUPS = 32


class Role(StrEnum):
    RESPONDER = "responder"
    COORDINATOR = "coordinator"
    COMMITTEE = "committee"
    PROSECUTOR = "prosecutor"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    subject: str  # opaque user id, e.g. usr_…
    role: Role
    institution: str  # institution code, e.g. PGN, SBS, DINAF
    #: The protocol candidate groups (``institution:role``) whose tasks this person does.
    groups: tuple[str, ...] = ()

    @property
    def actor_id(self) -> str:
        """An opaque id for the audit trail: the subject if it is one (``usr_…``), else a
        stable digest of it (an OIDC subject may be an e-mail address)."""
        if OPAQUE_SUBJECT.fullmatch(self.subject):
            return self.subject
        return "sub_" + hashlib.sha256(self.subject.encode()).hexdigest()[:32]

    @property
    def institution_code(self) -> str:
        """The institution as protocols name it (lower case)."""
        return self.institution.lower()

    @property
    def group(self) -> str:
        """The candidate group this principal belongs to: ``institution:role``."""
        return f"{self.institution}:{self.role.value}"


class TokenError(Exception):
    """A token that must be refused. ``reason`` is a code; never the token's content."""

    MESSAGES: ClassVar[dict[str, tuple[str, str]]] = {
        "expired": ("El token expiró.", "The token has expired."),
        "audience": ("El token es para otro destinatario.", "The token is for another audience."),
        "issuer": (
            "El token viene de un emisor desconocido.",
            "The token is from an unknown issuer.",
        ),
        "signature": ("La firma del token no es válida.", "The token signature is invalid."),
        "malformed": (
            "El token está mal formado o no es válido.",
            "The token is malformed or invalid.",
        ),
        "role": ("El token no tiene un rol válido de ERI.", "The token has no valid ERI role."),
        "institution": ("El token no indica institución.", "The token names no institution."),
        "groups": (
            "Los grupos del token no son válidos (institución:rol).",
            "The token's groups are invalid (institution:role).",
        ),
    }

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def message(self) -> tuple[str, str]:
        return self.MESSAGES[self.reason]


def _local_private_key(settings: Settings) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(settings.dev_secret(SIGNING_SECRET))


def local_public_key(settings: Settings) -> Ed25519PublicKey:
    return _local_private_key(settings).public_key()


def mint(
    settings: Settings,
    subject: str,
    role: Role,
    institution: str,
    *,
    ttl_seconds: int | None = None,
    now: float | None = None,
    groups: tuple[str, ...] | list[str] = (),
) -> str:
    """A short-lived token from the local issuer (embedded default and tests)."""
    issued = int(now if now is not None else time.time())
    ttl = ttl_seconds if ttl_seconds is not None else settings.token_ttl_minutes * 60
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl,
        "jti": uuid.uuid4().hex,
        "role": role.value,
        "institution": institution,
        "groups": list(groups),
    }
    return jwt.encode(claims, _local_private_key(settings), algorithm="EdDSA")


class Verifier:
    """Verifies bearer tokens: signature, issuer, audience, expiry, and ERI's claims."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._jwks: jwt.PyJWKClient | None = None
        self._local: Ed25519PublicKey | None = None
        if settings.oidc_jwks_url:
            self._jwks = jwt.PyJWKClient(settings.oidc_jwks_url, cache_keys=True, lifespan=300)
        else:
            self._local = local_public_key(settings)

    def verify(self, token: str) -> Principal:
        try:
            key: Any = self._jwks.get_signing_key_from_jwt(token).key if self._jwks else self._local
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("expired") from None
        except jwt.InvalidAudienceError:
            raise TokenError("audience") from None
        except jwt.InvalidIssuerError:
            raise TokenError("issuer") from None
        except jwt.InvalidSignatureError:
            raise TokenError("signature") from None
        except jwt.PyJWTError:
            raise TokenError("malformed") from None
        return principal_from_claims(claims)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """ERI's claims (role, institution, groups) of a verified token, checked, as a Principal.

    Bearer tokens and the web pages' OIDC ID tokens carry the same claims."""
    try:
        role = Role(claims["role"])
    except (KeyError, ValueError):
        raise TokenError("role") from None
    institution = claims.get("institution")
    if not isinstance(institution, str) or not institution:
        raise TokenError("institution")
    groups = claims.get("groups", [])
    if (
        not isinstance(groups, list)
        or len(groups) > MAX_GROUPS
        or not all(isinstance(g, str) and GROUP.fullmatch(g) for g in groups)
    ):
        raise TokenError("groups")
    return Principal(
        subject=str(claims["sub"]),
        role=role,
        institution=institution,
        groups=tuple(sorted(set(groups))),
    )
