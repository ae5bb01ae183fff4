"""Turn benchmark: where one subscriber message's time goes inside `ConversationService.handle`.

In process, no channel: the app is composed and started as `supportbot run` would (content, NLU,
knowledge base, SQLite or PostgreSQL), then 300 subscribers send the ceiling bench's questions
(bench/ceiling.py: 144 phrasings of billing questions) straight to the pipeline, one at a time.
Each part of a turn is timed by wrapping the function that does it; the figures are milliseconds
per turn (a part that runs twice in a turn counts twice). CPU per turn is the process's CPU time.

    .venv/bin/python bench/turn.py                        # SQLite in a temporary directory
    .venv/bin/python bench/turn.py --turns 5000 --database postgresql://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ceiling import TEXTS  # noqa: E402

SUBSCRIBERS = 300
spent: defaultdict[str, float] = defaultdict(float)
parts: list[str] = []  # in the order they are printed


def timed(owner: Any, name: str, label: str) -> None:
    """Wrap `owner.name` (a coroutine function, or a plain one) to add its time to `label`
    (skipped where an older checkout lacks it: the script compares versions)."""
    original: Callable[..., Any] | None = getattr(owner, name, None)
    if original is None:
        return
    parts.append(label)
    if asyncio.iscoroutinefunction(original):

        @functools.wraps(original)
        async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - start

        setattr(owner, name, wrapped_async)
    else:

        @functools.wraps(original)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - start

        setattr(owner, name, wrapped)


def instrument() -> None:
    from dialogs import engine, knowledge, pipeline
    from storage import repo

    timed(pipeline.ConversationService, "_understand", "NLU parse (before the transaction)")
    timed(pipeline.ConversationService, "_turn", "the transaction, all of it")
    label = "  SQL: claim + account and chats (first statement: + BEGIN; one on PostgreSQL)"
    timed(repo, "claim_and_read", label)
    timed(repo, "claim_update", "    SQL: claim the update id (SQLite and older checkouts)")
    timed(repo, "account_with_open_chats", "    SQL: account + its person's open chats (same)")
    timed(repo, "get_or_create_account", "  SQL: the account (older checkouts; or a new one)")
    timed(repo, "open_or_continue", "  SQL: the person's open chats (older checkouts)")
    timed(repo, "add_messages", "  SQL: the message and the replies")
    timed(repo, "enqueue", "  SQL: the replies' outbox rows")
    timed(engine.DialogEngine, "respond", "  dialog engine (with the search below)")
    timed(knowledge.Knowledge, "search", "    knowledge-base search")


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-turn-"))
    os.environ.update(
        {
            "SUPPORTBOT_DATABASE_URL": args.database or f"sqlite:///{workdir / 'bench.db'}",
            "SUPPORTBOT_CONTENT_DIR": str(ROOT / "content"),
            "SUPPORTBOT_DATA_DIR": str(workdir),
            "SUPPORTBOT_LOG_LEVEL": "WARNING",
        }
    )
    from dialogs.messages import Channel, Inbound
    from supportbot.app import App, tune_gc
    from supportbot.settings import load_settings

    instrument()
    app = App(load_settings(None))
    await app.start()
    tune_gc()

    async def turn(n: int) -> None:
        user = str(180_000 + n % SUBSCRIBERS)
        inbound = Inbound(
            channel=Channel("telegram"), chat_id=user, user_id=user, update_id=f"{args.turns}-{n}",
            text=TEXTS[n % len(TEXTS)], first_name="Аня",
        )  # fmt: skip
        start = time.perf_counter()
        result = await app.service.handle(inbound)
        spent["handle, all of it"] += time.perf_counter() - start
        if not result.replies:
            raise SystemExit(f"turn: no reply to {inbound.text!r}")

    try:
        for n in range(-SUBSCRIBERS, 0):  # warm-up: every subscriber's account exists
            await turn(n)
        spent.clear()
        cpu = time.process_time()
        for n in range(args.turns):
            await turn(n)
        cpu = time.process_time() - cpu
    finally:
        await app.stop()
    print(f"bench/turn.py: {args.turns} turns, {app.db.engine.dialect.name}")
    print(f"{'CPU per turn':<56} {1000 * cpu / args.turns:7.3f} ms")
    for label in ("handle, all of it", *parts):
        print(f"{label:<56} {1000 * spent[label] / args.turns:7.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=3000)
    parser.add_argument("--database", default=None, help="a database URL (default: SQLite)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
