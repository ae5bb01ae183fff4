"""The `supportbot` command: run the bot, the local demo, and database maintenance.

Every failure a person can cause (bad setting, unreachable database, broken content file)
ends in one clear line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from dialogs.yamlsrc import ContentError
from nlu.data import TrainingDataError
from storage.db import DatabaseConfigError
from supportbot import logs
from supportbot.cli_content import add_content_commands
from supportbot.cli_dialogs import add_dialogs_commands
from supportbot.cli_incidents import add_incident_commands
from supportbot.cli_kb import add_kb_commands
from supportbot.cli_nlu import add_nlu_commands
from supportbot.cli_operators import add_operator_commands
from supportbot.cli_rasa import add_rasa_commands
from supportbot.cli_subscribers import add_subscriber_commands
from supportbot.settings import ConfigError, Settings, load_settings

log = logging.getLogger("supportbot")


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "starts_app", False):
        gc.enable()  # paused by supportbot/__main__.py; `run` and `demo` resume it once up
    if not hasattr(args, "func"):
        parser.print_help()
        raise SystemExit(0)
    try:
        settings = load_settings(args.config)
        # Text or JSON lines (SUPPORTBOT_LOG_FORMAT); phone numbers never reach them in clear.
        logs.configure(settings.log_level, settings.log_format)
        func: Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]] = args.func
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            code = runner.run(func(settings, args))
    except (ConfigError, DatabaseConfigError, ContentError, TrainingDataError) as exc:
        print(f"supportbot: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        code = 0
    raise SystemExit(code)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (about twice the network throughput), else the standard loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="supportbot",
        description="Telecom customer-support chatbot for Telegram and VK.",
        epilog="Settings come from SUPPORTBOT_* environment variables (see README).",
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="YAML settings file (secrets stay in env)"
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the bots with the configured tokens",
        description=(
            "Migrate the database, then serve the bots (SUPPORTBOT_TELEGRAM__TOKEN and/or "
            "SUPPORTBOT_VK__TOKEN + SUPPORTBOT_VK__GROUP_ID; polling/Long Poll or webhooks), the "
            "operator console at /console/, /healthz and the integration API on "
            "SUPPORTBOT_HTTP_HOST:SUPPORTBOT_HTTP_PORT, until Ctrl-C or SIGTERM. Every setting: "
            "README, Configuration."
        ),
    )
    run.set_defaults(func=_run, starts_app=True)

    demo = sub.add_parser(
        "demo", help="run local Telegram/VK emulators and both bots, no tokens needed"
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on")
    demo.add_argument("--port", type=int, default=8080, help="app port (emulators: +1, +2)")
    demo.add_argument(
        "--data-dir", type=Path, default=Path("var/demo"), help="where the demo DB lives"
    )
    demo.set_defaults(func=_demo, starts_app=True)

    add_dialogs_commands(sub)
    add_content_commands(sub)
    add_operator_commands(sub)
    add_incident_commands(sub)
    add_nlu_commands(sub)
    add_kb_commands(sub)
    add_rasa_commands(sub)
    add_subscriber_commands(sub)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(title="db commands", metavar="DB_COMMAND")
    up = db_sub.add_parser("upgrade", help="apply migrations up to the latest schema")
    up.set_defaults(func=_db_upgrade)
    cur = db_sub.add_parser("current", help="print the schema revision of the database")
    cur.set_defaults(func=_db_current)
    return parser


async def _run(settings: Settings, _args: argparse.Namespace) -> int:
    from supportbot.app import App, tune_gc

    if settings.telegram.token is None and settings.vk.token is None:
        raise ConfigError(
            "no channel configured: set SUPPORTBOT_TELEGRAM__TOKEN and/or SUPPORTBOT_VK__TOKEN "
            "(or try `supportbot demo`)"
        )
    from supportbot.content_tests import DraftTrials, run_content_tests

    app = App(settings)
    app.content_tests = functools.partial(run_content_tests, settings)  # the console studio's
    app.draft_chats = DraftTrials(settings)  # and its «Попробовать черновик»
    try:
        await app.start()
    except ConfigError:
        await app.stop()
        raise
    except (OSError, DBAPIError) as exc:  # the database is down, unknown, or refuses us
        await app.stop()
        reason = getattr(exc, "orig", None) or exc
        raise ConfigError(f"SUPPORTBOT_DATABASE_URL: cannot use the database: {reason}") from exc
    tune_gc()
    # SIGTERM (how Docker, systemd and Kubernetes stop a process) drains like Ctrl-C: intake
    # stops, replies in flight are sent or released, connections close.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("stopping: draining replies in flight")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await app.stop()
    return 0


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from supportbot.demo import run_demo

    await run_demo(settings, host=args.host, port=args.port, data_dir=args.data_dir)
    return 0


async def _db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from storage import migrate
    from storage.db import Database

    db = Database(settings.database_url)
    try:
        await migrate.upgrade(db)
        print(f"database at revision {await migrate.current(db)}")
    except OSError as exc:
        raise ConfigError(f"SUPPORTBOT_DATABASE_URL: cannot connect: {exc}") from exc
    finally:
        await db.dispose()
    return 0


async def _db_current(settings: Settings, _args: argparse.Namespace) -> int:
    from storage import migrate
    from storage.db import Database

    db = Database(settings.database_url)
    try:
        print(await migrate.current(db) or "empty (run `supportbot db upgrade`)")
    except OSError as exc:
        raise ConfigError(f"SUPPORTBOT_DATABASE_URL: cannot connect: {exc}") from exc
    finally:
        await db.dispose()
    return 0
