"""`supportbot operators ...`: create and list the people who answer handed-off chats."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from supportbot.settings import ConfigError, Settings


def add_operator_commands(sub: Any) -> None:
    ops = sub.add_parser("operators", help="operator accounts for the console")
    o_sub = ops.add_subparsers(title="operators commands", metavar="OPERATORS_COMMAND")
    add = o_sub.add_parser("add", help="create an operator (asks for the password)")
    add.add_argument("login")
    add.add_argument("--name", required=True, help="shown to subscribers: «К чату подключился ...»")
    add.add_argument(
        "--role", default="operator", choices=["operator", "supervisor", "editor", "admin"]
    )
    add.add_argument(
        "--groups", default="consult", help="comma-separated skill groups (default: consult)"
    )
    add.add_argument("--max-chats", type=int, default=None, help="concurrent chats (default: 3)")
    add.add_argument("--telegram-user-id", help="their Telegram id, for the operator group")
    add.add_argument(
        "--password-env",
        metavar="VAR",
        help="read the password from this environment variable instead of asking",
    )
    add.set_defaults(func=_add)
    ls = o_sub.add_parser("list", help="print operators")
    ls.set_defaults(func=_list)


async def _add(settings: Settings, args: argparse.Namespace) -> int:
    from handoff.auth import AuthError, add_operator
    from storage import migrate
    from storage.db import Database

    if args.password_env:
        password = os.environ.get(args.password_env)
        if not password:
            raise ConfigError(f"{args.password_env}: the environment variable is empty")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.login}: ")
    else:
        raise ConfigError("no terminal to ask for the password: use --password-env VAR")
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = [g for g in groups if g not in settings.skill_groups]
    if unknown:
        raise ConfigError(
            f"--groups: unknown group {unknown[0]!r} (SUPPORTBOT_SKILL_GROUPS: "
            f"{', '.join(settings.skill_groups)})"
        )
    db = Database(settings.database_url)
    try:
        await migrate.upgrade(db)
        async with db.session() as session, session.begin():
            op = await add_operator(
                session,
                login=args.login,
                name=args.name,
                password=password,
                role=args.role,
                groups=groups,
                max_chats=args.max_chats or settings.handoff.max_chats,
                telegram_user_id=args.telegram_user_id,
            )
            print(f"operator {op.login} ({op.role}, groups {', '.join(groups)}) created")
    except AuthError as exc:
        print(f"supportbot: {exc}", file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    return 0


async def _list(settings: Settings, _args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from storage.db import Database
    from storage.models import Operator

    db = Database(settings.database_url)
    try:
        async with db.session() as session:
            for op in (await session.scalars(select(Operator).order_by(Operator.id))).all():
                groups = ",".join(op.groups)
                print(
                    f"{op.login}\t{op.name}\t{op.role}\t{groups}\tmax {op.max_chats}\t{op.status}"
                )
    finally:
        await db.dispose()
    return 0
