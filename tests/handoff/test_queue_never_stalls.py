"""The live queue never stops: a chat every online operator of its group missed goes back to all
of them, and chats the free operators can't take never hide the chats behind them (SQLite and
PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from storage.db import Database
from storage.models import Conversation, ConversationEvent, ConversationState
from tests.handoff.test_desk import world


async def _kinds(db: Database, conv_id: int) -> list[str]:
    async with db.session() as s:
        return list(
            await s.scalars(
                select(ConversationEvent.kind)
                .where(ConversationEvent.conversation_id == conv_id)
                .order_by(ConversationEvent.id)
            )
        )


async def test_a_chat_missed_by_every_online_operator_is_offered_to_them_again(
    db: Database,
) -> None:
    w = await world(db)
    conv = await w.queued("1")
    anna = await w.operator("anna", max_chats=1)
    boris = await w.operator("boris", max_chats=1)
    [first] = await w.desk.assign_waiting()
    w.clock.now += timedelta(seconds=61)
    assert [m.operator_id for m in await w.desk.missed()] == [first.operator_id]
    [second] = await w.desk.assign_waiting()
    assert {first.operator_id, second.operator_id} == {anna, boris}
    w.clock.now += timedelta(seconds=61)
    await w.desk.missed()
    # Both online operators missed it: it must not sit in the queue while they are free.
    [again] = await w.desk.assign_waiting()
    assert again.conversation_id == conv
    chat = await w.conv(conv)
    assert chat.state == ConversationState.WITH_OPERATOR and chat.declined_by == []
    kinds = await _kinds(db, conv)
    assert kinds.count("missed") == 2 and "offered_again" in kinds
    async with db.session() as s:
        event = await s.scalar(
            select(ConversationEvent).where(
                ConversationEvent.conversation_id == conv,
                ConversationEvent.kind == "offered_again",
            )
        )
    assert event is not None and sorted(event.data["missed_by"]) == sorted([anna, boris])


async def test_chats_the_free_operator_missed_do_not_block_the_chats_behind_them(
    db: Database,
) -> None:
    """The measured stall: 2 x (free seats) chats at the head that the free operator missed
    (another, busy operator still may take them) kept every later chat waiting."""
    w = await world(db)
    anna = await w.operator("anna", max_chats=1)
    boris = await w.operator("boris", max_chats=1, online=False)
    busy = await w.queued("0")
    [a] = await w.desk.assign_waiting()
    assert a.operator_id == anna
    await w.desk.reply(anna, busy, "Здравствуйте!")
    await w.desk.set_status(boris, "online")
    head = []
    for user in ("1", "2", "3", "4"):
        w.clock.now += timedelta(seconds=1)
        head.append(await w.queued(user))
    async with db.session() as s, s.begin():
        await s.execute(
            update(Conversation).where(Conversation.id.in_(head)).values(declined_by=[boris])
        )
    w.clock.now += timedelta(seconds=1)
    later = await w.queued("5")
    done = await w.desk.assign_waiting()
    assert [(x.conversation_id, x.operator_id) for x in done] == [(later, boris)]
    for conv_id in head:  # they wait for anna, the one who hasn't missed them
        assert (await w.conv(conv_id)).state == ConversationState.QUEUED
    await w.desk.close(anna, busy, "solved")
    [next_] = await w.desk.assign_waiting()
    assert (next_.conversation_id, next_.operator_id) == (head[0], anna)
