"""Storage: migrations, dedupe, accounts and conversations behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

import storage.db
from dialogs import outgoing
from dialogs.messages import Outbound
from dialogs.outgoing import Outgoing, Recipient
from storage import migrate, repo
from storage.db import Database, DatabaseConfigError, normalize_url, transient
from storage.models import (
    ChannelAccount,
    Conversation,
    ConversationEvent,
    ConversationState,
    Message,
    OutboxItem,
    Subscriber,
)
from tests.conftest import PG_URL, fresh_postgres


async def test_migrations_reach_head(db: Database) -> None:
    assert await migrate.current(db) == migrate.head()


async def test_claim_update_is_true_once(db: Database) -> None:
    async with db.session() as s, s.begin():
        assert await repo.claim_update(s, "telegram", "100")
        assert not await repo.claim_update(s, "telegram", "100")
        assert await repo.claim_update(s, "vk", "100")  # ids are per channel


async def test_the_claim_and_the_read_of_every_message_agree_with_the_two_alone(
    db: Database,
) -> None:
    """`claim_and_read` (one statement on PostgreSQL): a new person's message is claimed with
    no account; a known person's gives their account and open chats, newest first, the objects
    `account_with_open_chats` gives; a redelivery is not claimed and reads nothing."""
    async with db.transaction() as s:
        assert await repo.claim_and_read(s, "telegram", "1", "55") == (True, None, [])
        account = await repo.get_or_create_account(
            s, channel="telegram", user_id="55", chat_id="55"
        )
        first, _ = await repo.open_conversation(s, account)
        await repo.set_state(s, first, ConversationState.QUEUED)
    async with db.transaction() as s:  # a second open chat (another channel's, moved here)
        second = Conversation(subscriber_id=account.subscriber_id, channel_account_id=account.id,
                              channel="telegram", state=ConversationState.BOT, slots={})  # fmt: skip
        s.add(second)
    async with db.transaction() as s:
        claimed, known, chats = await repo.claim_and_read(s, "telegram", "2", "55")
        alone = await repo.account_with_open_chats(s, "telegram", "55")
        assert claimed and known is not None and known.id == account.id
        assert [c.id for c in chats] == [second.id, first.id]  # newest first
        assert (known, chats) == alone  # the session's own objects, the same ones
        assert chats[1].state == ConversationState.QUEUED
        assert await repo.claim_and_read(s, "telegram", "2", "55") == (False, None, [])
        assert await repo.claim_and_read(s, "vk", "2", "nobody") == (True, None, [])


async def test_a_session_s_second_transaction_is_its_own(db: Database) -> None:
    """The driver's connection kept for a transaction's statements (storage/rows.py) is
    not the previous transaction's: what the second one rolls back is gone, the first's kept."""

    class Undo(Exception):
        pass

    async with db.session() as s:
        async with s.begin():
            assert await repo.claim_update(s, "telegram", "first")
        with pytest.raises(Undo):
            async with s.begin():
                assert await repo.claim_update(s, "telegram", "second")
                raise Undo
        assert await repo.claim_update(s, "telegram", "third")  # begins one of its own
        await s.rollback()
    async with db.session() as s, s.begin():
        assert not await repo.claim_update(s, "telegram", "first")  # committed
        assert await repo.claim_update(s, "telegram", "second")  # rolled back
        assert await repo.claim_update(s, "telegram", "third")  # rolled back


async def test_transactions_wait_for_each_other_and_a_cancelled_one_leaves_nothing(
    db: Database,
) -> None:
    """`db.transaction()` (on SQLite one connection for the process): a transaction that only
    added ORM objects commits once the connection is free; a transaction cancelled mid-way (a
    deploy, a timeout) rolls back and frees the connection for the next; an exception rolls
    back."""
    holding = asyncio.Event()

    async def hold() -> None:
        async with db.transaction() as s:
            await repo.claim_update(s, "telegram", "held")
            holding.set()
            await asyncio.sleep(0.3)

    async def only_adds() -> None:
        async with db.transaction() as s:
            s.add(Subscriber(display_name="Аня", data={}))

    holder = asyncio.create_task(hold())
    await holding.wait()
    async with asyncio.timeout(5):
        await asyncio.gather(holder, only_adds())

    async def cancelled() -> None:
        async with db.transaction() as s:
            await repo.claim_update(s, "telegram", "cancelled")
            s.add(Subscriber(display_name="Петя", data={}))
            await s.flush()
            holding.set()
            await asyncio.sleep(10)

    holding.clear()
    task = asyncio.create_task(cancelled())
    await holding.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    class Undo(Exception):
        pass

    with pytest.raises(Undo):
        async with db.transaction() as s:
            await repo.claim_update(s, "telegram", "undone")
            raise Undo
    async with asyncio.timeout(5), db.transaction() as s:
        names = (await s.execute(select(Subscriber.display_name))).scalars().all()
        assert names == ["Аня"]
        assert not await repo.claim_update(s, "telegram", "held")  # committed
        assert await repo.claim_update(s, "telegram", "cancelled")  # rolled back
        assert await repo.claim_update(s, "telegram", "undone")  # rolled back


async def test_concurrent_claims_of_one_update_let_exactly_one_through(db: Database) -> None:
    async def claim() -> bool:
        async with db.session() as s, s.begin():
            return await repo.claim_update(s, "telegram", "777")

    results = await asyncio.gather(*(claim() for _ in range(5)), return_exceptions=True)
    assert sum(r is True for r in results) == 1, results


async def test_account_is_created_once_and_names_follow_the_platform(db: Database) -> None:
    async with db.session() as s, s.begin():
        a = await repo.get_or_create_account(
            s, channel="vk", user_id="5", chat_id="5", first_name="Оля"
        )
    async with db.session() as s, s.begin():
        b = await repo.get_or_create_account(
            s, channel="vk", user_id="5", chat_id="5", first_name="Ольга", last_name="К"
        )
        assert b.first_name == "Ольга"
    assert a.id == b.id
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Subscriber)) == 1
        assert await s.scalar(select(func.count()).select_from(ChannelAccount)) == 1


async def test_subscriber_may_have_telegram_and_vk_accounts(db: Database) -> None:
    async with db.session() as s, s.begin():
        tg = await repo.get_or_create_account(s, channel="telegram", user_id="1", chat_id="1")
        vk = await repo.get_or_create_account(s, channel="vk", user_id="1", chat_id="1")
        vk.subscriber_id = (
            tg.subscriber_id
        )  # linking (services/identity.py) just points both at one person
    async with db.session() as s:
        person = await s.get(Subscriber, tg.subscriber_id)
        assert person is not None
        await s.refresh(person, ["accounts"])
        assert sorted(a.channel for a in person.accounts) == ["telegram", "vk"]


async def test_conversation_lifecycle_is_recorded_as_events(db: Database) -> None:
    async with db.session() as s, s.begin():
        account = await repo.get_or_create_account(s, channel="telegram", user_id="9", chat_id="9")
        conv, created = await repo.open_conversation(s, account)
        assert created and conv.state == ConversationState.BOT
        again, created_again = await repo.open_conversation(s, account)
        assert again.id == conv.id and not created_again
        await repo.set_state(s, conv, ConversationState.QUEUED, data={"group": "tech"})
        await repo.set_state(s, conv, ConversationState.CLOSED)
        assert conv.closed_at is not None
        after_close, created_new = await repo.open_conversation(s, account)
        assert created_new and after_close.id != conv.id
    async with db.session() as s:
        events = (
            await s.execute(
                select(ConversationEvent)
                .where(ConversationEvent.conversation_id == conv.id)
                .order_by(ConversationEvent.id)
            )
        ).scalars()
        assert [(e.from_state, e.to_state) for e in events] == [
            (None, "bot"),
            ("bot", "queued"),
            ("queued", "closed"),
        ]
        stored = await s.get(Conversation, conv.id)
        assert stored is not None and stored.closed_at is not None
        assert stored.closed_at.tzinfo is not None  # aware UTC on both databases


async def test_the_account_and_its_chats_read_on_every_message_are_the_orms_own(
    db: Database,
) -> None:
    """`account_with_open_chats` (read without the ORM: storage/rows.py) gives the objects an ORM
    query gives: the same values, the session's own instance when it has one, changes written
    at commit and nothing written when nothing changed."""
    async with db.transaction() as s:
        account = await repo.get_or_create_account(
            s, channel="telegram", user_id="4242", chat_id="4242", first_name="Аня"
        )
        conv, _ = await repo.open_conversation(s, account)
        conv.slots = {"_flow": "pay", "phone": "+79990001122"}
    conv_id, account_id = conv.id, account.id

    def columns(obj: Any) -> dict[str, Any]:
        return {c.key: getattr(obj, c.key) for c in type(obj).__mapper__.column_attrs}

    async with db.transaction() as s:
        orm_account = await s.get(ChannelAccount, account_id)
        orm_conv = await s.get(Conversation, conv_id)
        expected = (columns(orm_account), columns(orm_conv))
    async with db.transaction() as s:
        got, chats = await repo.account_with_open_chats(s, "telegram", "4242")
        assert got is not None and [c.id for c in chats] == [conv_id]
        assert (columns(got), columns(chats[0])) == expected
        assert not s.dirty and not s.new  # read, not changed
        assert await s.get(Conversation, conv_id) is chats[0]  # one object per row
        chats[0].slots = {**chats[0].slots, "step": 2}
        chats[0].state = ConversationState.QUEUED
    async with db.transaction() as s:
        again = await s.get(Conversation, conv_id)
        assert again is not None
        assert (again.state, again.slots["step"], again.slots["_flow"]) == ("queued", 2, "pay")
    async with db.transaction() as s:  # the session's own object is returned as is
        mine = await s.get(ChannelAccount, account_id)
        got, _ = await repo.account_with_open_chats(s, "telegram", "4242")
        assert got is mine


async def test_a_first_contact_s_rows_are_written_and_loaded_as_the_orm_would(
    db: Database,
) -> None:
    """A first contact's subscriber, account and conversation are inserted without the unit of
    work (repo.NewRow): the objects the pipeline gets are the ORM's loaded objects, with the
    values a later ORM load reads back, and changes to them are written at commit."""

    def columns(obj: Any) -> dict[str, Any]:
        return {c.key: getattr(obj, c.key) for c in type(obj).__mapper__.column_attrs}

    async with db.transaction() as s:
        account = await repo.get_or_create_account(
            s, channel="vk", user_id="77", chat_id="77", first_name="Аня", known_none=True
        )
        assert repo.created_here(s, account)
        conv, created = await repo.open_conversation(s, account)
        assert created and not s.new and not s.dirty  # persistent, nothing left to flush
        made = (columns(account), columns(conv))
        conv.slots = {"_flow": "pay"}  # a change made in the same turn is still written
    assert made[0]["first_name"] == "Аня" and made[0]["created_at"].tzinfo is not None
    assert made[1]["state"] == ConversationState.BOT and made[1]["declined_by"] == []
    async with db.transaction() as s:
        loaded = await s.get(ChannelAccount, account.id), await s.get(Conversation, conv.id)
        assert loaded[0] is not None and loaded[1] is not None
        assert columns(loaded[0]) == made[0]
        changed = {"slots": None, "updated_at": None}  # the change at commit, below
        assert {**columns(loaded[1]), **changed} == {**made[1], **changed}
        assert loaded[1].slots == {"_flow": "pay"}
        assert loaded[1].updated_at > made[1]["updated_at"]
        assert not repo.created_here(s, loaded[0])  # only in the transaction that made it
        person = await s.get(Subscriber, account.subscriber_id)
        assert person is not None and person.display_name == "Аня" and person.data == {}
        events = (await s.execute(select(ConversationEvent.to_state))).scalars().all()
        assert events == ["bot"]


async def test_an_account_made_elsewhere_between_the_lookup_and_the_insert_is_used(
    db: Database,
) -> None:
    """The pipeline looked, found no account and asks for one (`known_none`), but another
    process has just made it: that account is returned (its names brought up to date), not a
    second one, and its chats are looked up (it is not this transaction's)."""
    async with db.transaction() as s:
        first = await repo.get_or_create_account(s, channel="telegram", user_id="8", chat_id="8")
        conv, _ = await repo.open_conversation(s, first)
    async with db.transaction() as s:
        again = await repo.get_or_create_account(
            s, channel="telegram", user_id="8", chat_id="8", first_name="Петя", known_none=True
        )
        assert again.id == first.id and again.first_name == "Петя"
        assert not repo.created_here(s, again)
        same, created, _ = await repo.open_or_continue(s, again)
        assert (same.id, created) == (conv.id, False)
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(ChannelAccount)) == 1


