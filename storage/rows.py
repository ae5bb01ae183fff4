"""The pipeline's hot statements straight on the driver's connection: sqlite3 or asyncpg.

Every subscriber message runs the same few statements: its update id (the dedupe), its account
and open chats, the message and its replies, the replies' outbox rows, and later the outbox's
results. Through SQLAlchemy each prebuilt statement still costs ~0.15-0.3 ms of Python
(execution context, parameter and result set-up, session bookkeeping, and on asyncpg a greenlet
switch each way) where SQLite itself takes ~20 us: on PostgreSQL its frames were 46% of the
process under load (README, issue 18). Here the same SQL runs on the same connection, inside the
session's transaction, each value through its column type's bind processor for the engine's
dialect (UTC datetimes, JSON through orjson), so the rows are exactly those SQLAlchemy would
write; values read back go through the result processors, as SQLAlchemy would load them.

- SQLite (storage/sqlite_inline.py): the sqlite3 connection, inline on the loop.
- PostgreSQL: SQLAlchemy's own asyncpg adapter (its prepared-statement cache, its transaction,
  begun lazily on the first statement, and its error translation), minus the engine's layers.

A driver error is raised as SQLAlchemy's (`DBAPIError.instance`), so `storage.db.transient`
judges it as any statement's, and a lost connection is invalidated, as SQLAlchemy would.

`Insert` writes rows given as dicts (and returns columns if asked: a first contact's rows as
repo.py `NewRow` loads them); `Update` one row's changed columns (repo.py `save_conversation`);
`Statement` a prebuilt Core statement, run with many parameter sets (the outbox's results);
`Select` a prebuilt Core SELECT.
"""

from __future__ import annotations

import abc
import functools
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

Process = Callable[[Any], Any] | None


class Result(NamedTuple):
    rows: list[Any]  # each a sequence of column values (driver rows or lists)
    rowcount: int


async def execute(session: AsyncSession, sql: str, params: Sequence[Any]) -> Result:
    """Run `sql` (in the dialect's paramstyle: `?` on SQLite, `$1` on PostgreSQL) in
    `session`'s transaction; the rows it returns, unprocessed, and how many it changed."""
    return await (await _driver(session)).execute(sql, params)


def marks(dialect: Dialect, first: int, count: int) -> list[str]:
    """`count` positional parameter markers, numbered from `first` (1-based) where numbered."""
    if dialect.paramstyle == "qmark":
        return ["?"] * count
    if dialect.paramstyle == "numeric_dollar":
        return [f"${n}" for n in range(first, first + count)]
    raise ValueError(f"storage.rows: paramstyle {dialect.paramstyle!r} is not supported")


def _processors(table: Table, dialect: Dialect, columns: Sequence[str]) -> list[Process]:
    return [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in columns]


def _readers(columns: Sequence[Any], dialect: Dialect) -> list[Process]:
    return [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]


def _loaded(rows: list[Any], readers: list[Process]) -> list[Any]:
    """`rows` with each value through its column's result processor."""
    if not any(readers):
        return rows
    return [[v if p is None else p(v) for v, p in zip(row, readers, strict=True)] for row in rows]


