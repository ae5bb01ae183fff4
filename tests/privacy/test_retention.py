"""Retention (services/privacy/retention.py) on SQLite and PostgreSQL: only what is older than the
policy goes (messages anonymised with their uploads, idle conversations' form data, processed
update ids, finished outbox rows, upload files), a second pass finds nothing, a pass starts
where the last one stopped, the analytics don't move, and a second process stays out."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from services.privacy import Policy, run_retention
from storage.db import Database
from storage.models import (
    AuditEntry,
    ChannelAccount,
    Conversation,
    ConversationEvent,
    Message,
    OutboxItem,
    ProcessedUpdate,
    Subscriber,
    Upload,
    utcnow,
)
from tests.handoff.test_analytics import ROWS, cells, report
from tests.handoff.test_analytics import seed as analytics_seed

POLICY = Policy(
    messages=timedelta(days=365),
    processed_updates=timedelta(days=30),
    outbox=timedelta(days=30),
    uploads=timedelta(days=365),
)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def _files(uploads: Path, now: datetime) -> dict[str, Path]:
    uploads.mkdir(parents=True, exist_ok=True)
    files = {name: (uploads / f"{name * 32}.png").resolve() for name in "abcd"}
    for path in files.values():
        path.write_bytes(PNG)
    old = (now - timedelta(days=400)).timestamp()
    os.utime(files["c"], (old, old))  # an old upload no message points to any more
    return files


async def _seed(db: Database, uploads: Path, now: datetime) -> dict[str, int]:
    files = await asyncio.to_thread(_files, uploads, now)
    old, recent = now - timedelta(days=400), now - timedelta(days=10)
    ids: dict[str, int] = {}
    async with db.transaction() as s:
        sub = Subscriber(display_name="Анна", phone="+79161112233", data={})
        s.add(sub)
        await s.flush()
        acc = ChannelAccount(
            subscriber_id=sub.id, channel="telegram", external_user_id="1", chat_id="1"
        )
        s.add(acc)
        await s.flush()
        idle = Conversation(
            subscriber_id=sub.id, channel_account_id=acc.id, channel="telegram", state="closed",
            slots={"address": "Лесная 5"}, csat_comment="звоните 89161112233",
            created_at=old, updated_at=old, closed_at=old,
        )  # fmt: skip
        active = Conversation(
            subscriber_id=sub.id, channel_account_id=acc.id, channel="telegram",
            slots={"address": "Садовая 1"}, created_at=old, updated_at=recent,
        )  # fmt: skip
        s.add_all([idle, active])
        await s.flush()
        s.add(
            ConversationEvent(
                conversation_id=idle.id, kind="escalated", to_state="queued", at=old,
                data={"group": "tech", "reason": "transfer", "note": "перезвонить"},
            )
        )  # fmt: skip
        rows = {
            "old_in": Message(
                conversation_id=idle.id, direction="in", author="subscriber",
                text="мой номер 89161112233", created_at=old, platform_update_id="10",
                nlu={"text": "мой номер 89161112233", "intent": "balance", "entities": []},
            ),
            "old_op": Message(
                conversation_id=idle.id, direction="out", author="operator", text="Вот схема",
                attachments=[{"kind": "photo", "ref": str(files["a"])}], created_at=old,
            ),
            "new_in": Message(
                conversation_id=active.id, direction="in", author="subscriber",
                text="Садовая 1", created_at=recent, platform_update_id="20",
            ),
            "new_op": Message(
                conversation_id=active.id, direction="out", author="operator", text="Держите",
                attachments=[{"kind": "photo", "ref": str(files["b"])}], created_at=recent,
            ),
        }  # fmt: skip
        s.add_all(rows.values())
        await s.flush()
        ids.update({k: m.id for k, m in rows.items()})
        outbox = {
            "old_sent": OutboxItem(
                channel="telegram", chat_id="1", message_id=rows["old_op"].id,
                body={"text": "Вот схема"}, status="sent", created_at=old,
            ),
            "old_failed": OutboxItem(
                channel="telegram", chat_id="1", body={"text": "x"}, status="failed",
                created_at=now - timedelta(days=40),
            ),
            "old_pending": OutboxItem(
                channel="telegram", chat_id="1", body={"text": "ещё не ушло"},
                status="pending", created_at=now - timedelta(days=40),
            ),
            "new_sent": OutboxItem(
                channel="telegram", chat_id="1", message_id=rows["new_op"].id,
                body={"text": "Держите"}, status="sent", created_at=recent,
            ),
        }  # fmt: skip
        s.add_all(outbox.values())
        await s.flush()
        ids.update({k: o.id for k, o in outbox.items()})
        s.add_all(
            [
                ProcessedUpdate(channel="telegram", update_id="10", processed_at=old),
                ProcessedUpdate(channel="telegram", update_id="11", processed_at=now - timedelta(days=31)),
                ProcessedUpdate(channel="telegram", update_id="20", processed_at=recent),
            ]
        )  # fmt: skip
        ids.update(idle=idle.id, active=active.id)
    return ids


async def _snapshot(db: Database) -> dict[str, object]:
    async with db.session() as s:
        return {
            "messages": {m.id: (m.text, m.nlu) for m in (await s.scalars(select(Message))).all()},
            "outbox": {o.id: o.status for o in (await s.scalars(select(OutboxItem))).all()},
            "updates": set((await s.scalars(select(ProcessedUpdate.update_id))).all()),
            "slots": {c.id: c.slots for c in (await s.scalars(select(Conversation))).all()},
        }


async def test_retention_removes_only_what_is_older_than_the_policy(
    db: Database, tmp_path: Path
) -> None:
    now = utcnow()
    uploads = (tmp_path / "uploads").resolve()
    ids = await _seed(db, uploads, now)
    done = await run_retention(db, POLICY, uploads, now=now, batch=2)
    assert (done.messages, done.conversations, done.processed_updates) == (2, 1, 2)
    assert (done.outbox, done.uploads, done.busy) == (2, 2, False)  # a (its message), c (old)

    async with db.session() as s:
        msgs = {m.id: m for m in (await s.scalars(select(Message))).all()}
        assert msgs[ids["old_in"]].text == "" and msgs[ids["old_op"]].text == ""
        assert msgs[ids["old_in"]].nlu == {"intent": "balance", "anonymised": "retention"}
        assert msgs[ids["old_op"]].attachments == [{"kind": "photo"}]
        assert msgs[ids["new_in"]].text == "Садовая 1" and msgs[ids["new_in"]].nlu is None
        assert msgs[ids["new_op"]].attachments[0]["ref"].endswith("b" * 32 + ".png")
        convs = {c.id: c for c in (await s.scalars(select(Conversation))).all()}
        assert (convs[ids["idle"]].slots, convs[ids["idle"]].csat_comment) == ({}, None)
        assert convs[ids["active"]].slots == {"address": "Садовая 1"}
        [event] = (await s.scalars(select(ConversationEvent))).all()
        assert event.data == {"group": "tech", "reason": "transfer"}
        outbox = {o.id: o.status for o in (await s.scalars(select(OutboxItem))).all()}
        assert outbox == {ids["old_pending"]: "pending", ids["new_sent"]: "sent"}
        updates = set((await s.scalars(select(ProcessedUpdate.update_id))).all())
        assert updates == {"20"}
        [entry] = (await s.scalars(select(AuditEntry))).all()
        assert (entry.action, entry.actor, entry.details["messages"]) == ("retention", "system", 2)
    left = sorted(p.name[0] for p in await asyncio.to_thread(lambda: list(uploads.iterdir())))
    assert left == ["b", "d"]

    before = await _snapshot(db)
    again = await run_retention(db, POLICY, uploads, now=now, batch=2)
    assert again.changed == 0 and await _snapshot(db) == before
    async with db.session() as s:
        assert len((await s.scalars(select(AuditEntry))).all()) == 1  # nothing done, nothing said


async def test_retention_deletes_stored_uploads_from_the_table(
    db: Database, tmp_path: Path
) -> None:
    """Uploads live in the `uploads` table (every app process serves them): the row of an upload
    stored longer than the policy goes, and so does the row an anonymised message points to;
    a recent upload of a recent message stays."""
    now = utcnow()
    old, recent = now - timedelta(days=400), now - timedelta(days=10)
    uploads = (tmp_path / "uploads").resolve()  # the path messages use; nothing on disk
    names = {k: f"{k * 32}.png" for k in "efg"}
    async with db.transaction() as s:
        sub = Subscriber(display_name="Анна", data={})
        s.add(sub)
        await s.flush()
        acc = ChannelAccount(subscriber_id=sub.id, channel="vk", external_user_id="2", chat_id="2")
        s.add(acc)
        await s.flush()
        conv = Conversation(
            subscriber_id=sub.id, channel_account_id=acc.id, channel="vk", created_at=old
        )
        s.add(conv)
        await s.flush()
        for key, stored_at in (("e", old), ("f", recent), ("g", recent)):
            s.add(
                Upload(
                    name=names[key], content_type="image/png", size=len(PNG), data=PNG,
                    created_at=stored_at,
                )
            )  # fmt: skip
        for key, sent_at in (("f", old), ("g", recent)):  # f: a message older than the policy
            s.add(
                Message(
                    conversation_id=conv.id, direction="out", author="operator", text="Вот",
                    attachments=[{"kind": "photo", "ref": str(uploads / names[key])}],
                    created_at=sent_at,
                )
            )  # fmt: skip
    done = await run_retention(db, POLICY, uploads, now=now)
    assert (done.messages, done.uploads) == (1, 2)
    async with db.session() as s:
        assert list((await s.scalars(select(Upload.name))).all()) == [names["g"]]
    assert (await run_retention(db, POLICY, uploads, now=now)).uploads == 0


async def test_a_pass_starts_where_the_last_one_stopped_unless_full(
    db: Database, tmp_path: Path
) -> None:
    now = utcnow()
    uploads = (tmp_path / "uploads").resolve()
    ids = await _seed(db, uploads, now)
    await run_retention(db, POLICY, uploads, now=now)
    async with db.transaction() as s:  # imported later with an old time: before the mark
        late = Message(
            conversation_id=ids["idle"], direction="in", author="subscriber", text="импорт",
            created_at=now - timedelta(days=500),
        )  # fmt: skip
        s.add(late)
    assert (await run_retention(db, POLICY, uploads, now=now)).messages == 0
    assert (await run_retention(db, POLICY, uploads, now=now, full=True)).messages == 1
    async with db.session() as s:
        assert (await s.get(Message, late.id)).text == ""  # type: ignore[union-attr]


async def test_retention_keeps_every_analytics_figure(db: Database, tmp_path: Path) -> None:
    await analytics_seed(db)
    before = await report(db)
    policy = Policy(messages=timedelta(days=1), processed_updates=None, outbox=None, uploads=None)
    done = await run_retention(db, policy, None, batch=7)
    assert done.messages == 52
    after = await report(db)
    assert cells(after) == cells(before) == ROWS and after.totals == before.totals
    assert after.resolution == before.resolution and after.top_intents == before.top_intents
    assert after.top_fallback_texts == []
    assert replace(after, top_fallback_texts=before.top_fallback_texts) == before


async def test_a_second_process_stays_out_while_one_runs(db: Database, tmp_path: Path) -> None:
    if db.is_sqlite:
        pytest.skip("PostgreSQL's advisory lock; SQLite has one writer and idempotent steps")
    from services.privacy.retention import LOCK_KEY

    now = utcnow()
    uploads = (tmp_path / "uploads").resolve()
    await _seed(db, uploads, now)
    other = Database(db.url)
    try:
        async with other.engine.connect() as conn:
            await conn.execute(text(f"SELECT pg_advisory_lock({LOCK_KEY})"))
            busy = await run_retention(db, POLICY, uploads, now=now)
            await conn.execute(text(f"SELECT pg_advisory_unlock({LOCK_KEY})"))
        assert busy.busy and busy.messages == 0 and busy.outbox == 0
        done = await run_retention(db, POLICY, uploads, now=now)
        assert not done.busy and done.messages == 2
    finally:
        await other.dispose()