async def test_a_turn_s_changes_to_its_conversation_are_written_once(db: Database) -> None:
    """`save_conversation` (an UPDATE of the changed columns, without the flush):
    what a turn changed is in the database after commit, `updated_at` moves as the column's
    onupdate would move it, and the commit writes nothing more (the object is clean)."""
    async with db.transaction() as s:
        account = await repo.get_or_create_account(s, channel="telegram", user_id="5", chat_id="5")
        conv, _ = await repo.open_conversation(s, account)
    created = conv.updated_at
    async with db.transaction() as s:
        _, chats = await repo.account_with_open_chats(s, "telegram", "5")
        chats[0].slots = {"_last": {"article": "roaming"}}
        chats[0].skill_group = "billing"
        await repo.save_conversation(s, chats[0])
        assert not s.dirty  # written now, not by the flush at commit
    async with db.transaction() as s:
        again = await s.get(Conversation, conv.id)
        assert again is not None
        assert (again.slots, again.skill_group) == ({"_last": {"article": "roaming"}}, "billing")
        assert again.updated_at > created
        unchanged = again.updated_at
        await repo.save_conversation(s, again)  # nothing changed: nothing written
    async with db.transaction() as s:
        same = await s.get(Conversation, conv.id)
        assert same is not None and same.updated_at == unchanged


