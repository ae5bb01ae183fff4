"""The database: engine and sessions for SQLite (embedded default) and PostgreSQL, same models.

`Database.transaction()` is the unit of work every writer uses: a session inside one
transaction that also collects what must happen once it commits — live events for the
operators' consoles (`note_event`), wake-ups of the channels' outbox senders (`note_wake`) and
the new outbox rows this process's sender takes at once (`lease_here`, `note_handed`).
After the commit they are handed, once each, to the hooks the composition root installed
(`Database.on_commit`); after a rollback they are dropped with the transaction, so nobody
is told about a change that did not happen.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, Protocol

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage import sqlite_inline  # also registers the sqlite+inline dialect

# PostgreSQL error classes that a retry can get past: serialization failure, deadlock,
# shutdown / cannot connect now, too many connections, and every connection exception (08...).
_TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03", "53300", "55P03"}


def transient(exc: BaseException) -> bool:
    """Is `exc` the database (or network) being away for a while, so that the same work
    retried later will go through? Anything else (data the database refuses, a bug) is
    permanent: retrying it only blocks whoever waits behind it."""
    if isinstance(exc, OSError | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
            return True
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return isinstance(code, str) and (code in _TRANSIENT_SQLSTATES or code.startswith("08"))
    if isinstance(exc, SQLAlchemyTimeoutError | DisconnectionError):
        return True  # the pool had no connection to give in time
    return False


class DatabaseConfigError(ValueError):
    """The database URL is unusable; the message names the setting and what is wrong."""


def normalize_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://, sqlite:///) and pick async drivers."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseConfigError(
            f"SUPPORTBOT_DATABASE_URL is not a database URL: {url!r}"
        ) from exc
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+inline")  # storage/sqlite_inline.py
    else:
        raise DatabaseConfigError(
            f"SUPPORTBOT_DATABASE_URL: unsupported database {backend!r} (use sqlite or postgresql)"
        )
    return parsed.render_as_string(hide_password=False)


Event = dict[str, Any]  # a live event (handoff/events.py)


def json_dumps(value: Any) -> str:
    """JSON text of a column's value: orjson (~10x the standard library), which refuses a few
    things json accepts (integers beyond 64 bits, unknown types): those take the slow path."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value)


def _ignore(_what: Any) -> None:
    return None


def note_event(session: AsyncSession, event: Event) -> None:
    """Publish `event` (a live event for consoles, see handoff/events.py) once this session's
    transaction commits: publishing earlier would show consoles state not yet visible."""
    session.info.setdefault("events", []).append(event)


class Senders(Protocol):
    """This process's outbox senders, as a committed `transaction()` hands them its new rows
    (installed by the composition root: `Database.on_commit(senders=...)`)."""

    def lease(self, channel: str) -> tuple[timedelta, int] | None:
        """The lease for new rows of `channel` that its sender here takes at the commit
        (`take`), and how many it has room for; None: no sender here, or a full one (the
        rows wait for a claim)."""

    def take(self, channel: str, rows: list[dict[str, Any]]) -> None:
        """Send `rows`: committed outbox rows (with their ids), claimed for this sender."""

    def behind(self, channel: str, chats: set[str]) -> None:
        """New rows wait in `chats` behind rows on their way: claim them once those are done."""


def lease_here(session: AsyncSession, channel: str) -> tuple[timedelta, int] | None:
    """The lease for `channel`'s outbox rows that this process's sender takes as this session's
    transaction commits (`note_handed`), skipping the sender's claim of them, and how many rows
    it takes; None: leave the rows queued for a claim (no sender here, a full one, or a session
    not from `transaction()`, whose commit nobody hands on)."""
    senders: Senders | None = session.info.get("senders")
    return senders.lease(channel) if senders is not None else None


def note_handed(
    session: AsyncSession, channel: str, rows: list[dict[str, Any]], behind: set[str]
) -> None:
    """Hand `rows` (outbox rows inserted leased by `lease_here`, with their ids) to `channel`'s
    sender once this session's transaction commits; `behind`: chats whose new rows wait for
    one on its way (`Senders.behind`)."""
    handed = session.info.setdefault("handed", {}).setdefault(channel, ([], set()))
    handed[0].extend(rows)
    handed[1].update(behind)


def note_wake(session: AsyncSession, channel: str) -> None:
    """Wake `channel`'s outbox sender once this session's transaction commits (dialogs/outgoing.py
    notes it for every message it queues)."""
    session.info.setdefault("wake", set()).add(channel)


