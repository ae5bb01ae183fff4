"""Two app processes on one PostgreSQL and Redis assign 200 waiting chats to 10 operators: every
chat goes to exactly one operator and nobody gets more chats than their capacity."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import TextIO

import pytest
from sqlalchemy import func, select

from handoff.auth import hash_password
from storage.db import Database
from storage.models import (
    ChannelAccount,
    Conversation,
    ConversationEvent,
    ConversationState,
    Operator,
    Subscriber,
    utcnow,
)
from tests.conftest import PG_URL, fresh_postgres
from tests.support import ROOT

CHATS, OPERATORS, MAX_CHATS = 200, 10, 15  # 150 seats: 50 chats must keep waiting
APP = """
import asyncio, sys
from supportbot.app import App
from supportbot.settings import Settings

async def main() -> None:
    settings = Settings(
        database_url=sys.argv[1], http_port=0, data_dir=sys.argv[3],
        handoff={"redis_url": sys.argv[2], "hours": {}},
    )
    app = App(settings)
    await app.start()
    print("ready", flush=True)
    await asyncio.sleep(float(sys.argv[4]))
    await app.stop()

asyncio.run(main())
"""


def log_file(folder: Path, n: int) -> TextIO:
    return (folder / f"p{n}.log").open("w")


def read_logs(folder: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(folder.glob("p*.log")))


async def seed(db: Database) -> None:
    now = utcnow()
    password = hash_password("operator-pass")
    async with db.session() as s, s.begin():
        for n in range(OPERATORS):
            s.add(
                Operator(
                    login=f"op{n}",
                    name=f"Оператор {n}",
                    password_hash=password,
                    groups=["consult"],
                    max_chats=MAX_CHATS,
                    status="online",
                )
            )
        for n in range(CHATS):
            sub = Subscriber(display_name=f"Абонент {n}", data={})
            s.add(sub)
            await s.flush()
            account = ChannelAccount(
                subscriber_id=sub.id, channel="telegram", external_user_id=str(n), chat_id=str(n)
            )
            s.add(account)
            await s.flush()
            s.add(
                Conversation(
                    subscriber_id=sub.id,
                    channel_account_id=account.id,
                    channel="telegram",
                    state=ConversationState.QUEUED,
                    skill_group="consult",
                    queued_at=now + timedelta(milliseconds=n),
                    slots={},
                )
            )


@pytest.mark.postgres
async def test_two_processes_assign_every_chat_once_within_capacity(tmp_path: Path) -> None:
    db = await fresh_postgres()
    try:
        await seed(db)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                APP,
                PG_URL,
                "redis://127.0.0.1:6379/0",
                str(tmp_path / f"p{i}"),
                "40",
                cwd=ROOT,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file(tmp_path, i),  # a pipe nobody reads would block the app
            )
            for i in range(2)
        ]
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line.strip() == b"ready", read_logs(tmp_path)[-3000:]
        seats = OPERATORS * MAX_CHATS
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            async with db.session() as s:
                assigned = await s.scalar(
                    select(func.count(Conversation.id)).where(
                        Conversation.state == ConversationState.WITH_OPERATOR
                    )
                )
            if assigned == seats or loop.time() > deadline:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)  # both processes keep running: nothing more may be assigned
        async with db.session() as s:
            events = (
                await s.execute(
                    select(ConversationEvent.conversation_id, func.count())
                    .where(ConversationEvent.kind == "assigned")
                    .group_by(ConversationEvent.conversation_id)
                )
            ).all()
            loads = dict(
                (
                    await s.execute(
                        select(Conversation.operator_id, func.count())
                        .where(Conversation.state == ConversationState.WITH_OPERATOR)
                        .group_by(Conversation.operator_id)
                    )
                ).all()
            )
            waiting = await s.scalar(
                select(func.count(Conversation.id)).where(
                    Conversation.state == ConversationState.QUEUED
                )
            )
        assert len(events) == seats, f"{len(events)} chats assigned, expected {seats}"
        assert all(n == 1 for _, n in events), "a chat was assigned twice"
        assert sorted(loads.values()) == [MAX_CHATS] * OPERATORS  # full, never over
        assert waiting == CHATS - seats
        for proc in procs:
            proc.terminate()
            await proc.wait()
    finally:
        await db.dispose()
