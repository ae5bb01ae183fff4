"""`supportbot content ...`: the content versions in the database, from the command line.

`import DIR` makes the folder's tree (dialogs, NLU data, articles, tests, media) the new
published version, after the same checks as `supportbot dialogs validate` (a broken tree is
refused with `file:line:col: message` lines and nothing changes); `export DIR` writes the
published version (or `--version N`) back byte for byte, so a team keeping content in git can
export, commit, edit and import; `versions` lists them.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path
from typing import Any

from dialogs.content_tree import read_tree, write_tree
from dialogs.versions import ContentVersions
from dialogs.yamlsrc import ContentError
from storage import content_store, migrate
from storage.db import Database
from supportbot.settings import ConfigError, Settings


def add_content_commands(sub: Any) -> None:
    content = sub.add_parser("content", help="content versions in the database: import, export")
    c_sub = content.add_subparsers(title="content commands", metavar="CONTENT_COMMAND")
    imp = c_sub.add_parser("import", help="publish a content folder as a new version (checked)")
    imp.add_argument("dir", type=Path)
    imp.add_argument("-m", "--comment", default="", help="what changed (kept with the version)")
    imp.set_defaults(func=_import)
    exp = c_sub.add_parser("export", help="write the published version's files into DIR")
    exp.add_argument("dir", type=Path)
    exp.add_argument("--version", type=int, help="an earlier version (default: the published)")
    exp.add_argument(
        "--prune", action="store_true", help="delete files in DIR that the version does not have"
    )
    exp.set_defaults(func=_export)
    ls = c_sub.add_parser("versions", help="list the versions, newest first")
    ls.set_defaults(func=_versions)


def _versions_of(settings: Settings, db: Database) -> ContentVersions:
    from supportbot.content_setup import configured_actions

    return ContentVersions(
        db,
        configured_actions(settings),
        settings.skill_groups,
        Path(settings.data_dir) / "content-versions",
    )


async def _import(settings: Settings, args: argparse.Namespace) -> int:
    if not args.dir.is_dir():
        raise ConfigError(f"{args.dir}: no such folder")
    tree = await asyncio.to_thread(read_tree, args.dir)
    db = Database(settings.database_url)
    try:
        await migrate.upgrade(db)
        versions = _versions_of(settings, db)
        try:
            vid = await versions.import_tree(
                tree,
                author=f"cli:{getpass.getuser()}",
                comment=args.comment or f"import {args.dir}",
            )
        except ContentError as exc:
            for problem in exc.problems:
                print(_under(problem, args.dir), file=sys.stderr)
            errors = sum(not p.warning for p in exc.problems)
            print(f"{errors} problem(s) in {args.dir}: nothing imported", file=sys.stderr)
            return 1
    finally:
        await db.dispose()
    if vid is None:
        print(f"unchanged: {args.dir} is the published version already")
    else:
        print(f"version {vid} published ({len(tree)} files from {args.dir})")
    return 0


def _under(problem: Any, folder: Path) -> str:
    """A problem named by the imported folder rather than the checked copy's `content/`."""
    text = str(problem)
    return str(folder).rstrip("/") + text[len("content") :] if text.startswith("content/") else text


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    db = Database(settings.database_url)
    try:
        await migrate.upgrade(db)
        async with db.session() as s:
            vid = args.version or await content_store.latest_version_id(s)
            if vid is None or await content_store.get_version(s, vid) is None:
                raise ConfigError(
                    "no such version" if args.version else "no content version yet (import one)"
                )
            tree = await content_store.version_tree(s, vid)
    finally:
        await db.dispose()
    extra = await asyncio.to_thread(write_tree, tree, args.dir, prune=args.prune)
    print(f"version {vid}: {len(tree)} files written to {args.dir}")
    if extra:
        verb = "deleted" if args.prune else "not in the version (left; --prune deletes)"
        print(f"{len(extra)} file(s) {verb}: " + ", ".join(extra[:10]), file=sys.stderr)
    return 0


async def _versions(settings: Settings, _args: argparse.Namespace) -> int:
    db = Database(settings.database_url)
    try:
        await migrate.upgrade(db)
        for v in await _versions_of(settings, db).versions():
            changed = len(v["added"]) + len(v["changed"]) + len(v["removed"])
            print(
                f"{v['id']}\t{v['created_at'][:19]}\t{v['kind']}\t{v['author']}\t"
                f"{changed} file(s)\t{v['comment']}"
            )
    finally:
        await db.dispose()
    return 0
