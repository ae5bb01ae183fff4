"""Operator accounts and console logins: argon2 password hashes, server-side sessions with a
per-session CSRF token. The cookie carries a random token; the database keeps only its SHA-256,
so a leaked database does not give away live sessions."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ConsoleSession, Operator, OperatorRole, utcnow

SESSION_DAYS = 7
_hasher = PasswordHasher()
# Verified when a login is unknown, so "no such user" and "wrong password" take the same time.
_DUMMY = _hasher.hash("not-a-real-password")


class AuthError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Login:
    token: str  # for the cookie
    csrf: str
    operator: Operator


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise AuthError("a password needs at least 8 characters")
    return _hasher.hash(password)


async def add_operator(
    session: AsyncSession,
    *,
    login: str,
    name: str,
    password: str,
    role: str = OperatorRole.OPERATOR,
    groups: list[str] | None = None,
    max_chats: int = 3,
    telegram_user_id: str | None = None,
) -> Operator:
    if role not in tuple(OperatorRole):
        raise AuthError(f"role must be one of {', '.join(OperatorRole)}")
    if await session.scalar(select(Operator.id).where(Operator.login == login)):
        raise AuthError(f"operator {login!r} already exists")
    op = Operator(
        login=login,
        name=name,
        password_hash=await asyncio.to_thread(hash_password, password),
        role=role,
        groups=list(groups or []),
        max_chats=max_chats,
        telegram_user_id=telegram_user_id,
    )
    session.add(op)
    await session.flush()
    return op


async def log_in(session: AsyncSession, login: str, password: str) -> Login:
    op = await session.scalar(select(Operator).where(Operator.login == login))
    try:  # argon2 is slow on purpose: off the event loop
        await asyncio.to_thread(_hasher.verify, op.password_hash if op else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        op = None
    if op is None:
        raise AuthError("wrong login or password")
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        ConsoleSession(
            id=_digest(token),
            operator_id=op.id,
            csrf=csrf,
            created_at=now,
            expires_at=now + timedelta(days=SESSION_DAYS),
        )
    )
    return Login(token, csrf, op)


async def session_for(
    session: AsyncSession, token: str | None
) -> tuple[Operator, ConsoleSession] | None:
    if not token:
        return None
    row = await session.get(ConsoleSession, _digest(token))
    if row is None or row.expires_at <= utcnow():
        return None
    op = await session.get(Operator, row.operator_id)
    return (op, row) if op is not None else None


async def log_out(session: AsyncSession, token: str) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.id == _digest(token)))


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
