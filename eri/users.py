"""Users of the embedded default's local token issuer: staff of the response institutions.

``eri users add NAME --role ROLE --institution CODE --group institution:role`` records a user;
``eri users token NAME`` mints a short-lived bearer token for them; ``eri users password NAME``
sets the password they sign in to the web pages with and ``eri users link NAME`` prints a
one-time sign-in link (only hashes are stored). Production signs people in
through its OIDC provider instead, whose tokens carry the same claims (role, institution,
groups). User names are staff log-in names; victims are never users.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from eri.auth import GROUP, Role, mint
from eri.db.models import User, WebLoginLink
from eri.settings import Settings

NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{1,63}")
INSTITUTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class UserError(ValueError):
    """A user that cannot be added or found; the message says why."""


def check(name: str, role: str, institution: str, groups: list[str]) -> Role:
    if not NAME.fullmatch(name):
        raise UserError(
            f"user name {name!r} must be 2-64 lower-case letters, digits, '.', '_' or '-'"
        )
    try:
        parsed = Role(role)
    except ValueError:
        raise UserError(
            f"role {role!r} is not one of: {', '.join(r.value for r in Role)}"
        ) from None
    if not INSTITUTION.fullmatch(institution):
        raise UserError(f"institution {institution!r} must be a code like PGN or svet")
    for group in groups:
        if not GROUP.fullmatch(group):
            raise UserError(f"group {group!r} must be institution:role, e.g. pgn:social_worker")
    return parsed


async def add(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    role: str,
    institution: str,
    groups: list[str],
) -> User:
    check(name, role, institution, groups)
    async with sessions.begin() as session:
        existing = (await session.execute(select(User).where(User.name == name))).scalar()
        if existing is not None:
            raise UserError(f"user {name!r} exists already")
        user = User(
            user_id="usr_" + secrets.token_hex(8),
            name=name,
            role=role,
            institution=institution,
            groups=" ".join(sorted(set(groups))),
            created_at=datetime.now(UTC),
            disabled=False,
        )
        session.add(user)
    return user


async def get(sessions: async_sessionmaker[AsyncSession], name: str) -> User:
    async with sessions() as session:
        user = (await session.execute(select(User).where(User.name == name))).scalar()
    if user is None:
        raise UserError(f"no user named {name!r} (add one with: eri users add)")
    if user.disabled:
        raise UserError(f"user {name!r} is disabled")
    return user


async def all_users(sessions: async_sessionmaker[AsyncSession]) -> list[User]:
    async with sessions() as session:
        return list((await session.execute(select(User).order_by(User.name))).scalars())


def token(settings: Settings, user: User, ttl_minutes: int | None = None) -> str:
    return mint(
        settings,
        user.user_id,
        Role(user.role),
        user.institution,
        groups=user.groups.split(),
        ttl_seconds=ttl_minutes * 60 if ttl_minutes else None,
    )


# --- web sign-in: passwords (scrypt) and one-time links -------------------------------------

#: scrypt cost (RFC 7914): N=2^15, r=8, p=1 takes ~50 ms and 32 MiB; stored with the hash.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MIN_PASSWORD = 10


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=128 * r * n * 2, dklen=32
    )


def password_matches(stored: str | None, password: str) -> bool:
    """Constant-time check; a user without a password never matches."""
    if not stored:
        # Spend the same time as a real check, so a missing user or password does not show.
        _scrypt(password, b"0" * 16, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, base64.b64decode(digest))


async def set_password(
    sessions: async_sessionmaker[AsyncSession], name: str, password: str
) -> User:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    user = await get(sessions, name)
    async with sessions.begin() as session:
        row = await session.get(User, user.user_id)
        assert row is not None
        row.password_hash = hash_password(password)
    return user


async def check_password(
    sessions: async_sessionmaker[AsyncSession], name: str, password: str
) -> User | None:
    """The user, if ``name`` exists, is enabled and ``password`` is theirs; else None."""
    async with sessions() as session:
        user = (await session.execute(select(User).where(User.name == name))).scalar()
    stored = user.password_hash if user is not None and not user.disabled else None
    if not password_matches(stored, password):
        return None
    return user


def _link_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_link(sessions: async_sessionmaker[AsyncSession], name: str, ttl: timedelta) -> str:
    """A one-time sign-in token for ``name`` (the CLI prints it inside a URL)."""
    user = await get(sessions, name)
    token = secrets.token_urlsafe(32)
    async with sessions.begin() as session:
        session.add(
            WebLoginLink(
                token_hash=_link_hash(token),
                user_id=user.user_id,
                expires_at=datetime.now(UTC) + ttl,
            )
        )
    return token


async def consume_link(sessions: async_sessionmaker[AsyncSession], token: str) -> User | None:
    """The link's user, once: a used, expired or unknown token gives None."""
    if len(token) > 128:
        return None
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        link = await session.get(WebLoginLink, _link_hash(token), with_for_update=True)
        if link is None or link.used_at is not None or link.expires_at <= now:
            return None
        link.used_at = now
        user = await session.get(User, link.user_id)
    if user is None or user.disabled:
        return None
    return user
