"""`supportbot operators ...`: the people who answer handed-off chats, from the command line.

`add`, `list`, `set` (name, role, groups, seats), `disable`, `enable`, `remove`,
`reset-password`. The rules and the audit entries are `handoff.auth`'s (the admin page at
`/console/operators` calls the same functions); here every entry names the actor `cli` and the
OS user who ran the command. A password comes from a prompt on a terminal or from
`--password-env VAR`; without a terminal and without `--password-env` the command stops at once
with a clear line (it never waits on stdin). `remove` asks for confirmation on a terminal;
elsewhere it needs `--yes`.

A disabled or removed operator's console sessions are deleted at once: their next request is
refused. Open WebSockets close within `handoff.console.live.RECHECK_SECONDS` (the running app
re-checks them; the CLI can't reach its event bus).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from supportbot.settings import ConfigError, Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from handoff.auth import Actor

ROLES = ["operator", "supervisor", "editor", "admin"]


def add_operator_commands(sub: Any) -> None:
    ops = sub.add_parser("operators", help="operator accounts for the console")
    o_sub = ops.add_subparsers(title="operators commands", metavar="OPERATORS_COMMAND")
    add = o_sub.add_parser("add", help="create an operator (asks for the password)")
    add.add_argument("login")
    add.add_argument("--name", required=True, help="shown to subscribers: «К чату подключился ...»")
    add.add_argument("--role", default="operator", choices=ROLES)
    add.add_argument(
        "--groups", default="consult", help="comma-separated skill groups (default: consult)"
    )
    add.add_argument("--max-chats", type=int, default=None, help="concurrent chats (default: 3)")
    add.add_argument("--telegram-user-id", help="their Telegram id, for the operator group")
    _password_env(add)
    add.set_defaults(func=_add)

    ls = o_sub.add_parser("list", help="print operators (disabled and removed ones marked)")
    ls.set_defaults(func=_list)

    change = o_sub.add_parser("set", help="change an operator's name, role, groups or seats")
    change.add_argument("login")
    change.add_argument("--name")
    change.add_argument("--role", choices=ROLES)
    change.add_argument("--groups", help="comma-separated skill groups ('' for none)")
    change.add_argument("--max-chats", type=int)
    change.set_defaults(func=_set)

    disable = o_sub.add_parser(
        "disable", help="stop an operator logging in; ends their sessions, requeues their chats"
    )
    disable.add_argument("login")
    disable.set_defaults(func=_disable)

    enable = o_sub.add_parser("enable", help="let a disabled operator log in again")
    enable.add_argument("login")
    enable.set_defaults(func=_enable)

    remove = o_sub.add_parser(
        "remove", help="remove an operator for good (their name stays in chat history)"
    )
    remove.add_argument("login")
    remove.add_argument("--yes", action="store_true", help="don't ask for confirmation")
    remove.set_defaults(func=_remove)

    reset = o_sub.add_parser(
        "reset-password", help="set a new password (asks for it); ends their sessions"
    )
    reset.add_argument("login")
    _password_env(reset)
    reset.set_defaults(func=_reset)


def _password_env(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-env",
        metavar="VAR",
        help="read the password from this environment variable instead of asking",
    )


def _password(args: argparse.Namespace) -> str:
    if args.password_env:
        password = os.environ.get(args.password_env)
        if not password:
            raise ConfigError(f"{args.password_env}: the environment variable is empty")
        return password
    if not sys.stdin.isatty():
        raise ConfigError("no terminal to ask for the password: use --password-env VAR")
    password = getpass.getpass(f"password for {args.login}: ")
    if getpass.getpass("again: ") != password:
        raise ConfigError("the two passwords differ")
    return password


def _groups(settings: Settings, raw: str) -> list[str]:
    groups = [g.strip() for g in raw.split(",") if g.strip()]
    unknown = [g for g in groups if g not in settings.skill_groups]
    if unknown:
        raise ConfigError(
            f"--groups: unknown group {unknown[0]!r} (SUPPORTBOT_SKILL_GROUPS: "
            f"{', '.join(settings.skill_groups)})"
        )
    return groups


def cli_actor() -> Actor:
    from handoff.auth import Actor

    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment (some containers)
        user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return Actor(kind="cli", details={"os_user": user})


async def _in_transaction(
    settings: Settings, work: Callable[[AsyncSession], Awaitable[str]]
) -> int:
    """Runs `work` in one transaction on a migrated database; prints its line, or the refusal
    (exit code 2)."""
    from handoff.auth import AuthError
    from storage import migrate
    from storage.db import Database

    db = Database(settings.database_url)
    try:
        await migrate.upgrade(db)
        async with db.transaction() as session:
            done = await work(session)
        print(done)
    except AuthError as exc:
        print(f"supportbot: {exc}", file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    return 0


async def _add(settings: Settings, args: argparse.Namespace) -> int:
    from handoff.auth import add_operator

    password = _password(args)
    groups = _groups(settings, args.groups)

    async def work(session: AsyncSession) -> str:
        op = await add_operator(
            session,
            login=args.login,
            name=args.name,
            password=password,
            role=args.role,
            groups=groups,
            max_chats=args.max_chats or settings.handoff.max_chats,
            telegram_user_id=args.telegram_user_id,
            by=cli_actor(),
        )
        return f"operator {op.login} ({op.role}, groups {', '.join(groups)}) created"

    return await _in_transaction(settings, work)


async def _list(settings: Settings, _args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from handoff.auth import state_of
    from storage import migrate
    from storage.db import Database
    from storage.models import Operator

    db = Database(settings.database_url)
    try:
        await migrate.upgrade(db)  # a new database lists nobody (not a traceback)
        async with db.session() as session:
            for op in (await session.scalars(select(Operator).order_by(Operator.id))).all():
                groups = ",".join(op.groups)
                state = state_of(op)
                print(
                    f"{op.login}\t{op.name}\t{op.role}\t{groups}\tmax {op.max_chats}\t{op.status}"
                    + ("" if state == "active" else f"\t{state}")
                )
    finally:
        await db.dispose()
    return 0


async def _set(settings: Settings, args: argparse.Namespace) -> int:
    from handoff.auth import update_operator

    groups = _groups(settings, args.groups) if args.groups is not None else None
    if args.name is None and args.role is None and groups is None and args.max_chats is None:
        raise ConfigError("nothing to change: give --name, --role, --groups or --max-chats")

    async def work(session: AsyncSession) -> str:
        changes = await update_operator(
            session,
            args.login,
            by=cli_actor(),
            name=args.name,
            role=args.role,
            groups=groups,
            max_chats=args.max_chats,
        )
        if not changes:
            return f"operator {args.login}: nothing changed"
        said = ", ".join(f"{key} {old} -> {new}" for key, (old, new) in changes.items())
        return f"operator {args.login}: {said}"

    return await _in_transaction(settings, work)


async def _disable(settings: Settings, args: argparse.Namespace) -> int:
    from handoff.auth import disable_operator

    async def work(session: AsyncSession) -> str:
        await disable_operator(session, args.login, by=cli_actor())
        return f"operator {args.login} disabled: sessions ended, chats back in the queue"

    return await _in_transaction(settings, work)


async def _enable(settings: Settings, args: argparse.Namespace) -> int:
    from handoff.auth import enable_operator

    async def work(session: AsyncSession) -> str:
        await enable_operator(session, args.login, by=cli_actor())
        return f"operator {args.login} enabled"

    return await _in_transaction(settings, work)


async def _remove(settings: Settings, args: argparse.Namespace) -> int:
    from handoff.auth import remove_operator

    if not args.yes:
        if not sys.stdin.isatty():
            raise ConfigError("no terminal to confirm the removal: add --yes")
        answer = await asyncio.to_thread(input, f"remove operator {args.login} for good? [y/N] ")
        if answer.strip().lower() not in ("y", "yes", "д", "да"):
            print("not removed")
            return 1

    async def work(session: AsyncSession) -> str:
        await remove_operator(session, args.login, by=cli_actor())
        return f"operator {args.login} removed (their name stays in chat history)"

    return await _in_transaction(settings, work)


async def _reset(settings: Settings, args: argparse.Namespace) -> int:
    from handoff.auth import reset_password

    password = _password(args)

    async def work(session: AsyncSession) -> str:
        await reset_password(session, args.login, password, by=cli_actor())
        return f"operator {args.login}: password changed, sessions ended"

    return await _in_transaction(settings, work)