async def test_unreachable_is_set_and_cleared_when_they_write_again(db: Database) -> None:
    async with db.session() as s, s.begin():
        await repo.get_or_create_account(s, channel="telegram", user_id="3", chat_id="3")
    async with db.session() as s, s.begin():
        from storage.models import utcnow

        assert await repo.mark_unreachable(s, "telegram", "3", utcnow())
    async with db.session() as s, s.begin():
        acc = await repo.get_or_create_account(s, channel="telegram", user_id="3", chat_id="3")
        assert acc.unreachable_at is None


async def test_outbox_row_round_trips_json(db: Database) -> None:
    body = {"text": "Привет 👋", "buttons": [[{"title": "Да", "payload": "yes"}]]}
    async with db.session() as s, s.begin():
        await repo.enqueue(s, [{"channel": "vk", "chat_id": "42", "body": body}])
    async with db.session() as s:
        stored = await s.scalar(select(OutboxItem))
        assert stored is not None and stored.body == body and stored.status == "pending"


async def test_a_turn_s_messages_and_replies_keep_their_order(db: Database) -> None:
    """A turn inserts its message and replies in one statement each (storage/rows.py): the ids
    come back in the order the rows were given, so history and delivery keep that order."""
    async with db.transaction() as s:
        account = await repo.get_or_create_account(s, channel="vk", user_id="9", chat_id="9")
        conv, _ = await repo.open_conversation(s, account)
        texts = [f"ответ {n}" for n in range(7)]
        common = {"conversation_id": conv.id, "direction": "out", "author": "bot"}
        ids = await repo.add_messages(s, [{**common, "text": t} for t in texts])
        await repo.enqueue(
            s, [{"channel": "vk", "chat_id": "9", "message_id": i, "body": {}} for i in ids]
        )
    assert ids == sorted(ids) and len(set(ids)) == len(texts)
    async with db.session() as s:
        stored = (await s.execute(select(Message.id, Message.text).order_by(Message.id))).all()
        queued = (await s.execute(select(OutboxItem.message_id).order_by(OutboxItem.id))).all()
    assert [(i, t) for i, t in stored] == list(zip(ids, texts, strict=True))
    assert [m for (m,) in queued] == ids


