"""`supportbot subscribers export|erase` and `supportbot retention run`: personal-data duties
(152-ФЗ) from the command line. services/privacy/ does the work; every run is in the audit log
(actor `cli`, with the OS user).

- `subscribers export <who> [--out FILE]`: everything kept about a person, as JSON (stdout, or a
  file only its owner can read);
- `subscribers erase <who> [--yes]`: asks for confirmation on a terminal; without one and
  without `--yes` it refuses (exit 2), so a script never blocks on a prompt or erases by
  accident;
- `retention run [--full]`: one retention pass now (the app runs one every
  SUPPORTBOT_RETENTION__INTERVAL).

`<who>`: `id:17`, a phone, `account:1234567`, `telegram:<user id>`, `vk:<user id>` (bare digits
try id, phone and account). Nobody found, or two people, is exit 2 with one line.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supportbot.settings import ConfigError, Settings

if TYPE_CHECKING:
    from services.privacy import Person, Summary
    from storage.db import Database

WHO_HELP = "id:17, a phone, account:<number>, telegram:<user id> or vk:<user id>"


def add_subscriber_commands(sub: Any) -> None:
    subs = sub.add_parser(
        "subscribers", help="personal data of a subscriber: export (subject access), erase"
    )
    s_sub = subs.add_subparsers(title="subscribers commands", metavar="SUBSCRIBERS_COMMAND")
    export = s_sub.add_parser("export", help="print everything kept about a person as JSON")
    export.add_argument("who", help=WHO_HELP)
    export.add_argument(
        "--out", type=Path, default=None, help="write the JSON to this file (mode 0600)"
    )
    export.set_defaults(func=_export)
    erase = s_sub.add_parser(
        "erase", help="erase a person's personal data (asks first; --yes to skip)"
    )
    erase.add_argument("who", help=WHO_HELP)
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    erase.set_defaults(func=_erase)

    ret = sub.add_parser("retention", help="personal-data retention (SUPPORTBOT_RETENTION__*)")
    r_sub = ret.add_subparsers(title="retention commands", metavar="RETENTION_COMMAND")
    run = r_sub.add_parser("run", help="run one retention pass now")
    run.add_argument(
        "--full",
        action="store_true",
        help="check every old message, not only those aged since the last pass",
    )
    run.set_defaults(func=_retention)


def uploads_dir(settings: Settings) -> Path:
    """Where the console keeps operator uploads (handoff/console/app.py: data_dir/uploads)."""
    return (Path(settings.data_dir) / "uploads").resolve()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


async def _database(settings: Settings) -> Database:
    from storage import migrate
    from storage.db import Database

    db = Database(settings.database_url)
    try:
        await migrate.upgrade(db)
    except OSError as exc:
        await db.dispose()
        raise ConfigError(f"SUPPORTBOT_DATABASE_URL: cannot connect: {exc}") from exc
    return db


async def _find(db: Database, who: str) -> tuple[Person, Summary] | None:
    """The person and their summary; None after printing why there is none."""
    from services.privacy import AmbiguousPerson, PersonNotFound, find_person, summarise

    async with db.session() as session:
        try:
            person = await find_person(session, who)
        except (PersonNotFound, AmbiguousPerson) as exc:
            print(f"supportbot: {exc}", file=sys.stderr)
            return None
        return person, await summarise(session, person)


def describe(s: Summary) -> str:
    ids = ", ".join(str(i) for i in s.subscriber_ids)
    channels = (
        ", ".join(
            f"{c['channel']}" + (f" @{c['username']}" if c["username"] else "") for c in s.channels
        )
        or "-"
    )
    lines = [
        f"subscriber {s.primary}" + (f" (with merged {ids})" if len(s.subscriber_ids) > 1 else ""),
        f"  name: {', '.join(s.names) or '-'}; phone: {s.phone or '-'}; "
        f"account: {s.account_number or '-'}",
        f"  channels: {channels}",
        f"  conversations {s.conversations}, messages {s.messages}, tickets {s.tickets}, "
        f"verifications {s.verifications}",
    ]
    if s.erased_at is not None:
        lines.append(f"  already erased at {s.erased_at:%Y-%m-%d %H:%M}Z")
    return "\n".join(lines)


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    from services import audit
    from services.privacy import export_person

    db = await _database(settings)
    try:
        found = await _find(db, args.who)
        if found is None:
            return 2
        person, _summary = found
        async with db.transaction() as session:
            data = await export_person(session, person, uploads=uploads_dir(settings))
            audit.record(
                session,
                "subject_exported",
                actor="cli",
                subscriber_id=person.primary,
                details={
                    "by": _os_user(),
                    "subscriber_ids": list(person.subscriber_ids),
                    "to": "file" if args.out else "stdout",
                },
            )
    finally:
        await db.dispose()
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        await asyncio.to_thread(_write_private, args.out, text)
    except OSError as exc:
        print(f"supportbot: --out {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"exported subscriber {person.primary} to {args.out}", file=sys.stderr)
    return 0


def _terminal() -> bool:
    """Is there a person at a terminal to ask? (No stdin at all counts as no.)"""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # stdin closed
        return False


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by its owner only (it is a person's data)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT


async def _erase(settings: Settings, args: argparse.Namespace) -> int:
    from services.privacy import erase_person, person_of

    db = await _database(settings)
    try:
        found = await _find(db, args.who)
        if found is None:
            return 2
        person, summary = found
        if not args.yes:
            if not _terminal():
                print(
                    "supportbot: refusing to erase without confirmation: no terminal to ask "
                    "(pass --yes to erase from a script)",
                    file=sys.stderr,
                )
                return 2
            print(describe(summary))
            print(
                "Erase this person's personal data? Texts, names, phones, form data and "
                "uploads are removed for good."
            )
            prompt = f"Type the subscriber id ({person.primary}) to confirm: "
            answer = (await asyncio.to_thread(input, prompt)).strip()
            if answer != str(person.primary):
                print("supportbot: not confirmed; nothing erased", file=sys.stderr)
                return 2
        async with db.transaction() as session:
            current = await person_of(session, person.primary)  # merges since the question
            done = await erase_person(
                session, current, uploads=uploads_dir(settings), actor="cli", by=_os_user()
            )
    finally:
        await db.dispose()
    counts = ", ".join(
        f"{k.replace('_', ' ')} {v}"
        for k, v in done.to_json().items()
        if k not in ("subscriber_ids", "already_erased")
    )
    again = " (already erased before: nothing was left)" if done.already_erased else ""
    print(f"erased subscriber {person.primary}{again}: {counts}")
    return 0


async def _retention(settings: Settings, args: argparse.Namespace) -> int:
    from services.privacy import Policy, run_retention

    cfg = settings.retention
    policy = Policy(
        messages=cfg.messages,
        processed_updates=cfg.processed_updates,
        outbox=cfg.outbox,
        uploads=cfg.uploads,
    )
    db = await _database(settings)
    try:
        done = await run_retention(db, policy, uploads_dir(settings), full=args.full, actor="cli")
    finally:
        await db.dispose()
    if done.busy:
        print("another process is running retention now; this pass stopped early")
    print(
        f"retention: messages anonymised {done.messages}, conversations cleared "
        f"{done.conversations}, processed updates deleted {done.processed_updates}, outbox rows "
        f"deleted {done.outbox}, uploads deleted {done.uploads}"
    )
    return 0