class Insert:
    """`INSERT INTO table (columns) VALUES (...), ... [suffix] [RETURNING returning]` for rows
    given as dicts with every column's value (callers fill the columns' defaults themselves).
    The rows a RETURNING gives come back as SQLAlchemy would load them (`Result.rows`); a
    multi-row INSERT numbers its new rows in VALUES order on both databases (SQLite serialises
    writers; PostgreSQL evaluates a VALUES list in order), so ascending ids are the rows' order."""

    def __init__(
        self,
        table: Table,
        columns: Sequence[str],
        suffix: str = "",
        returning: Sequence[str] = (),
    ) -> None:
        self._table = table
        self._columns = tuple(columns)
        self._returning = tuple(returning)
        unknown = sorted(set(self._columns + self._returning) - set(table.c.keys()))
        if unknown:
            raise ValueError(f"INSERT INTO {table.name}: no column for {unknown}")
        self._head = f"INSERT INTO {table.name} ({', '.join(self._columns)}) VALUES "
        self._tail = "".join(
            [
                f" {suffix}" if suffix else "",
                f" RETURNING {', '.join(returning)}" if returning else "",
            ]
        )
        self._by_dialect: dict[str, tuple[list[Process], list[Process]]] = {}

    def _plan(self, dialect: Dialect) -> tuple[list[Process], list[Process]]:
        plan = self._by_dialect.get(dialect.name)
        if plan is None:
            binds = _processors(self._table, dialect, self._columns)
            reads = _readers([self._table.c[n] for n in self._returning], dialect)
            plan = self._by_dialect[dialect.name] = (binds, reads)
        return plan

    def values(self, dialect: Dialect, row: Mapping[str, Any]) -> list[Any]:
        if len(row) != len(self._columns):  # a key this statement would silently drop
            unknown = sorted(set(row) - set(self._columns))
            raise ValueError(f"INSERT INTO {self._table.name}: no column for {unknown}")
        return [
            row[name] if process is None else process(row[name])
            for name, process in zip(self._columns, self._plan(dialect)[0], strict=True)
        ]

    @functools.lru_cache(maxsize=32)  # noqa: B019  (a few instances, alive for the process)
    def sql(self, dialect: Dialect, rows: int) -> str:
        width = len(self._columns)
        groups = [f"({', '.join(marks(dialect, 1 + i * width, width))})" for i in range(rows)]
        return self._head + ", ".join(groups) + self._tail

    async def run(self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> Result:
        """Insert `rows` in one statement in `session`'s transaction."""
        driver = await _driver(session)
        dialect = driver.dialect
        params = [value for row in rows for value in self.values(dialect, row)]
        result = await driver.execute(self.sql(dialect, len(rows)), params)
        if not self._returning:
            return result
        return Result(_loaded(result.rows, self._plan(dialect)[1]), result.rowcount)


class Update:
    """`UPDATE table SET <the columns given> = ... WHERE id = ...` for one row, each value
    through its column type's bind processor (the SQL is built once per set of columns)."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._by_dialect: dict[str, dict[str, Process]] = {}

    @functools.lru_cache(maxsize=64)  # noqa: B019  (a few instances, alive for the process)
    def sql(self, dialect: Dialect, columns: tuple[str, ...]) -> str:
        unknown = sorted(set(columns) - set(self._table.c.keys()))
        if unknown:  # a name this table does not have
            raise ValueError(f"UPDATE {self._table.name}: no column for {unknown}")
        *placed, key = marks(dialect, 1, len(columns) + 1)
        sets = ", ".join(f"{c} = {m}" for c, m in zip(columns, placed, strict=True))
        return f"UPDATE {self._table.name} SET {sets} WHERE id = {key}"

    async def run(self, session: AsyncSession, row_id: int, values: Mapping[str, Any]) -> None:
        driver = await _driver(session)
        dialect = driver.dialect
        binds = self._by_dialect.get(dialect.name)
        if binds is None:
            names = list(self._table.c.keys())
            binds = self._by_dialect[dialect.name] = dict(
                zip(names, _processors(self._table, dialect, names), strict=True)
            )
        params = [
            value if (process := binds.get(name)) is None else process(value)
            for name, value in values.items()
        ]
        await driver.execute(self.sql(dialect, tuple(values)), [*params, row_id])


class _Compiled(NamedTuple):
    sql: str
    # (name, its value when the statement fixes it, else _GIVEN, processor) in parameter order
    binds: list[tuple[str, Any, Process]]
    readers: list[Process]


_GIVEN = object()  # a bound parameter each call gives


class Statement:
    """A prebuilt Core statement (no expanding IN) compiled once per dialect and run on the
    session's connection; values go through the bound columns' processors. `run` runs it once
    per parameter set (executemany: the outbox's results)."""

    def __init__(self, statement: Any) -> None:
        self._statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is not None:
            return found
        compiled = self._statement.compile(dialect=dialect)
        binds = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            binds.append((name, _GIVEN if bind.required else bind.effective_value, process))
        selected = getattr(self._statement, "selected_columns", ())
        found = _Compiled(compiled.string, binds, _readers(selected, dialect))
        self._by_dialect[dialect.name] = found
        return found

    def values(self, dialect: Dialect, params: Mapping[str, Any]) -> list[Any]:
        out = []
        for name, fixed, process in self.compiled(dialect).binds:
            value = params[name] if fixed is _GIVEN else params.get(name, fixed)
            out.append(value if process is None else process(value))
        return out

    async def run(self, session: AsyncSession, many: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per parameter set, in `session`'s transaction."""
        driver = await _driver(session)
        sql = self.compiled(driver.dialect).sql
        await driver.executemany(sql, [self.values(driver.dialect, p) for p in many])


class Select(Statement):
    """A prebuilt Core SELECT: rows of values as SQLAlchemy would return them (each through
    its column type's result processor: UTC datetimes, JSON), without its result set-up."""

    async def all(self, session: AsyncSession, params: Mapping[str, Any]) -> list[Any]:
        driver = await _driver(session)
        compiled = self.compiled(driver.dialect)
        result = await driver.execute(compiled.sql, self.values(driver.dialect, params))
        return _loaded(result.rows, compiled.readers)


# -- the drivers -------------------------------------------------------------------------------


class _Driver(abc.ABC):
    """A transaction's connection, as its driver sees it."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self.dialect: Dialect = connection.dialect
        # sqlite3's connection, or SQLAlchemy's adapter around asyncpg's
        self.dbapi_connection: Any = connection.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]

    @abc.abstractmethod
    async def execute(self, sql: str, params: Sequence[Any]) -> Result: ...

    @abc.abstractmethod
    async def executemany(self, sql: str, many: Sequence[Sequence[Any]]) -> None: ...

    async def _raise(self, exc: Exception, sql: str, params: Any, cursor: Any) -> None:
        """Raise a driver's error as SQLAlchemy raises it. A lost connection is invalidated
        with every connection pooled before it (engine/base.py `_handle_dbapi_exception`:
        after a server restart they are all dead, so each is replaced at its next checkout
        instead of failing one more transaction)."""
        dialect = self.dialect
        lost = dialect.is_disconnect(exc, self.dbapi_connection, cursor)  # type: ignore[arg-type]
        if lost:
            fairy = self.connection.sync_connection.connection  # type: ignore[union-attr]
            self.connection.sync_engine.pool._invalidate(fairy, exc, _checkin=False)
            await self.connection.invalidate(exc)
        raise DBAPIError.instance(
            sql,
            params,
            exc,
            dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=dialect,
        ) from exc


class _SQLite(_Driver):
    async def execute(self, sql: str, params: Sequence[Any]) -> Result:
        cursor = self.dbapi_connection.cursor()
        try:
            rows = cursor.execute(sql, params).fetchall()
        except self.dialect.loaded_dbapi.Error as exc:
            await self._raise(exc, sql, params, cursor)
        return Result(rows, cursor.rowcount)

    async def executemany(self, sql: str, many: Sequence[Sequence[Any]]) -> None:
        cursor = self.dbapi_connection.cursor()
        try:
            cursor.executemany(sql, many)
        except self.dialect.loaded_dbapi.Error as exc:
            await self._raise(exc, sql, many, cursor)


class _Asyncpg(_Driver):
    """Through SQLAlchemy's asyncpg adapter's cursor: the statement is prepared once per
    connection (the adapter's cache), the transaction begun as the adapter begins it, and an
    asyncpg error translated to the adapter's DBAPI classes."""

    async def execute(self, sql: str, params: Sequence[Any]) -> Result:
        cursor = self.dbapi_connection.cursor()
        try:
            await cursor._prepare_and_execute(sql, params)
        except self.dialect.loaded_dbapi.Error as exc:
            await self._raise(exc, sql, params, cursor)
        return Result(list(cursor._rows), cursor.rowcount)

    async def executemany(self, sql: str, many: Sequence[Sequence[Any]]) -> None:
        cursor = self.dbapi_connection.cursor()
        try:
            await cursor._executemany(sql, many)
        except self.dialect.loaded_dbapi.Error as exc:
            await self._raise(exc, sql, many, cursor)


_DRIVERS: dict[str, type[_Driver]] = {"sqlite": _SQLite, "postgresql": _Asyncpg}
_KEPT = "rows driver"  # session.info's key: (weakref to the transaction, its _Driver)


async def _driver(session: AsyncSession) -> _Driver:
    """`session`'s connection, in its transaction: asked of the session once per transaction
    (each `session.connection()` costs ~40 us of greenlet and bookkeeping, and a turn runs
    four or five statements here), then kept beside a weak reference to the transaction, so a
    later transaction of the same session asks again."""
    if session.new:  # what the ORM would flush before any statement of its own
        await session.flush()
    kept, now = session.info.get(_KEPT), session.sync_session.get_transaction()
    if kept is not None and now is not None and kept[0]() is now:
        return kept[1]
    connection = await session.connection()
    kind = _DRIVERS.get(connection.dialect.name)
    if kind is None:
        raise ValueError(f"storage.rows: no driver for {connection.dialect.name}")
    driver = kind(connection)
    session.info[_KEPT] = (weakref.ref(session.sync_session.get_transaction()), driver)
    return driver