async def test_a_reply_waits_behind_its_chat_s_reply_on_its_way_and_the_others_are_handed(
    db: Database,
) -> None:
    """This process's sender takes a chat's new reply as the transaction commits only if the
    chat has no reply queued or on its way (repo.enqueue asks the database: another process
    may have one); a reply behind one waits for a claim."""
    handed: list[list[str]] = []
    behind: set[str] = set()

    class Here:  # this process's senders, as delivery/worker.py's WorkerSenders hands them rows
        def lease(self, channel: str) -> tuple[timedelta, int] | None:
            return timedelta(minutes=1), 10

        def take(self, channel: str, rows: list[dict[str, Any]]) -> None:
            handed.append([row["chat_id"] for row in rows])

        def behind(self, channel: str, chats: set[str]) -> None:
            behind.update(chats)

    db.on_commit(senders=Here())
    to: dict[str, Recipient] = {}
    async with db.transaction() as s:
        for chat in ("501", "502"):
            account = await repo.get_or_create_account(
                s, channel="telegram", user_id=chat, chat_id=chat
            )
            to[chat] = Recipient.of((await repo.open_conversation(s, account))[0], account)
        await outgoing.write(s, [Outgoing(to["501"], Outbound(text="первый"))])
    async with db.transaction() as s:
        await outgoing.write(s, [Outgoing(to["501"], Outbound(text="второй")),
                                 Outgoing(to["502"], Outbound(text="вам"))])  # fmt: skip
    assert handed == [["501"], ["502"]] and behind == {"501"}
    async with db.session() as s:
        queued = (await s.execute(select(OutboxItem.chat_id, OutboxItem.status)
                                  .order_by(OutboxItem.id))).all()  # fmt: skip
    assert [tuple(row) for row in queued] == [
        ("501", "sending"),
        ("501", "pending"),
        ("502", "sending"),
    ]


