"""The pipeline's per-message INSERTs on SQLite, run straight on the session's sqlite3 connection.

Every subscriber message inserts three kinds of rows: its update id (the dedupe), the message
and its replies, and the replies' outbox rows. Through SQLAlchemy each prebuilt statement still
costs ~0.15-0.3 ms of Python (execution context, parameter and result set-up, session
bookkeeping) where SQLite itself takes ~20 us, about a fifth of a turn. Here the same SQL runs on
the same connection, inside the session's transaction, with each value passed through the
column type's own SQLAlchemy bind processor (UTC datetimes, JSON through orjson), so the rows are
exactly those SQLAlchemy would write. PostgreSQL keeps the SQLAlchemy statements (storage/repo.py).
`InsertReturning` also returns the new rows, their values as SQLAlchemy would load them (a first
contact's subscriber, account and conversation: repo.py `NewRow`); `Update` writes one row's
changed columns (repo.py `save_conversation`). `Statement` does the same for a prebuilt UPDATE
run with many parameter sets (the outbox's results), and `Select` for a prebuilt SELECT, its
values through the result processors.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import json_dumps
from storage.sqlite_inline import InlineSQLiteDialect

# The dialect as Database configures it (JSON through orjson), for the columns' processors.
_DIALECT = InlineSQLiteDialect(json_serializer=json_dumps, json_deserializer=orjson.loads)


class Insert:
    """`INSERT INTO table (columns) VALUES (...), ... [suffix]` for rows given as dicts with
    every column's value (callers fill the columns' defaults themselves)."""

    def __init__(self, table: Table, columns: Sequence[str], suffix: str = "") -> None:
        dialect = _DIALECT
        self._columns = tuple(columns)
        self._process: list[Callable[[Any], Any] | None] = [
            table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
        ]
        self._head = f"INSERT INTO {table.name} ({', '.join(self._columns)}) VALUES "
        self._row = "(" + ", ".join("?" * len(self._columns)) + ")"
        self._suffix = f" {suffix}" if suffix else ""

    def values(self, row: Mapping[str, Any]) -> list[Any]:
        if len(row) != len(self._columns):  # a key this statement would silently drop
            unknown = sorted(set(row) - set(self._columns))
            raise ValueError(f"{self._head.split('(')[0]}: no column for {unknown}")
        return [
            row[name] if process is None else process(row[name])
            for name, process in zip(self._columns, self._process, strict=True)
        ]

    @functools.lru_cache(maxsize=16)  # noqa: B019  (a few instances, alive for the process)
    def sql(self, rows: int) -> str:
        return self._head + ", ".join([self._row] * rows) + self._suffix

    async def run(self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> Any:
        """Insert `rows` in one statement in `session`'s transaction; the sqlite3 cursor."""
        params = [value for row in rows for value in self.values(row)]
        return await execute(session, self.sql(len(rows)), params)


class InsertReturning(Insert):
    """An `Insert` that returns each new row's every column (in the table's order), each value
    through its column type's result processor, as SQLAlchemy would load it."""

    def __init__(self, table: Table, columns: Sequence[str], suffix: str = "") -> None:
        every = ", ".join(c.name for c in table.columns)
        super().__init__(table, columns, f"{suffix} RETURNING {every}".strip())
        self._results = [
            c.type.dialect_impl(_DIALECT).result_processor(_DIALECT, None) for c in table.columns
        ]

    async def returning(
        self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]
    ) -> list[list[Any]]:
        """Insert `rows`; the rows inserted (none for a row an ON CONFLICT clause skipped)."""
        process = self._results
        return [
            [v if p is None else p(v) for v, p in zip(row, process, strict=True)]
            for row in await self.run(session, rows)
        ]


async def execute(session: AsyncSession, sql: str, params: Sequence[Any]) -> Any:
    """Run `sql` on `session`'s sqlite3 connection in its transaction; the sqlite3 cursor."""
    return (await _connection(session)).execute(sql, params)


async def _connection(session: AsyncSession) -> Any:
    """`session`'s sqlite3 connection, in its transaction: asked of the session once per
    transaction (each `session.connection()` costs ~40 us of greenlet and bookkeeping, and a
    turn runs four or five statements here), then kept beside a weak reference to the
    transaction, so a later transaction of the same session asks again."""
    if session.new:  # what the ORM would flush before any statement of its own
        await session.flush()
    kept, now = session.info.get(_KEPT), session.sync_session.get_transaction()
    if kept is not None and now is not None and kept[0]() is now:
        return kept[1]
    connection = await session.connection()
    driver = connection.sync_connection.connection.driver_connection  # type: ignore[union-attr]
    session.info[_KEPT] = (weakref.ref(session.sync_session.get_transaction()), driver)
    return driver


_KEPT = "sqlite3 connection"  # session.info's key: (weakref to the transaction, the connection)


class Update:
    """`UPDATE table SET <the columns given> = ? ... WHERE id = ?` for one row, each value
    through its column type's bind processor (the SQL is built once per set of columns)."""

    def __init__(self, table: Table) -> None:
        self._name = table.name
        self._process = {
            c.name: c.type.dialect_impl(_DIALECT).bind_processor(_DIALECT) for c in table.columns
        }

    @functools.lru_cache(maxsize=32)  # noqa: B019  (a few instances, alive for the process)
    def sql(self, columns: tuple[str, ...]) -> str:
        unknown = sorted(set(columns) - set(self._process))
        if unknown:  # a name this table does not have
            raise ValueError(f"UPDATE {self._name}: no column for {unknown}")
        return f"UPDATE {self._name} SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?"

    async def run(self, session: AsyncSession, row_id: int, values: Mapping[str, Any]) -> None:
        params = [
            value if (process := self._process[name]) is None else process(value)
            for name, value in values.items()
        ]
        await execute(session, self.sql(tuple(values)), [*params, row_id])


class Statement:
    """A prebuilt Core statement (no expanding IN) compiled once for SQLite and run with
    `executemany` on the session's connection: for a statement a hot loop runs with many
    parameter sets (the outbox's results). Values go through the bound columns' processors."""

    def __init__(self, statement: Any) -> None:
        dialect = _DIALECT
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        # (name, its value when the statement fixes it, else a marker, processor) in SQL order
        self._binds: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self._binds.append((name, _GIVEN if bind.required else bind.effective_value, process))

    def values(self, params: Mapping[str, Any]) -> list[Any]:
        out = []
        for name, fixed, process in self._binds:
            value = params[name] if fixed is _GIVEN else params.get(name, fixed)
            out.append(value if process is None else process(value))
        return out

    async def run(self, session: AsyncSession, many: Sequence[Mapping[str, Any]]) -> Any:
        """Run the statement once per parameter set, in `session`'s transaction."""
        return (await _connection(session)).executemany(self.sql, [self.values(p) for p in many])


_GIVEN = object()  # a bound parameter each call gives


class Select:
    """A prebuilt Core SELECT compiled once for SQLite, run on the session's connection: rows
    of values as SQLAlchemy would return them (each through its column type's result
    processor: UTC datetimes, JSON), without its result set-up (~0.1-0.2 ms a statement)."""

    def __init__(self, statement: Any) -> None:
        self._statement = Statement(statement)
        self._process = [
            c.type.dialect_impl(_DIALECT).result_processor(_DIALECT, None)
            for c in statement.selected_columns
        ]

    async def all(self, session: AsyncSession, params: Mapping[str, Any]) -> list[list[Any]]:
        cursor = await execute(session, self._statement.sql, self._statement.values(params))
        process = self._process
        return [
            [v if p is None else p(v) for v, p in zip(row, process, strict=True)] for row in cursor
        ]
