"""Operator accounts and console logins: argon2 password hashes, server-side sessions with a
per-session CSRF token. The cookie carries a random token; the database keeps only its SHA-256,
so a leaked database does not give away live sessions.

Account management (the CLI `supportbot operators ...` and the admin page `/console/operators`
both call these): add, disable, enable, remove, reset a password, change name/role/groups/seats.
Each change writes its audit entry (`services.audit`) in the same transaction, naming who did it
(`Actor`) and whose account it was (`details.target_id`, `details.login`).

- **Disabled**: `disabled_at` is set. The account can't log in (the right password gets "the
  account is disabled", a wrong one the usual "wrong login or password"), its console sessions
  are deleted at once (the next request is refused; `handoff.console.live` closes open sockets),
  its status is offline and the chats it had go back to the queue (keeping their place).
- **Removed**: a soft delete. Disabled as above for good, the password hash is destroyed
  (`REMOVED_HASH`), the Telegram link cleared; the row stays, so past messages keep the name and
  the audit log its login. The login stays taken (audit entries stay unambiguous).
- Nobody disables, removes or changes the role of their own account, and the last active admin
  can't be disabled, removed or demoted (the CLI can always add another admin).

Password hashing (argon2: ~0.1 s of CPU and 64 MB each, on purpose) runs on `PASSWORDS`, a gate
of its own: at most `HASH_WORKERS` hashes at once in its own threads, at most `HASH_RATE` a
second, at most `HASH_WAITING` waiting; past that a login is refused at once (`Busy`) instead
of piling up; its threads run at the lowest CPU priority. No hash runs while a database
connection is held: the console reads the operator (`find_for_login`), lets the
connection go, checks the password (`check_password`), then opens the session in a short
transaction (`open_session`). A login flood therefore costs the subscribers' pipeline neither
connections nor more than a fraction of one CPU.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services import audit
from storage import repo
from storage.db import note_event
from storage.models import (
    ConsoleSession,
    Conversation,
    ConversationState,
    Operator,
    OperatorRole,
    OperatorStatus,
    utcnow,
)

SESSION_DAYS = 7
MAX_CHATS = 1000
REMOVED_HASH = "!removed"  # not an argon2 hash: nothing verifies against it
_hasher = PasswordHasher()
# Hashes at once: at most half the CPUs (the event loop keeps the rest), at most 2.
HASH_WORKERS = max(1, min(2, (os.cpu_count() or 2) // 2))
HASH_RATE = 2.0  # hashes started per second at most (each ~0.1-0.2 s of one CPU)
HASH_WAITING = 4  # logins waiting for a hash; beyond it `Busy` (at most ~2 s of waiting)
T = TypeVar("T")


class AuthError(ValueError):
    """A refused login or account change; `code` names the reason for translated messages."""

    def __init__(self, message: str, code: str = "error") -> None:
        super().__init__(message)
        self.code = code


class DisabledError(AuthError):
    """The right password for a disabled account."""

    def __init__(self, message: str = "this account is disabled") -> None:
        super().__init__(message, "disabled")


class Busy(AuthError):
    """Too many password checks are running or waiting: the login is refused unchecked."""

    def __init__(self) -> None:
        super().__init__("too many login attempts, try later", "busy")


class HashGate:
    """Password hashing in threads of its own, bounded three ways: `workers` hashes at once,
    one started at most every `1 / per_second` s, `waiting` queued; past that, `Busy`. The rate
    matters as much as the concurrency: argon2 is memory-hard, and on a small machine one
    hashing thread running flat out made the subscribers' replies ~10x slower even on the
    other CPU (measured: tests/e2e/test_login_flood.py). The count is kept by the threads
    themselves (a cancelled caller's hash still counts until it ends)."""

    def __init__(
        self,
        workers: int = HASH_WORKERS,
        waiting: int = HASH_WAITING,
        per_second: float = HASH_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = workers + waiting
        self.spacing = 1.0 / per_second
        self.clock = clock
        self._pool = ThreadPoolExecutor(
            workers, thread_name_prefix="password-hash", initializer=_lowest_priority
        )
        self._lock = threading.Lock()
        self._pending = 0
        self._next_start = 0.0

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def full(self) -> bool:
        """A hash asked for now would be refused: callers check this before any other work
        (reading the operator), so a flood is turned away for nearly nothing."""
        return self._pending >= self.limit

    async def run(self, fn: Callable[..., T], *args: Any, wait: bool = False) -> T:
        """`fn(*args)` in a hashing thread; `Busy` at once if the gate is full (unless `wait`:
        account changes by an admin or the CLI, which are few, queue instead, unpaced)."""
        with self._lock:
            if self.full and not wait:
                raise Busy()
            self._pending += 1

        def paced() -> T:
            try:
                if not wait:
                    with self._lock:  # this hash's turn: `spacing` after the previous one's
                        start = max(self.clock(), self._next_start)
                        self._next_start = start + self.spacing
                    time.sleep(max(0.0, start - self.clock()))
                return fn(*args)
            finally:
                with self._lock:
                    self._pending -= 1

        try:
            future = self._pool.submit(paced)
        except BaseException:
            with self._lock:
                self._pending -= 1
            raise
        return await asyncio.wrap_future(future)


def _lowest_priority() -> None:
    """A hashing thread yields the CPU to the event loop (Linux: niceness is per thread), so on
    a busy machine logins wait rather than the subscribers' replies."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # not Linux, or not allowed: normal priority
        pass


PASSWORDS = HashGate()


@dataclass(frozen=True, slots=True)
class Login:
    token: str  # for the cookie
    csrf: str
    operator: Operator


@dataclass(frozen=True, slots=True)
class Candidate:
    """What a login needs of an operator row, read before the password check (which holds no
    database connection)."""

    id: int
    login: str
    password_hash: str
    disabled: bool


@dataclass(frozen=True, slots=True)
class NewPassword:
    """A password already hashed (`new_password`), so the transaction that stores it holds no
    connection while hashing."""

    hash: str


@dataclass(frozen=True, slots=True)
class Actor:
    """Who manages an account, as the audit log names them: an admin in the console
    (`operator`, with their id and IP), the CLI (`cli`, with the OS user), or the app (`system`)."""

    kind: str = "system"
    operator_id: int | None = None
    ip: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


SYSTEM = Actor()


def hash_password(password: str) -> str:
    _check_password(password)
    return _hasher.hash(password)


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise AuthError("a password needs at least 8 characters", "password_short")


async def new_password(password: str) -> NewPassword:
    """Check and hash a new password on the hashing gate (waits its turn, never `Busy`); call it
    before opening the transaction that stores it."""
    _check_password(password)
    return NewPassword(await PASSWORDS.run(_hasher.hash, password, wait=True))


async def _hashed(password: str | NewPassword) -> str:
    return (
        password.hash if isinstance(password, NewPassword) else (await new_password(password)).hash
    )


def is_removed(op: Operator) -> bool:
    return op.password_hash == REMOVED_HASH


def state_of(op: Operator) -> str:
    """The account's state: "active", "disabled" or "removed"."""
    if is_removed(op):
        return "removed"
    return "disabled" if op.disabled_at is not None else "active"


def _check_fields(
    *, role: str | None, groups: list[str] | None, max_chats: int | None, name: str | None
) -> None:
    if role is not None and role not in tuple(OperatorRole):
        raise AuthError(f"role must be one of {', '.join(OperatorRole)}", "bad_role")
    if groups is not None and not all(isinstance(g, str) and g for g in groups):
        raise AuthError("groups: a list of skill group names", "bad_groups")
    if max_chats is not None and not 1 <= max_chats <= MAX_CHATS:
        raise AuthError(f"max chats must be 1-{MAX_CHATS}", "bad_max_chats")
    if name is not None and not 1 <= len(name.strip()) <= 100:
        raise AuthError("a name needs 1-100 characters", "bad_name")


def _audit(session: AsyncSession, action: str, by: Actor, target: Operator, **details: Any) -> None:
    audit.record(
        session,
        action,
        actor=by.kind,
        operator_id=by.operator_id,
        ip=by.ip,
        details={"target_id": target.id, "login": target.login, **by.details, **details},
    )


async def add_operator(
    session: AsyncSession,
    *,
    login: str,
    name: str,
    password: str | NewPassword,
    role: str = OperatorRole.OPERATOR,
    groups: list[str] | None = None,
    max_chats: int = 3,
    telegram_user_id: str | None = None,
    by: Actor = SYSTEM,
) -> Operator:
    login = login.strip()
    if not 1 <= len(login) <= 64 or any(c.isspace() for c in login):
        raise AuthError("a login needs 1-64 characters without spaces", "bad_login")
    _check_fields(role=role, groups=groups, max_chats=max_chats, name=name)
    if await session.scalar(select(Operator.id).where(Operator.login == login)):
        raise AuthError(f"operator {login!r} already exists", "exists")
    if telegram_user_id and await session.scalar(
        select(Operator.id).where(Operator.telegram_user_id == telegram_user_id)
    ):
        raise AuthError(
            f"Telegram user {telegram_user_id} is linked to another operator", "telegram_taken"
        )
    op = Operator(
        login=login,
        name=name.strip(),
        password_hash=await _hashed(password),
        role=role,
        groups=list(groups or []),
        max_chats=max_chats,
        telegram_user_id=telegram_user_id or None,
    )
    session.add(op)
    await session.flush()
    _audit(
        session,
        "operator_added",
        by,
        op,
        role=op.role,
        groups=list(op.groups),
        max_chats=op.max_chats,
    )
    return op


async def find_operator(session: AsyncSession, who: int | str) -> Operator:
    """An operator by id or login (AuthError if there is none), locked for the change."""
    query = select(Operator).with_for_update()
    query = (
        query.where(Operator.id == who)
        if isinstance(who, int)
        else query.where(Operator.login == who)
    )
    op = await session.scalar(query)
    if op is None:
        raise AuthError(f"no operator {who!r}", "not_found")
    return op


async def _other_active_admins(session: AsyncSession, op: Operator) -> int:
    """Locked on PostgreSQL: two admins switching each other off at once can't both succeed
    (one waits for the other, or the deadlock detector stops one)."""
    others = await session.scalars(
        select(Operator.id)
        .where(
            Operator.role == OperatorRole.ADMIN,
            Operator.disabled_at.is_(None),
            Operator.id != op.id,
        )
        .order_by(Operator.id)
        .with_for_update()
    )
    return len(others.all())


async def _not_the_last_admin(session: AsyncSession, op: Operator, doing: str) -> None:
    if op.role == OperatorRole.ADMIN and op.disabled_at is None:
        if await _other_active_admins(session, op) == 0:
            raise AuthError(f"can't {doing} the last active admin", "last_admin")


def _not_yourself(op: Operator, by: Actor, doing: str) -> None:
    if by.operator_id is not None and by.operator_id == op.id:
        raise AuthError(f"you can't {doing} your own account", "self")


async def end_sessions(session: AsyncSession, operator_id: int) -> int:
    """Delete every console session of the operator; their open pages are refused from the next
    request, and open sockets close once the commit's event reaches them."""
    result = await session.execute(
        delete(ConsoleSession).where(ConsoleSession.operator_id == operator_id)
    )
    note_event(session, {"type": "session_ended", "operator_id": operator_id})
    return int(getattr(result, "rowcount", 0) or 0)


async def release_chats(session: AsyncSession, op: Operator) -> list[Conversation]:
    """The operator's chats go back to their queue, keeping their place and ahead of new
    arrivals (they waited once already); a "released" event each. Also what the desk does when
    an operator goes offline with chats (`Desk.set_status(..., release=True)`)."""
    convs = (
        await session.scalars(
            select(Conversation)
            .where(
                Conversation.state == ConversationState.WITH_OPERATOR,
                Conversation.operator_id == op.id,
            )
            .order_by(Conversation.id)
            .with_for_update()
        )
    ).all()
    for conv in convs:
        await repo.set_state(
            session, conv, ConversationState.QUEUED, kind="released", data={"operator_id": op.id}
        )
        conv.operator_id = None
        conv.assigned_at = None
        conv.queued_at = conv.queued_at or utcnow()
        conv.priority = max(conv.priority, 1)
        note_event(session, {"type": "queued", "conversation_id": conv.id})
    return list(convs)


async def _switch_off(session: AsyncSession, op: Operator) -> tuple[int, list[int]]:
    now = utcnow()
    op.disabled_at = op.disabled_at or now
    op.status, op.status_at = OperatorStatus.OFFLINE, now
    ended = await end_sessions(session, op.id)
    released = [conv.id for conv in await release_chats(session, op)]
    note_event(session, {"type": "operator", "operator_id": op.id, "status": op.status})
    return ended, released


async def disable_operator(session: AsyncSession, who: int | str, *, by: Actor) -> Operator:
    op = await find_operator(session, who)
    _not_yourself(op, by, "disable")
    if is_removed(op):
        raise AuthError(f"operator {op.login!r} was removed", "removed")
    if op.disabled_at is not None:
        raise AuthError(f"operator {op.login!r} is already disabled", "already_disabled")
    await _not_the_last_admin(session, op, "disable")
    ended, released = await _switch_off(session, op)
    _audit(session, "operator_disabled", by, op, sessions_ended=ended, chats_released=released)
    return op


async def enable_operator(session: AsyncSession, who: int | str, *, by: Actor) -> Operator:
    op = await find_operator(session, who)
    if is_removed(op):
        raise AuthError(f"operator {op.login!r} was removed: add a new account instead", "removed")
    if op.disabled_at is None:
        raise AuthError(f"operator {op.login!r} is not disabled", "not_disabled")
    op.disabled_at = None
    note_event(session, {"type": "operator", "operator_id": op.id, "status": op.status})
    _audit(session, "operator_enabled", by, op)
    return op


async def remove_operator(session: AsyncSession, who: int | str, *, by: Actor) -> Operator:
    op = await find_operator(session, who)
    _not_yourself(op, by, "remove")
    if is_removed(op):
        raise AuthError(f"operator {op.login!r} was already removed", "removed")
    await _not_the_last_admin(session, op, "remove")
    ended, released = await _switch_off(session, op)
    op.password_hash = REMOVED_HASH
    op.telegram_user_id = None
    _audit(session, "operator_removed", by, op, sessions_ended=ended, chats_released=released)
    return op


async def reset_password(
    session: AsyncSession, who: int | str, password: str | NewPassword, *, by: Actor
) -> Operator:
    """A new password; the operator's sessions end (a reset is often about a leaked one)."""
    op = await find_operator(session, who)
    if is_removed(op):
        raise AuthError(f"operator {op.login!r} was removed", "removed")
    op.password_hash = await _hashed(password)
    ended = await end_sessions(session, op.id)
    _audit(session, "password_reset", by, op, sessions_ended=ended)
    return op


async def update_operator(
    session: AsyncSession,
    who: int | str,
    *,
    by: Actor,
    name: str | None = None,
    role: str | None = None,
    groups: list[str] | None = None,
    max_chats: int | None = None,
) -> dict[str, list[Any]]:
    """Change what is given; returns {field: [old, new]} of what really changed."""
    _check_fields(role=role, groups=groups, max_chats=max_chats, name=name)
    op = await find_operator(session, who)
    if is_removed(op):
        raise AuthError(f"operator {op.login!r} was removed", "removed")
    wanted: dict[str, Any] = {
        "name": name.strip() if name is not None else None,
        "role": role,
        "groups": list(groups) if groups is not None else None,
        "max_chats": max_chats,
    }
    changes = {
        key: [getattr(op, key), value]
        for key, value in wanted.items()
        if value is not None and value != getattr(op, key)
    }
    if "role" in changes:
        _not_yourself(op, by, "change the role of")
        if changes["role"][1] != OperatorRole.ADMIN:
            await _not_the_last_admin(session, op, "demote")
    if not changes:
        return {}
    for key, (_old, new) in changes.items():
        setattr(op, key, new)
    # Open consoles reconnect with the new role and groups; the queue and the desk use them at once.
    note_event(session, {"type": "session_changed", "operator_id": op.id})
    note_event(session, {"type": "operator", "operator_id": op.id, "status": op.status})
    _audit(session, "operator_changed", by, op, changes=changes)
    return changes


async def log_in(session: AsyncSession, login: str, password: str) -> Login:
    """All of a login in the caller's session (scripts, benchmarks). It holds the session's
    connection during the hash: the console uses the three steps below instead."""
    candidate = await find_for_login(session, login)
    await check_password(candidate, password)
    assert candidate is not None  # check_password refuses None
    return await open_session(session, candidate)


@functools.cache
def _dummy_hash() -> str:
    """Verified when a login is unknown, so "no such user" and "wrong password" take the same
    time (made on first use: ~0.2 s of CPU, not at start-up)."""
    return _hasher.hash("not-a-real-password")


async def find_for_login(session: AsyncSession, login: str) -> Candidate | None:
    """The operator a login names, if it can log in at all (not removed)."""
    op = await session.scalar(select(Operator).where(Operator.login == login))
    if op is None or is_removed(op):
        return None
    return Candidate(op.id, op.login, op.password_hash, op.disabled_at is not None)


async def check_password(candidate: Candidate | None, password: str) -> None:
    """AuthError unless `password` is the candidate's (DisabledError if it is, for a disabled
    account); `Busy` if the hashing gate is full. An unknown login costs the same hash."""
    stored = candidate.password_hash if candidate is not None else _dummy_hash()
    try:  # argon2 is slow on purpose: in the gate's threads, off the event loop
        await PASSWORDS.run(_hasher.verify, stored, password)
        right = candidate is not None
    except (VerificationError, InvalidHashError):
        right = False
    if candidate is None or not right:
        raise AuthError("wrong login or password", "wrong_password")
    if candidate.disabled:  # said only to whoever knows the password
        raise DisabledError()


async def open_session(session: AsyncSession, candidate: Candidate) -> Login:
    """A console session for an operator whose password was checked; refused if the account was
    disabled or its password changed since it was read."""
    op = await session.get(Operator, candidate.id)
    if op is None or op.password_hash != candidate.password_hash:
        raise AuthError("wrong login or password", "wrong_password")
    if op.disabled_at is not None:
        raise DisabledError()
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
    if op is None or op.disabled_at is not None:  # sessions end with the account
        return None
    return op, row


async def live_tokens(session: AsyncSession, tokens: Iterable[str]) -> set[str]:
    """Which of these session tokens still open the console (one query for many sockets)."""
    by_digest = {_digest(t): t for t in tokens}
    if not by_digest:
        return set()
    rows = await session.scalars(
        select(ConsoleSession.id)
        .join(Operator, Operator.id == ConsoleSession.operator_id)
        .where(
            ConsoleSession.id.in_(by_digest),
            ConsoleSession.expires_at > utcnow(),
            Operator.disabled_at.is_(None),
        )
    )
    return {by_digest[d] for d in rows}


async def log_out(session: AsyncSession, token: str) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.id == _digest(token)))


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