async def test_a_statement_the_database_refuses_raises_as_sqlalchemy_raises_it(
    db: Database,
) -> None:
    """An error from a statement run on the driver's connection (storage/rows.py) is
    SQLAlchemy's own exception class, judged permanent (a retry would not get past it), and
    the rolled-back transaction leaves nothing behind."""
    with pytest.raises(IntegrityError) as refused:
        async with db.transaction() as s:
            assert await repo.claim_update(s, "telegram", "kept?")
            await repo.add_messages(s, [{"conversation_id": 999_999, "direction": "in",
                                         "author": "subscriber", "text": "привет"}])  # fmt: skip
    assert not transient(refused.value)
    async with db.transaction() as s:
        assert await repo.claim_update(s, "telegram", "kept?")  # rolled back with the rest


async def test_a_one_statement_write_is_all_or_nothing_and_the_pool_stays_transactional(
    db: Database,
) -> None:
    """The outbox's results are written as one statement (`Database.statement()`: on
    PostgreSQL without BEGIN and COMMIT). A batch with a row the database refuses applies no
    row, a good batch applies every row, and the connections go back to the pool in their
    transactional mode: a later turn's refused statement still takes its claim back with it."""
    from delivery.worker import _RECORD_ROWS

    async with db.transaction() as s:
        await repo.enqueue(s, [{"channel": "vk", "chat_id": "7", "body": {"text": t}}
                               for t in ("раз", "два")])  # fmt: skip
    async with db.session() as s:
        ids = list((await s.scalars(select(OutboxItem.id).order_by(OutboxItem.id))).all())
    result = {"b_parts": 1, "b_ids": ["m"], "b_error": None, "b_sent_at": None,
              "b_not_before": None}  # fmt: skip
    with pytest.raises(IntegrityError):
        async with db.statement() as s:
            await _RECORD_ROWS.run(s, [{**result, "b_id": ids[0], "b_status": "sent"},
                                       {**result, "b_id": ids[1], "b_status": None}])  # fmt: skip

    async def statuses() -> list[str]:
        async with db.session() as s:
            return list((await s.scalars(select(OutboxItem.status).order_by(OutboxItem.id))).all())

    assert await statuses() == ["pending", "pending"]
    async with db.statement() as s:
        await _RECORD_ROWS.run(s, [{**result, "b_id": i, "b_status": "sent"} for i in ids])
    assert await statuses() == ["sent", "sent"]
    for n in range(12):  # the connection the writes used is handed out again among these
        with pytest.raises(IntegrityError):
            async with db.transaction() as s:
                assert await repo.claim_update(s, "telegram", f"после {n}")
                await repo.add_messages(s, [{"conversation_id": 999_999, "direction": "in",
                                             "author": "subscriber", "text": "а?"}])  # fmt: skip
        async with db.transaction() as s:
            assert await repo.claim_update(s, "telegram", f"после {n}")


