"""Handoff on SQLite and PostgreSQL: the queue tells position and wait, assignment is fair and
respects capacity, a missed chat is re-offered, transfer, return to the bot, closing with CSAT,
working hours, and the bot's silence while operators own the chat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from dialogs.engine import DialogEngine
from dialogs.messages import Channel, Inbound
from dialogs.pipeline import ConversationService
from handoff.auth import add_operator
from handoff.config import HandoffSettings
from handoff.desk import Desk, DeskError
from handoff.queue import HandoffQueue
from handoff.rating import RatingResponder
from services.actions import flow_actions
from services.backend.demo import DemoBackend
from services.verification import Verifier
from storage.db import Database
from storage.models import (
    ChannelAccount,
    Conversation,
    ConversationEvent,
    ConversationState,
    DemoSms,
    Message,
    OutboxItem,
    Verification,
)
from tests.support import content_source, trained_nlu

MONDAY_NOON = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 12:00 in Moscow


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def world(db: Database, hours: dict[str, str] | None = None) -> World:
    w = World(db, await trained_nlu(), hours)
    async with db.session() as s, s.begin():
        pass
    return w


class World:
    """The pipeline, the dialog engine, the queue and the desk on one database and one clock."""

    def __init__(self, db: Database, nlu: Any, hours: dict[str, str] | None = None) -> None:
        self.db = db
        self.clock = Clock(MONDAY_NOON)
        content = content_source()
        settings = HandoffSettings(hours=hours if hours is not None else {})
        self.queue = HandoffQueue(content, settings, clock=self.clock)
        self.events: list[dict[str, Any]] = []
        db.on_commit(publish=self.events.append)
        self.desk = Desk(db, self.queue, content, settings, clock=self.clock)
        backend = DemoBackend()
        verifier = Verifier(backend)
        engine = DialogEngine(
            content,
            flow_actions(backend, verifier=verifier),
            escalator=self.queue,
            verifier=verifier,
        )
        self.service = ConversationService(
            db,
            engine,
            engine=nlu,
            rating=RatingResponder(content),
        )
        self._n = 0

    async def say(self, user: str, text: str | None = None, **kw: Any) -> list[str]:
        self._n += 1
        channel = kw.pop("channel", Channel.TELEGRAM)
        inbound = Inbound(channel, user, user, f"u{self._n}", text=text, first_name="Иван", **kw)
        result = await self.service.handle(inbound)
        return [r.text or "" for r in result.replies]

    async def queued(self, user: str) -> int:
        """A subscriber asks for a human; returns their conversation id."""
        await self.say(user, "позовите оператора")
        return await self.conversation_id(user)

    async def conversation_id(self, user: str) -> int:
        async with self.db.session() as s:
            conv_id = await s.scalar(
                select(Conversation.id)
                .join(ChannelAccount, ChannelAccount.id == Conversation.channel_account_id)
                .where(ChannelAccount.external_user_id == user)
                .order_by(Conversation.id.desc())
                .limit(1)
            )
            assert conv_id is not None
            return int(conv_id)

    async def conv(self, conv_id: int) -> Conversation:
        async with self.db.session() as s:
            conv = await s.get(Conversation, conv_id)
            assert conv is not None
            return conv

    async def operator(
        self,
        login: str,
        *,
        groups: tuple[str, ...] = ("consult",),
        max_chats: int = 2,
        online: bool = True,
    ) -> int:
        async with self.db.session() as s, s.begin():
            op = await add_operator(
                s,
                login=login,
                name=login.title(),
                password="secret-pass",
                groups=list(groups),
                max_chats=max_chats,
            )
            op_id = op.id
        if online:
            await self.desk.set_status(op_id, "online")
        return op_id

    async def sent_texts(self, conv_id: int) -> list[str]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(Message.text)
                .where(Message.conversation_id == conv_id, Message.direction == "out")
                .order_by(Message.id)
            )
            return [t or "" for t in rows]


async def test_queue_tells_position_and_expected_wait(db: Database) -> None:
    w = await world(db)
    anna = await w.operator("anna", max_chats=1, online=False)  # nobody online yet
    first = await w.say("1", "позовите оператора")
    assert any("Передаю чат специалисту" in t for t in first)
    # Nobody to estimate from: said so, with the line's hours, and no invented minutes.
    assert any("нет на месте" in t and "круглосуточно" in t for t in first), first
    assert any("1-й в очереди" in t for t in first) and not any("мин" in t for t in first)
    await w.desk.set_status(anna, "online")  # one seat, free: the first chat takes it
    second = await w.say("2", "хочу поговорить с человеком")
    # One chat has to end first: Exp(1/300 s) for the seat + 5..30 s to join (no history).
    assert any("2-й в очереди" in t and "Ждать до 10 мин" in t for t in second), second
    third = await w.say("3", "оператора пожалуйста")
    assert any("3-й в очереди" in t for t in third)
    conv3 = await w.conversation_id("3")
    async with db.session() as s:
        conv = await s.get(Conversation, conv3)
        assert conv is not None
        estimate = await w.queue.estimate(s, conv)
    # 2 chats must end on 1 seat, 5 min average handling: Erlang(2, 1/300 s), 15-85 %
    # (x with exp(-x) * (1 + x) = 0.85 and 0.15), plus 5..30 s to join.
    assert estimate.position == 3 and estimate.mode == "waiting"
    assert estimate.low_s == pytest.approx(300 * 0.6832 + 5, rel=1e-3)
    assert estimate.high_s == pytest.approx(300 * 3.3724 + 30, rel=1e-3)
    assert estimate.wait == "3–18 мин" and estimate.told_s == 18 * 60


async def test_a_free_operator_means_you_are_next_not_minutes(db: Database) -> None:
    w = await world(db)
    await w.operator("anna", max_chats=2)
    replies = await w.say("1", "позовите оператора")
    assert any("Ты следующий" in t and "уже подключается" in t for t in replies), replies
    assert not any("мин" in t for t in replies)


async def test_nobody_online_within_hours_is_said_with_the_hours(db: Database) -> None:
    w = await world(db, hours={"consult": "mon-sun 08:00-22:00"})
    replies = await w.say("1", "позовите оператора")  # Monday 12:00 in Moscow
    assert any("нет на месте" in t and "сегодня до 22:00" in t for t in replies), replies


async def test_assignment_is_longest_waiting_first_least_loaded_and_within_capacity(
    db: Database,
) -> None:
    w = await world(db)
    convs = []
    for user in ("1", "2", "3", "4", "5"):
        convs.append(await w.queued(user))
        w.clock.now += timedelta(seconds=10)
    anna = await w.operator("anna", max_chats=2)
    boris = await w.operator("boris", max_chats=2)
    done = await w.desk.assign_waiting()
    assert [a.conversation_id for a in done] == convs[:4]  # the longest-waiting four
    per_op: dict[int, int] = {}
    for a in done:
        per_op[a.operator_id] = per_op.get(a.operator_id, 0) + 1
    assert per_op == {anna: 2, boris: 2}  # alternating: least-loaded first
    assert (await w.conv(convs[4])).state == ConversationState.QUEUED
    assert await w.desk.assign_waiting() == []  # nobody has a free seat
    joined = await w.sent_texts(convs[0])
    assert any("К чату подключился специалист" in t for t in joined)


async def test_only_operators_of_the_right_group_get_the_chat(db: Database) -> None:
    w = await world(db)
    await w.operator("tech-only", groups=("tech",))
    conv = await w.queued("1")  # "operator" goes to consult
    assert await w.desk.assign_waiting() == []
    consult = await w.operator("consultant")
    [a] = await w.desk.assign_waiting()
    assert (a.conversation_id, a.operator_id) == (conv, consult)


async def test_a_missed_chat_is_recorded_and_offered_to_someone_else(db: Database) -> None:
    w = await world(db)
    conv = await w.queued("1")
    slow = await w.operator("slow", max_chats=1)
    [first] = await w.desk.assign_waiting()
    assert first.operator_id == slow
    fast = await w.operator("fast", max_chats=1)
    w.clock.now += timedelta(seconds=30)
    assert await w.desk.missed() == []  # still within the minute
    w.clock.now += timedelta(seconds=31)
    [missed] = await w.desk.missed()
    assert (missed.conversation_id, missed.operator_id) == (conv, slow)
    [again] = await w.desk.assign_waiting()
    assert again.operator_id == fast  # not back to the one who missed it
    async with db.session() as s:
        kinds = list(
            await s.scalars(
                select(ConversationEvent.kind)
                .where(ConversationEvent.conversation_id == conv)
                .order_by(ConversationEvent.id)
            )
        )
    assert kinds.count("missed") == 1 and kinds.count("assigned") == 2
    # Answering in time keeps the chat.
    await w.desk.reply(fast, conv, "Здравствуйте! Смотрю ваш вопрос.")
    w.clock.now += timedelta(seconds=120)
    assert await w.desk.missed() == []


async def test_operator_reply_goes_to_the_subscriber_and_the_bot_stays_silent(
    db: Database,
) -> None:
    w = await world(db)
    conv = await w.queued("1")
    assert await w.say("1", "алло, есть кто?") == []  # queued: the bot says nothing
    op = await w.operator("anna")
    await w.desk.assign_waiting()
    assert await w.say("1", "где оплатить?") == []  # with an operator: still nothing
    await w.desk.reply(op, conv, "Оплатить можно в приложении 💳")
    async with db.session() as s:
        body = await s.scalar(select(OutboxItem.body).order_by(OutboxItem.id.desc()).limit(1))
        first_response = (await s.get(Conversation, conv)).first_response_at  # type: ignore[union-attr]
    assert body == {"text": "Оплатить можно в приложении 💳"}
    assert first_response is not None
    other = await w.operator("boris")
    try:
        await w.desk.reply(other, conv, "я тоже тут")
    except DeskError as exc:
        assert exc.status == 403
    else:
        raise AssertionError("another operator must not answer someone else's chat")


async def test_an_operator_asks_for_verification_and_the_bot_takes_only_the_answers(
    db: Database,
) -> None:
    """The console's «Запросить подтверждение»: the bot asks, takes the number and the SMS code
    while the chat stays with the operator, and leaves every other message to the operator."""
    w = await world(db)
    await DemoBackend().prepare(db)
    conv = await w.queued("1")
    op = await w.operator("anna")
    await w.desk.assign_waiting()
    await w.desk.request_verification(op, conv)
    assert any("подтвердить, что это ты" in t for t in await w.sent_texts(conv))
    assert await w.say("1", "секунду, ищу телефон") == []  # for the operator, not the bot
    sent = await w.say("1", "8 911 000-00-01")
    assert any("SMS" in t for t in sent) and not any("₽" in t for t in sent)
    async with db.session() as s:
        sms = await s.scalar(select(DemoSms.text).order_by(DemoSms.id.desc()).limit(1))
        state = (await s.get(Conversation, conv)).state  # type: ignore[union-attr]
    assert sms is not None and state == "with_operator"
    code = sms.split(": ", 1)[1][:6]
    done = await w.say("1", code)
    assert any("это ты" in t and "Анна" in t for t in done)
    async with db.session() as s:
        verified = await s.scalar(
            select(Verification.method).where(Verification.revoked_at.is_(None))
        )
        conversation = await s.get(Conversation, conv)
    assert verified == "sms"
    assert conversation is not None and "_verify" not in conversation.slots
    assert await w.say("1", "спасибо!") == []  # over: the operator has the chat again


async def test_transfer_to_a_group_with_a_note_and_to_an_operator(db: Database) -> None:
    w = await world(db)
    conv = await w.queued("1")
    anna = await w.operator("anna")
    await w.desk.assign_waiting()
    await w.desk.transfer(anna, conv, group="tech", note="роутер мигает красным")
    moved = await w.conv(conv)
    assert (moved.state, moved.skill_group, moved.operator_id) == ("queued", "tech", None)
    texts = await w.sent_texts(conv)
    assert any("профильным специалистам" in t for t in texts)
    assert any("в очереди" in t for t in texts[-2:])
    techie = await w.operator("techie", groups=("tech",))
    [a] = await w.desk.assign_waiting()
    assert a.operator_id == techie
    boris = await w.operator("boris", groups=("tech",))
    await w.desk.transfer(techie, conv, to_operator=boris, note="посмотри, пожалуйста")
    assert (await w.conv(conv)).operator_id == boris
    async with db.session() as s:
        notes = [
            e.data.get("note")
            for e in await s.scalars(
                select(ConversationEvent).where(ConversationEvent.conversation_id == conv)
            )
        ]
    assert "роутер мигает красным" in notes and "посмотри, пожалуйста" in notes


async def test_return_to_bot_hands_the_chat_back(db: Database) -> None:
    w = await world(db)
    conv = await w.queued("1")
    anna = await w.operator("anna")
    await w.desk.assign_waiting()
    await w.desk.return_to_bot(anna, conv)
    assert (await w.conv(conv)).state == ConversationState.BOT
    reply = await w.say("1", "где оплатить?")
    assert any("Оплатить связь" in t for t in reply)  # the bot answers again


async def test_a_new_request_after_return_to_bot_is_a_new_queue_entry(db: Database) -> None:
    w = await world(db)
    conv = await w.queued("1")
    anna = await w.operator("anna", max_chats=1)
    boris = await w.operator("boris", max_chats=1)
    [a] = await w.desk.assign_waiting()
    w.clock.now += timedelta(seconds=61)
    await w.desk.missed()  # missed once by whoever got it
    [b] = await w.desk.assign_waiting()
    await w.desk.reply(b.operator_id, conv, "Здравствуйте!")
    await w.desk.return_to_bot(b.operator_id, conv)
    w.clock.now += timedelta(hours=2)
    await w.say("1", "позовите оператора")
    assert await w.conversation_id("1") == conv  # the same conversation...
    again = await w.conv(conv)
    # ...but a new wait: from now, unanswered, offered to everyone again.
    assert again.queued_at == w.clock.now.replace(tzinfo=again.queued_at.tzinfo)
    assert again.first_response_at is None and again.declined_by == []
    assert {a.operator_id, b.operator_id} == {anna, boris}


async def test_close_asks_for_csat_stores_score_and_comment_then_a_new_chat_starts(
    db: Database,
) -> None:
    w = await world(db)
    conv = await w.queued("1")
    anna = await w.operator("anna")
    await w.desk.assign_waiting()
    await w.desk.reply(anna, conv, "Готово, перевели деньги обратно.")
    await w.desk.close(anna, conv, "solved")
    assert (await w.conv(conv)).state == ConversationState.RATING
    assert any("Оцени" in t for t in await w.sent_texts(conv))
    after_score = await w.say("1", payload="csat:5")
    assert any("пару слов" in t for t in after_score)
    thanks = await w.say("1", "Быстро и вежливо, спасибо!")
    assert any("Спасибо! Хорошего дня" in t for t in thanks)
    rated = await w.conv(conv)
    assert (rated.state, rated.csat, rated.csat_comment) == (
        "closed",
        5,
        "Быстро и вежливо, спасибо!",
    )
    assert rated.resolution == "solved"
    answer = await w.say("1", "какие есть тарифы?")
    assert any("тариф" in t.lower() for t in answer)
    assert await w.conversation_id("1") != conv  # a new conversation with the bot


async def test_a_subscriber_who_skips_the_rating_just_carries_on(db: Database) -> None:
    w = await world(db)
    conv = await w.queued("1")
    anna = await w.operator("anna")
    await w.desk.assign_waiting()
    await w.desk.close(anna, conv, "solved")
    answer = await w.say("1", "где оплатить?")
    assert any("Оплатить связь" in t for t in answer)
    closed = await w.conv(conv)
    assert closed.state == ConversationState.CLOSED and closed.csat is None


async def test_outside_working_hours_the_subscriber_is_told_when_operators_return(
    db: Database,
) -> None:
    w = await world(db, hours={"consult": "mon-fri 09:00-18:00"})
    w.clock.now = datetime(2026, 11, 21, 19, 0, tzinfo=UTC)  # Saturday 22:00 in Moscow
    replies = await w.say("1", "позовите оператора")
    assert any("вернутся в пн в 09:00" in t for t in replies), replies
    assert not any("в очереди" in t for t in replies)
    conv = await w.conversation_id("1")
    assert await w.say("1", "у меня списали деньги дважды") == []  # kept for the morning
    await w.operator("anna")
    assert await w.desk.assign_waiting() == []  # closed: nobody is assigned
    w.clock.now = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # Monday 09:00 in Moscow
    [a] = await w.desk.assign_waiting()
    assert a.conversation_id == conv
    async with db.session() as s:
        texts = list(
            await s.scalars(
                select(Message.text).where(
                    Message.conversation_id == conv, Message.direction == "in"
                )
            )
        )
    assert "у меня списали деньги дважды" in texts  # the operator sees the night message


async def test_waiting_subscribers_hear_when_the_queue_moves(db: Database) -> None:
    w = await world(db)
    for user in ("1", "2", "3", "4", "5"):
        await w.queued(user)
        w.clock.now += timedelta(seconds=5)
    last = await w.conversation_id("5")
    anna = await w.operator("anna", max_chats=2)
    await w.desk.assign_waiting()  # the first two leave the queue
    await w.desk.tell_positions()
    told = await w.sent_texts(last)
    assert not any("Ты теперь" in t for t in told)  # told 25 s ago: not yet again
    w.clock.now += timedelta(seconds=60)
    await w.desk.tell_positions()
    texts = await w.sent_texts(last)
    assert any("Ты теперь 3-й" in t and "ждать" in t for t in texts), texts
    await w.desk.tell_positions()
    assert (await w.sent_texts(last)) == texts  # nothing new to tell, nothing sent
    for conv_id in (await w.conversation_id("1"), await w.conversation_id("2")):
        await w.desk.close(anna, conv_id, "solved")
    await w.desk.assign_waiting()  # moved up by 2, but told a moment ago: no spam
    w.clock.now += timedelta(seconds=10)
    await w.desk.tell_positions()
    assert (await w.sent_texts(last)) == texts
    w.clock.now += timedelta(seconds=55)
    await w.desk.tell_positions()
    assert any("Ты теперь 1-й" in t for t in await w.sent_texts(last))


async def test_a_subscriber_waiting_with_nobody_online_hears_when_an_operator_comes(
    db: Database,
) -> None:
    w = await world(db)
    anna = await w.operator("anna", max_chats=1)
    busy = await w.queued("0")
    await w.desk.assign_waiting()
    await w.desk.set_status(anna, "offline")  # her chat stays hers; nobody is online now
    conv = await w.queued("1")
    assert any("нет на месте" in t for t in await w.sent_texts(conv))
    w.clock.now += timedelta(seconds=90)
    assert await w.desk.tell_positions() == 0  # still nobody: said once, not repeated
    await w.desk.set_status(anna, "online")
    w.clock.now += timedelta(seconds=5)
    assert await w.desk.tell_positions() == 1
    texts = await w.sent_texts(conv)
    assert "Ты теперь 1-й" in texts[-1] and "ждать" in texts[-1], texts
    assert busy != conv


async def test_nps_is_asked_after_csat_when_turned_on(db: Database) -> None:
    w = await world(db)
    w.service.rating = RatingResponder(content_source(), nps=True)
    conv = await w.queued("1")
    anna = await w.operator("anna")
    await w.desk.assign_waiting()
    await w.desk.close(anna, conv, "solved")
    asked = await w.say("1", payload="csat:4")
    assert any("порекомендуешь" in t for t in asked)
    await w.say("1", "9")  # typed instead of pressed
    await w.say("1", payload="csat:done")  # «Без комментария»
    rated = await w.conv(conv)
    assert (rated.state, rated.csat, rated.nps, rated.csat_comment) == ("closed", 4, 9, None)
