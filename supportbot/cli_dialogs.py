"""`supportbot dialogs ...` (check and test the content) and `supportbot tickets ...`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dialogs.yamlsrc import ContentError
from nlu.data import load_training_data
from supportbot.settings import Settings


def add_dialogs_commands(sub: Any) -> None:
    dialogs = sub.add_parser("dialogs", help="validate and test the dialog content")
    d_sub = dialogs.add_subparsers(title="dialogs commands", metavar="DIALOGS_COMMAND")

    val = d_sub.add_parser(
        "validate",
        help="check content/dialogs against the NLU intents; print file:line:col: problems",
    )
    val.add_argument("--content", type=Path, help="content folder (default: settings)")
    val.set_defaults(func=_validate)

    test = d_sub.add_parser(
        "test",
        help="run the conversation tests (content/tests) through the emulators and both bots",
    )
    test.add_argument("files", nargs="*", type=Path, help="story files (default: content/tests)")
    test.add_argument("--content", type=Path, help="content folder (default: settings)")
    test.add_argument(
        "--channel", choices=["telegram", "vk"], action="append", help="only this channel"
    )
    test.add_argument("-k", dest="keyword", help="only stories whose name contains this")
    test.set_defaults(func=_test)

    tickets = sub.add_parser("tickets", help="list and resolve tickets the bot created")
    t_sub = tickets.add_subparsers(title="tickets commands", metavar="TICKETS_COMMAND")
    ls = t_sub.add_parser("list", help="print tickets (open ones by default)")
    ls.add_argument("--all", action="store_true", help="resolved ones too")
    ls.set_defaults(func=_tickets_list)
    res = t_sub.add_parser(
        "resolve", help="resolve a ticket; the subscriber is told RESULT in their channel"
    )
    res.add_argument("number", help="ticket number, e.g. C-000012")
    res.add_argument("result", help="what was done, as the subscriber should read it")
    res.set_defaults(func=_tickets_resolve)


def _content_dir(settings: Settings, args: argparse.Namespace) -> Path:
    return args.content or settings.content_dir


async def _validate(settings: Settings, args: argparse.Namespace) -> int:
    from supportbot.content_setup import configured_content

    content_dir = _content_dir(settings, args)
    intents = load_training_data([content_dir / "nlu"]).intents
    try:
        content = configured_content(settings, content_dir)
    except ContentError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        errors = sum(not p.warning for p in exc.problems)
        print(f"{errors} problem(s) in {content_dir}", file=sys.stderr)
        return 1
    for warning in content.warnings:
        print(warning, file=sys.stderr)
    print(
        f"ok: {len(content.flows)} flows, {len(content.responses)} responses, "
        f"{len(content.slots)} slots, {len(content.articles)} knowledge-base articles; "
        f"every intent of {len(intents)} has a flow"
    )
    return 0


async def _test(settings: Settings, args: argparse.Namespace) -> int:
    from dialogs.storytests import load_stories, story_files
    from supportbot.storydriver import report, run_stories

    content_dir = _content_dir(settings, args)
    files = args.files or story_files(content_dir)
    stories = load_stories(files, content_dir.parent)
    if args.keyword:
        stories = [s for s in stories if args.keyword.lower() in s.name.lower()]
    if not stories:
        print("no conversation tests found", file=sys.stderr)
        return 1
    run_settings = settings.model_copy(update={"content_dir": content_dir})
    channels = tuple(args.channel or ("telegram", "vk"))
    outcomes = await run_stories(run_settings, stories, channels=channels)
    print(report(outcomes))
    return 0 if all(o.ok for o in outcomes) else 1


async def _tickets_list(settings: Settings, args: argparse.Namespace) -> int:
    from services.tickets import list_tickets
    from storage.db import Database

    db = Database(settings.database_url)
    try:
        async with db.session() as s:
            tickets = await list_tickets(s, status=None if args.all else "open")
        for t in tickets:
            print(f"{t.number}\t{t.kind}\t{t.status}\tdue {t.due_at:%Y-%m-%d %H:%M}Z\t{t.details}")
        if not tickets:
            print("no tickets" if args.all else "no open tickets")
    finally:
        await db.dispose()
    return 0


async def _tickets_resolve(settings: Settings, args: argparse.Namespace) -> int:
    from services.tickets import TicketError, resolve_ticket
    from storage.db import Database
    from supportbot.content_setup import configured_content

    content = configured_content(settings)
    db = Database(settings.database_url)
    try:
        done = await resolve_ticket(db, content, args.number, args.result)
    except TicketError as exc:
        print(f"supportbot: {exc}", file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    print(f"{done.number} resolved; the subscriber is notified in {done.channel}")
    return 0
