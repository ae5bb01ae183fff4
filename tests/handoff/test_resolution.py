"""Resolution by the bot per topic (no operator, no repeat contact within 24 h), checked against
a hand-computed fixture on SQLite and PostgreSQL, and shown on the analytics page's JSON/CSV."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from handoff.analytics import service_report
from handoff.console.analytics_page import topics_csv
from storage.db import Database
from storage.models import ChannelAccount, Conversation, ConversationEvent, Message, Subscriber

MSK = ZoneInfo("Europe/Moscow")


def msk(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 11, day, hh, mm, tzinfo=MSK).astimezone(UTC)


class People:
    def __init__(self, session: Any) -> None:
        self.s = session
        self.users = 0

    async def person(self, *channels: str) -> dict[str, int]:
        """A subscriber with one account and one conversation per channel: channel -> conv."""
        sub = Subscriber(display_name="Иван", data={})
        self.s.add(sub)
        await self.s.flush()
        convs = {}
        for channel in channels:
            self.users += 1
            acc = ChannelAccount(
                subscriber_id=sub.id,
                channel=channel,
                external_user_id=str(self.users),
                chat_id=str(self.users),
            )
            self.s.add(acc)
            await self.s.flush()
            conv = Conversation(
                subscriber_id=sub.id, channel_account_id=acc.id, channel=channel, slots={}
            )
            self.s.add(conv)
            await self.s.flush()
            convs[channel] = conv.id
        return convs

    def turn(self, conv: int, at: datetime, text: str | None, intent: str | None = None,
             handled_as: str | None = None, payload: str | None = None) -> None:  # fmt: skip
        """A subscriber message the bot answered (same created_at, as the pipeline writes)."""
        nlu = None if intent is None else {"intent": intent, "confidence": 0.9, "ranking": []}
        if nlu is not None and handled_as:
            nlu["handled_as"] = handled_as
        self.s.add_all(
            [
                Message(conversation_id=conv, direction="in", author="subscriber", text=text,
                        payload=payload, nlu=nlu, created_at=at),
                Message(conversation_id=conv, direction="out", author="bot", text="ответ",
                        created_at=at),
            ]
        )  # fmt: skip


async def seed(db: Database) -> None:
    async with db.transaction() as s:
        p = People(s)
        a = await p.person("telegram")
        # A: one request, nothing for more than 24 h after -> payment_methods resolved.
        p.turn(a["telegram"], msk(20, 10), "где оплатить", "payment_methods")
        p.turn(a["telegram"], msk(21, 12), "спасибо", "thanks")  # 26 h later: a new contact
        b = await p.person("telegram", "vk")
        # B: balance in Telegram (the number is a form answer, not a request), then balance
        # again in VK 7 h later -> the Telegram contact is a repeat, the VK one resolved.
        p.turn(b["telegram"], msk(20, 11), "баланс", "balance")
        p.turn(b["telegram"], msk(20, 11, 1), "89110000001", "balance", handled_as="form:contract")
        p.turn(b["vk"], msk(20, 18), "сколько денег на счету", "balance")
        c = await p.person("vk")
        # C: asks for a human; escalated that day -> handed off. The operator chat that follows
        # (no bot reply) is not a contact.
        p.turn(c["vk"], msk(20, 12), "позовите оператора", "operator")
        s.add(ConversationEvent(conversation_id=c["vk"], kind="escalated", from_state="bot",
                                to_state="queued", data={"group": "consult", "reason": "asked"},
                                at=msk(20, 12)))  # fmt: skip
        s.add(Message(conversation_id=c["vk"], direction="in", author="subscriber",
                      text="алло", created_at=msk(20, 12, 5)))  # fmt: skip
        d = await p.person("telegram")
        # D: internet down late on the 20th, again the next morning (11 h later, a new day) ->
        # the first contact is a repeat, the second resolved.
        p.turn(d["telegram"], msk(20, 22), "не работает интернет", "internet_down")
        p.turn(d["telegram"], msk(21, 9), "всё ещё не работает", "internet_down")
        e = await p.person("telegram")
        # E: a miss first (no topic), then a topic button -> tariff_current resolved.
        p.turn(e["telegram"], msk(21, 10), "ыва", "out_of_scope", handled_as="miss")
        p.turn(e["telegram"], msk(21, 10, 1), None, payload="intent:tariff_current")
        f = await p.person("telegram")
        p.turn(f["telegram"], msk(21, 12), None)  # a photo only: no topic, resolved


async def test_resolution_by_topic_counts_handoffs_and_repeats(db: Database) -> None:
    await seed(db)
    async with db.session() as s:
        report = await service_report(
            s, start=date(2026, 11, 20), end=date(2026, 11, 21), timezone="Europe/Moscow",
            first_response_target=60,
        )  # fmt: skip
    got = {r.topic: (r.contacts, r.handed_off, r.repeated, r.resolved) for r in report.resolution}
    assert got == {
        "balance": (2, 0, 1, 1),
        "internet_down": (2, 0, 1, 1),
        "operator": (1, 1, 0, 0),
        "payment_methods": (1, 0, 0, 1),
        "thanks": (1, 0, 0, 1),
        "tariff_current": (1, 0, 0, 1),
        "—": (1, 0, 0, 1),
    }
    assert [r.topic for r in report.resolution][:2] == ["balance", "internet_down"]
    balance = report.resolution[0]
    assert balance.resolved_pct == 50.0
    (row,) = [r for r in report.to_json()["resolution_by_topic"] if r["topic"] == "operator"]
    assert row == {"topic": "operator", "contacts": 1, "handed_off": 1, "repeated": 0,
                   "resolved": 0, "resolved_pct": 0.0}  # fmt: skip
    lines = topics_csv(report.resolution).splitlines()
    assert lines[0].startswith("Тема (интент);Обращений;Решено ботом;Решено ботом, %")
    assert "balance;2;1;50,0;0;1" in lines


async def test_one_channel_counts_only_its_contacts_but_repeats_anywhere(db: Database) -> None:
    await seed(db)
    async with db.session() as s:
        report = await service_report(
            s, start=date(2026, 11, 20), end=date(2026, 11, 21), timezone="Europe/Moscow",
            first_response_target=60, channel="telegram",
        )  # fmt: skip
    got = {r.topic: (r.contacts, r.repeated, r.resolved) for r in report.resolution}
    # B's Telegram contact is still a repeat: B wrote again in VK.
    assert got["balance"] == (1, 1, 0)
    assert "operator" not in got  # C wrote in VK only