class Database:
    """Owns the engine. `transaction()` is the unit of work for writes; `session()` a bare
    session for reads (or for a caller that manages transactions itself)."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            # One connection: SQLite has a single writer anyway, and one connection turns
            # "database is locked" races into an orderly queue of short transactions.
            # Statements run inline on the loop (storage/sqlite_inline.py explains why).
            kwargs.update(pool_size=1, max_overflow=0, pool_timeout=60)
            kwargs["connect_args"] = sqlite_inline.CONNECT_ARGS
        else:
            # A server that accepts but never answers must not hang a connect for asyncpg's 60 s.
            # No pool_pre_ping: `_ping_when_idle` instead.
            kwargs.update(pool_size=10, max_overflow=10, connect_args={"timeout": 10})
        # JSON columns (messages' NLU, outbox bodies, slots) go through orjson: several per turn.
        kwargs.update(json_serializer=json_dumps, json_deserializer=orjson.loads)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            event.listen(self.engine.sync_engine, "checkin", _note_idle)
            event.listen(self.engine.sync_engine, "checkout", _ping_when_idle)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # `statement()`'s sessions: on PostgreSQL in autocommit (same pool; the isolation
        # level is an attribute of asyncpg's adapter, set and reset without a round trip).
        self._statements = (
            self._sessions
            if self.is_sqlite
            else async_sessionmaker(
                self.engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
            )
        )
        self._publish: Callable[[Event], None] = _ignore
        self._wake: Callable[[str], None] = _ignore
        self._senders: Senders | None = None

    def on_commit(
        self,
        *,
        publish: Callable[[Event], None] | None = None,
        wake: Callable[[str], None] | None = None,
        senders: Senders | None = None,
    ) -> None:
        """Install what receives the noted events (the event bus), wake-ups (the outbox
        workers) and new outbox rows (`Senders`) after each committed `transaction()`. All
        must return at once."""
        if publish is not None:
            self._publish = publish
        if wake is not None:
            self._wake = wake
        if senders is not None:
            self._senders = senders

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """`async with db.transaction() as session:` commits at the end (rolls back on an
        exception), then publishes the events and wake-ups noted during it."""
        async with self._sessions() as session:
            if self._senders is not None:  # this commit is handed on (`lease_here`)
                session.info["senders"] = self._senders
            async with session.begin():
                yield session
            self.after_commit(session)

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncSession]:
        """`async with db.statement() as session:` for a write that is one statement (an
        executemany counts as one): on PostgreSQL it is its own implicit transaction, all or
        nothing (asyncpg runs an executemany's rows atomically), without the round trips of
        BEGIN and COMMIT; on SQLite an ordinary transaction (no round trips there). Nothing
        is noted for after the commit: use `transaction()` for that."""
        async with self._statements() as session, session.begin():
            yield session

    def after_commit(self, session: AsyncSession) -> None:
        """Hand what `session` noted to the hooks; for a caller that committed it itself."""
        events: list[Event] = session.info.pop("events", [])
        wakes: set[str] = session.info.pop("wake", set())
        handed: dict[str, tuple[list[dict[str, Any]], set[str]]] = session.info.pop("handed", {})
        if self._senders is not None:
            for channel, (rows, behind) in handed.items():
                if rows:
                    self._senders.take(channel, rows)
                if behind:
                    self._senders.behind(channel, behind)
        for channel in sorted(wakes):
            self._wake(channel)
        for noted in events:
            self._publish(noted)

    async def dispose(self) -> None:
        await self.engine.dispose()


# A pooled connection unused this long is pinged before it is handed out (a server restart or a
# proxy may have dropped it meanwhile). SQLAlchemy's pool_pre_ping pings at every checkout, and
# on asyncpg a ping is three round trips (BEGIN, a statement, ROLLBACK): under load that was
# three more round trips before each turn and each outbox results write than the work itself
# needed. A connection in steady use is not pinged: if the server went away after all, its
# first statement fails as a lost connection, SQLAlchemy invalidates every connection pooled
# before it, and the work is retried (a turn by bots/retry.py or the platform's redelivery).
PING_IDLE_AFTER = 5.0  # seconds
_IDLE_SINCE = "idle since"  # the pool record's info: time.monotonic() at its last checkin


def _note_idle(_dbapi_conn: Any, record: Any) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _ping_when_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    since = record.info.get(_IDLE_SINCE)
    if since is None or time.monotonic() - since < PING_IDLE_AFTER:
        return  # just connected, or in steady use
    try:
        dbapi_conn.ping()
    except Exception as exc:  # the pool replaces the connection and tries again
        raise DisconnectionError(
            f"a pooled connection idle for {time.monotonic() - since:.0f} s is gone ({exc!r})"
        ) from exc


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