@pytest.mark.postgres
async def test_a_connection_lost_mid_turn_is_replaced_and_judged_transient() -> None:
    """PostgreSQL restarts or a proxy drops the connection in the middle of a turn: the error
    is SQLAlchemy's, marked as an invalidated connection (so the pipeline retries the update),
    and the next transaction gets a working connection instead of the dead one."""
    db = await fresh_postgres()
    try:
        async with db.transaction() as s:
            assert await repo.claim_update(s, "telegram", "1")
        with pytest.raises(DBAPIError) as lost:
            async with db.transaction() as s:
                pid = await s.scalar(text("SELECT pg_backend_pid()"))
                async with db.engine.connect() as other:
                    await other.execute(text(f"SELECT pg_terminate_backend({int(pid)})"))
                await repo.claim_update(s, "telegram", "2")
        assert lost.value.connection_invalidated and transient(lost.value)
        async with db.transaction() as s:
            assert await repo.claim_update(s, "telegram", "2")
            assert not await repo.claim_update(s, "telegram", "1")
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_an_idle_connection_is_checked_before_use_and_a_busy_one_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pooled connection unused for `PING_IDLE_AFTER` is pinged as it is handed out, so one
    the server dropped meanwhile (a restart overnight) is replaced and nobody sees an error. One
    in steady use is not pinged (a ping on asyncpg is three round trips): if its server went
    away, one transaction fails as transient and the next gets a new connection."""
    db = await fresh_postgres()

    async def drop_the_pool() -> None:  # as a server restart does, from outside
        async with db.transaction() as s:
            mine = await s.scalar(text("SELECT pg_backend_pid()"))
        async with db.engine.connect() as other:  # a second connection of the pool
            await other.execute(text(f"SELECT pg_terminate_backend({int(mine)})"))
        await asyncio.sleep(0.1)

    try:
        monkeypatch.setattr(storage.db, "PING_IDLE_AFTER", 0.0)  # every connection is idle
        await drop_the_pool()
        async with db.transaction() as s:
            assert await repo.claim_update(s, "telegram", "after the night")
        monkeypatch.setattr(storage.db, "PING_IDLE_AFTER", 3600.0)  # every one in steady use
        await drop_the_pool()
        with pytest.raises(DBAPIError) as lost:
            async with db.transaction() as s:
                await repo.claim_update(s, "telegram", "mid-load")
        assert transient(lost.value)
        async with db.transaction() as s:
            assert await repo.claim_update(s, "telegram", "mid-load")
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_after_a_lost_connection_the_others_pooled_with_it_are_replaced_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server restart under load kills every pooled connection. The first statement to find
    out fails (transient), and the connections pooled before it are replaced at their next
    checkout, as SQLAlchemy does: the next turn does not fail on another dead one."""
    monkeypatch.setattr(storage.db, "PING_IDLE_AFTER", 3600.0)  # in steady use: no pings
    db = await fresh_postgres()
    try:
        async with db.engine.connect() as a, db.engine.connect() as b:  # two in the pool
            pids = [await c.scalar(text("SELECT pg_backend_pid()")) for c in (a, b)]
        other = await asyncpg.connect(PG_URL)  # from outside, as the restart does
        try:
            await other.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", pids)
        finally:
            await other.close()
        await asyncio.sleep(0.1)
        with pytest.raises(DBAPIError) as lost:
            async with db.transaction() as s:
                await repo.claim_update(s, "telegram", "first")
        assert transient(lost.value)
        async with db.transaction() as s:
            assert await repo.claim_update(s, "telegram", "first")
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u:p@h:5433/db", "postgresql+asyncpg://u:p@h:5433/db"),
        ("sqlite:///x.db", "sqlite+inline:///x.db"),
    ],
)
def test_database_urls_people_paste_are_accepted(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://h/db", "not a url"])
def test_bad_database_url_names_the_setting(url: str) -> None:
    with pytest.raises(DatabaseConfigError, match="SUPPORTBOT_DATABASE_URL"):
        normalize_url(url)


async def _linked_person(db: Database) -> tuple[int, int]:
    """One subscriber with a Telegram and a VK account (as after linking): (tg id, vk id)."""
    async with db.session() as s, s.begin():
        tg = await repo.get_or_create_account(s, channel="telegram", user_id="1", chat_id="1")
        vk = await repo.get_or_create_account(s, channel="vk", user_id="2", chat_id="2")
        vk.subscriber_id = tg.subscriber_id
        return tg.id, vk.id


async def test_a_chat_in_a_form_continues_in_the_other_channel(db: Database) -> None:
    tg_id, vk_id = await _linked_person(db)
    async with db.session() as s, s.begin():
        tg = await s.get(ChannelAccount, tg_id)
        assert tg is not None
        conv, created, came_from = await repo.open_or_continue(s, tg)
        assert created and came_from is None
        conv.slots = {"_flow": {"name": "technician_visit", "pc": 2, "awaiting": "address"}}
        started = conv.id
    async with db.session() as s, s.begin():
        vk = await s.get(ChannelAccount, vk_id)
        assert vk is not None
        moved, created, came_from = await repo.open_or_continue(s, vk)
        assert (moved.id, created, came_from) == (started, False, "telegram")
        assert (moved.channel, moved.channel_account_id) == ("vk", vk_id)
    async with db.session() as s:
        kinds = (
            await s.scalars(
                select(ConversationEvent.kind).where(ConversationEvent.conversation_id == started)
            )
        ).all()
        assert "continued" in kinds


async def test_an_idle_chat_stays_and_a_busy_one_here_wins(db: Database) -> None:
    tg_id, vk_id = await _linked_person(db)
    async with db.session() as s, s.begin():
        tg = await s.get(ChannelAccount, tg_id)
        vk = await s.get(ChannelAccount, vk_id)
        assert tg is not None and vk is not None
        idle, _, _ = await repo.open_or_continue(s, tg)  # with the bot, nothing pending
        mine, _, came_from = await repo.open_or_continue(s, vk)
        assert came_from is None and mine.id != idle.id and mine.channel == "vk"
        idle.state = ConversationState.QUEUED  # Telegram's chat waits for an operator...
        mine.slots = {"_flow": {"name": "complaint", "pc": 1, "awaiting": "complaint_text"}}
    async with db.session() as s, s.begin():
        vk = await s.get(ChannelAccount, vk_id)
        assert vk is not None
        same, _, came_from = await repo.open_or_continue(s, vk)  # ...but VK's own form is busy
        assert (same.id, came_from) == (mine.id, None)


async def test_the_migrations_build_exactly_the_models(db: Database) -> None:
    """A column or table added to storage/models.py without a migration (or the other way
    round) would work in tests built from the models and break a real upgrade."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from storage.models import Base

    def diff(conn: Any) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
