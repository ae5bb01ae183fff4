"""Operator status and routing, on SQLite and PostgreSQL: an operator on a break ("away") or
offline gets no new chats and is not counted as at work in what the waiting subscriber is told;
a break keeps the chats the operator has; going offline with `release` hands them back to the
queue at their old place (ahead of new arrivals), tells the subscribers and is audited."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from storage.db import Database
from storage.models import AuditEntry, Conversation, ConversationEvent, ConversationState
from tests.handoff.test_desk import world


async def test_a_break_or_offline_means_no_new_chats_and_current_ones_stay(db: Database) -> None:
    w = await world(db)
    anna = await w.operator("anna", max_chats=3)
    first = await w.queued("1")
    [a] = await w.desk.assign_waiting()
    assert (a.conversation_id, a.operator_id) == (first, anna)

    await w.desk.set_status(anna, "away")  # a break: two free seats, yet no new chat
    second = await w.queued("2")
    assert await w.desk.assign_waiting() == []
    assert (await w.conv(second)).state == ConversationState.QUEUED
    mine = await w.conv(first)
    assert mine.state == ConversationState.WITH_OPERATOR and mine.operator_id == anna
    await w.desk.reply(anna, first, "Сейчас посмотрю")  # she finishes what she has

    boris = await w.operator("boris", max_chats=3)  # a colleague on the line gets it
    [b] = await w.desk.assign_waiting()
    assert (b.conversation_id, b.operator_id) == (second, boris)
    await w.desk.set_status(boris, "offline")
    third = await w.queued("3")
    assert await w.desk.assign_waiting() == []  # nobody online: it waits
    await w.desk.set_status(anna, "online")
    [c] = await w.desk.assign_waiting()
    assert (c.conversation_id, c.operator_id) == (third, anna)


async def test_the_waiting_subscriber_hears_a_break_as_nobody_at_work(db: Database) -> None:
    w = await world(db)
    anna = await w.operator("anna", max_chats=2)
    await w.desk.set_status(anna, "away")
    told = await w.say("1", "позовите оператора")
    assert any("нет на месте" in t for t in told), told  # not «ты следующий»
    async with db.session() as s:
        conv = await s.get(Conversation, await w.conversation_id("1"))
        assert conv is not None
        estimate = await w.queue.estimate(s, conv)
    assert estimate.mode == "offline" and estimate.operators_online == 0
    await w.desk.set_status(anna, "online")
    told = await w.say("2", "позовите оператора")
    assert any("Ты следующий" in t for t in told), told


async def test_going_offline_with_release_hands_chats_back_in_their_place(db: Database) -> None:
    w = await world(db)
    anna = await w.operator("anna", max_chats=2)
    first = await w.queued("1")
    w.clock.now += timedelta(seconds=10)
    second = await w.queued("2")
    assert len(await w.desk.assign_waiting()) == 2
    await w.desk.reply(anna, first, "Здравствуйте!")  # answered: it would never be "missed"
    w.clock.now += timedelta(seconds=10)
    waiting = await w.queued("3")  # a new arrival, already in the line
    assert await w.desk.open_chats(anna) == 2

    released = await w.desk.set_status(anna, "offline", release=True)
    assert sorted(released) == [first, second]
    assert await w.desk.open_chats(anna) == 0
    for conv_id in (first, second):
        conv = await w.conv(conv_id)
        assert conv.state == ConversationState.QUEUED and conv.operator_id is None
        assert conv.priority == 1  # ahead of new arrivals
        texts = await w.sent_texts(conv_id)
        assert "Передаю твой вопрос" in texts[-1], texts
    boris = await w.operator("boris", max_chats=2)
    done = await w.desk.assign_waiting()
    # their old places, ahead of the chat that arrived later
    assert [(a.conversation_id, a.operator_id) for a in done] == [(first, boris), (second, boris)]
    assert (await w.conv(waiting)).state == ConversationState.QUEUED
    async with db.session() as s:
        audited = list(
            await s.scalars(
                select(AuditEntry.conversation_id).where(AuditEntry.action == "chat_released")
            )
        )
    assert sorted(audited) == [first, second]
    async with db.session() as s:
        kinds = list(
            await s.scalars(
                select(ConversationEvent.kind)
                .where(ConversationEvent.conversation_id == first)
                .order_by(ConversationEvent.id)
            )
        )
    assert kinds[-3:] == ["assigned", "released", "assigned"], kinds


async def test_going_offline_without_release_keeps_the_chats(db: Database) -> None:
    w = await world(db)
    anna = await w.operator("anna", max_chats=2)
    conv = await w.queued("1")
    await w.desk.assign_waiting()
    assert await w.desk.set_status(anna, "offline") == []
    kept = await w.conv(conv)
    assert kept.state == ConversationState.WITH_OPERATOR and kept.operator_id == anna
    assert await w.desk.set_status(anna, "away", release=True) == []  # only offline releases
    assert (await w.conv(conv)).operator_id == anna
