"""Users of the embedded default's local token issuer: staff of the response institutions.

``eri users add NAME --role ROLE --institution CODE --group institution:role`` records a user;
``eri users token NAME`` mints a short-lived bearer token for them. Production signs people in
through its OIDC provider instead, whose tokens carry the same claims (role, institution,
groups). User names are staff log-in names; victims are never users.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from eri.auth import GROUP, Role, mint
from eri.db.models import User
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
