"""`supportbot operators ...` as an admin runs it, on SQLite and PostgreSQL: add, list, set,
disable, enable, reset-password, remove; the same rules as the admin page; audit entries by the
`cli` actor naming the OS user; and no command ever waits on a stdin that is not a terminal."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from handoff import auth
from storage.db import Database
from storage.models import AuditEntry, ConsoleSession, Operator
from supportbot.cli import main
from tests.support import ROOT


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run(db: Database, *args: str, cwd: Path, **env: str) -> Result:
    """`supportbot operators ARGS` in a subprocess whose stdin is not a terminal."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    done = subprocess.run(
        [sys.executable, "-m", "supportbot", "operators", *args],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT), "SUPPORTBOT_DATABASE_URL": db.url, **env},
        stdin=subprocess.DEVNULL,  # not a terminal: nothing may wait on it
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def in_process(args: list[str]) -> Result:
    """`supportbot.cli.main` itself, on this worker thread (its own event loop), stdin not a
    terminal. Far quicker than a new interpreter per command."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal
        try:
            main(["operators", *args])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli(db: Database, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Awaitable[Result]]:
    for name in [n for n in os.environ if n.startswith("SUPPORTBOT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SUPPORTBOT_DATABASE_URL", db.url)

    async def call(*args: str, **env: str) -> Result:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return await asyncio.to_thread(in_process, list(args))

    return call


async def operator(db: Database, login: str) -> Operator:
    async with db.session() as s:
        op = await s.scalar(select(Operator).where(Operator.login == login))
        assert op is not None
        return op


async def test_the_operator_commands_and_their_audit_entries(
    db: Database, cli: Callable[..., Awaitable[Result]]
) -> None:
    pw = {"PW": "first-password-1"}
    out = await cli(
        "add", "boss", "--name", "Босс", "--role", "admin", "--groups", "",
        "--password-env", "PW", **pw,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    out = await cli(
        "add", "anna", "--name", "Анна", "--groups", "consult,tech", "--password-env", "PW",
        **pw,
    )  # fmt: skip
    assert out.returncode == 0 and "operator anna (operator, groups consult, tech)" in out.stdout
    async with db.transaction() as s:
        session = await auth.log_in(s, "anna", "first-password-1")

    out = await cli("set", "anna", "--role", "supervisor", "--max-chats", "5")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "operator anna: role operator -> supervisor, max_chats 3 -> 5"
    assert (await cli("set", "anna")).returncode == 2  # nothing to change

    out = await cli("disable", "anna")
    assert out.returncode == 0, out.stderr
    assert (await operator(db, "anna")).disabled_at is not None
    async with db.session() as s:  # her console session is gone: the next request is refused
        assert await auth.session_for(s, session.token) is None
        assert await s.scalar(select(ConsoleSession.id)) is None
    listed = await cli("list")
    assert listed.returncode == 0
    assert [line.split("\t")[-1] for line in listed.stdout.splitlines()] == [
        "offline",
        "disabled",
    ]
    again = await cli("disable", "anna")
    assert again.returncode == 2 and "already disabled" in again.stderr
    assert (await cli("enable", "anna")).returncode == 0

    out = await cli(
        "reset-password", "anna", "--password-env", "NEW",
        NEW="second-password-2",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    async with db.transaction() as s:
        assert (await auth.log_in(s, "anna", "second-password-2")).operator.login == "anna"

    assert (await cli("remove", "anna", "--yes")).returncode == 0
    gone = await operator(db, "anna")
    assert gone.password_hash == auth.REMOVED_HASH and gone.name == "Анна"
    listed = await cli("list")
    assert listed.stdout.splitlines()[1].endswith("\tremoved")
    # the last admin stays; an unknown login is one clear line
    last = await cli("remove", "boss", "--yes")
    assert last.returncode == 2 and "last active admin" in last.stderr
    unknown = await cli("disable", "nobody")
    assert unknown.returncode == 2 and "no operator 'nobody'" in unknown.stderr
    assert "Traceback" not in last.stderr + unknown.stderr

    async with db.session() as s:
        entries = (await s.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    anna = gone.id
    assert [(e.action, e.details["target_id"]) for e in entries] == [
        ("operator_added", (await operator(db, "boss")).id),
        ("operator_added", anna),
        ("operator_changed", anna),
        ("operator_disabled", anna),
        ("operator_enabled", anna),
        ("password_reset", anna),
        ("operator_removed", anna),
    ]
    assert {(e.actor, e.operator_id, e.ip) for e in entries} == {("cli", None, None)}
    assert all(e.details["os_user"] for e in entries)
    assert "first-password" not in repr([e.details for e in entries])


async def test_passwords_come_from_a_terminal_or_an_environment_variable(
    db: Database, cli: Callable[..., Awaitable[Result]]
) -> None:
    nobody = await cli("list")
    assert (nobody.returncode, nobody.stdout) == (0, "")
    asked = await cli("add", "vera", "--name", "Вера")
    assert asked.returncode == 2 and "use --password-env VAR" in asked.stderr
    reset = await cli("reset-password", "vera")
    assert reset.returncode == 2 and "use --password-env VAR" in reset.stderr
    empty = await cli("reset-password", "vera", "--password-env", "NOPE")
    assert empty.returncode == 2 and "NOPE: the environment variable is empty" in empty.stderr
    short = await cli("add", "vera", "--name", "Вера", "--password-env", "PW", PW="short")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    unknown = await cli("add", "vera", "--name", "Вера", "--groups", "vip", "--password-env", "PW")
    assert unknown.returncode == 2 and "unknown group 'vip'" in unknown.stderr
    remove = await cli("remove", "vera")
    assert remove.returncode == 2 and "add --yes" in remove.stderr
    async with db.session() as s:
        assert await s.scalar(select(Operator.id)) is None


async def test_no_command_waits_on_a_stdin_that_is_not_a_terminal(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """Real processes with stdin from /dev/null (SQLite only: no database work happens)."""
    db = sqlite_db

    async def arun(db: Database, *args: str, cwd: Path, **env: str) -> Result:
        return await asyncio.to_thread(run, db, *args, cwd=cwd, **env)

    asked = await arun(db, "add", "vera", "--name", "Вера", cwd=tmp_path)
    assert asked.returncode == 2 and "--password-env" in asked.stderr
    remove = await arun(db, "remove", "vera", cwd=tmp_path)
    assert remove.returncode == 2 and "--yes" in remove.stderr
    async with db.session() as s:
        assert await s.scalar(select(Operator.id)) is None
