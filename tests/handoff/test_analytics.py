"""Service analytics checked against a hand-computed fixture: three days in Moscow, two channels,
two skill groups, on SQLite and PostgreSQL. Every expected figure is worked out in the comments
from the events `seed` inserts. Then the turn rule the figures rest on (a subscriber message and
the bot's replies share one `created_at`) is checked against the real pipeline and desk, and a
day that changes its UTC offset (DST) is bucketed right."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from handoff.analytics import NO_GROUP, Count, Figures, Reason, Report, service_report
from storage.db import Database
from storage.models import (
    ChannelAccount,
    Conversation,
    ConversationEvent,
    Message,
    Subscriber,
    utcnow,
)

MSK = ZoneInfo("Europe/Moscow")  # UTC+3 all year
FIRST, LAST = date(2026, 11, 20), date(2026, 11, 22)
TARGET = 60.0  # seconds: a timely first response


def msk(day: int, hh: int, mm: int, ss: float = 0) -> datetime:
    """A Moscow wall-clock time in November 2026, as the aware UTC datetime the app stores."""
    whole = int(ss)
    micro = round((ss - whole) * 1_000_000)
    return datetime(2026, 11, day, hh, mm, whole, micro, tzinfo=MSK).astimezone(UTC)


class Seeder:
    """Writes conversations the way the app does: a bot turn is the subscriber message plus the
    bot's reply with the same created_at; messages to operators get no bot reply."""

    def __init__(self, session: Any) -> None:
        self.s = session
        self.accounts: dict[str, int] = {}
        self.channels: dict[int, str] = {}  # conversation id -> its channel
        self.subscriber = 0

    async def start(self) -> None:
        sub = Subscriber(display_name="Иван", data={})
        self.s.add(sub)
        await self.s.flush()
        self.subscriber = sub.id
        for n, channel in enumerate(("telegram", "vk")):
            acc = ChannelAccount(
                subscriber_id=sub.id, channel=channel, external_user_id=str(n), chat_id=str(n)
            )
            self.s.add(acc)
            await self.s.flush()
            self.accounts[channel] = acc.id

    async def conversation(self, channel: str, **fields: Any) -> int:
        conv = Conversation(
            subscriber_id=self.subscriber,
            channel_account_id=self.accounts[channel],
            channel=channel,
            slots={},
            created_at=fields.pop("created_at", msk(19, 12, 0)),
            **fields,
        )
        self.s.add(conv)
        await self.s.flush()
        self.channels[conv.id] = channel
        return conv.id

    def message(
        self,
        conv: int,
        author: str,
        at: datetime,
        text: str | None = None,
        *,
        intent: str | None = None,
        handled_as: str | None = None,
        channel: str | None = "",
        payload: str | None = None,
    ) -> None:
        nlu = None
        if intent is not None:
            nlu = {"text": text, "intent": intent, "confidence": 0.9, "ranking": []}
            if handled_as:
                nlu["handled_as"] = handled_as
        self.s.add(
            Message(
                conversation_id=conv,
                direction="in" if author == "subscriber" else "out",
                author=author,
                text=text,
                payload=payload,
                nlu=nlu,
                channel=None if channel is None else channel or self.channels[conv],
                created_at=at,
            )
        )

    def bot_turn(self, conv: int, at: datetime, text: str | None = None, **kw: Any) -> None:
        self.message(conv, "subscriber", at, text, **kw)
        self.message(conv, "bot", at, "ответ бота", channel=kw.get("channel", ""))

    def event(
        self, conv: int, kind: str, at: datetime, to_state: str, from_state: str | None, **data: Any
    ) -> None:
        self.s.add(
            ConversationEvent(
                conversation_id=conv,
                kind=kind,
                from_state=from_state,
                to_state=to_state,
                data=data,
                at=at,
            )
        )

    def escalated(
        self, conv: int, at: datetime, group: str, reason: str, *, transfer: bool = False
    ) -> None:
        self.event(
            conv, "escalated", at, "queued", "with_operator" if transfer else "bot",
            group=group, reason=reason,
        )  # fmt: skip


async def seed(db: Database) -> dict[str, int]:
    """The fixture (times are Moscow's). Returns the conversation ids by name."""
    async with db.session() as s, s.begin():
        w = Seeder(s)
        await w.start()

        async def conv(name: str, channel: str, **fields: Any) -> int:
            cid = await w.conversation(channel, **fields)
            ids[name] = cid
            return cid

        ids: dict[str, int] = {}
        # C1, Telegram, with the bot only, on the 20th and the 21st (one conversation: a bot
        # conversation stays open until an operator closes it).
        c1 = await conv("c1", "telegram", state="bot")
        w.bot_turn(
            c1, msk(20, 0, 0), "где оплатить?", intent="payment_methods"
        )  # the first instant
        w.bot_turn(c1, msk(20, 10, 1), "  Хочу   КОТИКА ", intent="out_of_scope", handled_as="miss")
        w.bot_turn(c1, msk(20, 10, 2), None, payload="intent:payment_methods")  # a button
        w.bot_turn(c1, msk(21, 9, 0), "где оплатить?", intent="payment_methods")
        w.bot_turn(c1, msk(21, 9, 1), "/start", intent="greet")  # a command, not a question

        # C2, Telegram: a form answer, asks for a human (consult), answered in 40 s, one reply
        # inside the session after 60 s, closed and rated 5 / NPS 10 on the 20th.
        c2 = await conv(
            "c2", "telegram", state="closed", skill_group="consult",
            handoff_reason="asked for a human", queued_at=msk(20, 11, 2), assigned_at=msk(20, 11, 2, 10),
            first_response_at=msk(20, 11, 2, 40), operator_replied_at=msk(20, 11, 4),
            closed_at=msk(20, 11, 5), resolution="solved", csat=5, nps=10,
        )  # fmt: skip
        w.bot_turn(c2, msk(20, 11, 0), "баланс", intent="balance")
        w.bot_turn(
            c2, msk(20, 11, 1), "+7 916 123-45-67", intent="balance", handled_as="form:phone"
        )
        w.bot_turn(c2, msk(20, 11, 2), "позовите оператора", intent="operator")
        w.escalated(c2, msk(20, 11, 2), "consult", "asked for a human")
        w.event(c2, "assigned", msk(20, 11, 2, 10), "with_operator", "queued", operator_id=1)
        w.message(c2, "subscriber", msk(20, 11, 2, 30), "ау", intent="greet")  # to the queue
        w.message(c2, "operator", msk(20, 11, 2, 40), "Здравствуйте!")
        w.message(c2, "subscriber", msk(20, 11, 3), "а когда?", intent="out_of_scope")
        w.message(c2, "subscriber", msk(20, 11, 3, 20), "?", intent="out_of_scope")
        w.message(c2, "operator", msk(20, 11, 4), "Уже")
        w.event(c2, "closed", msk(20, 11, 5), "rating", "with_operator", resolution="solved")
        # the rating, typed: answered by the rating step after closed_at, not by the bot
        w.bot_turn(c2, msk(20, 11, 5, 10), "5", intent="out_of_scope")
        w.bot_turn(c2, msk(20, 11, 5, 20), "10", intent="out_of_scope")
        w.event(c2, "rated", msk(20, 11, 5, 20), "closed", "rating", csat=5, nps=10)

        # C3, VK: two misses, the bot gives up (tech); the first operator misses it, the second
        # answers 120 s after the handoff; closed on the 20th, rated 3 / NPS 6.
        c3 = await conv(
            "c3", "vk", state="closed", skill_group="tech", queued_at=msk(20, 12, 1),
            assigned_at=msk(20, 12, 2, 10), first_response_at=msk(20, 12, 3),
            operator_replied_at=msk(20, 12, 3), closed_at=msk(20, 12, 10), csat=3, nps=6,
        )  # fmt: skip
        w.bot_turn(c3, msk(20, 12, 0), "фывапр", intent="out_of_scope", handled_as="miss")
        w.bot_turn(c3, msk(20, 12, 1), "Фывапр", intent="out_of_scope", handled_as="miss")
        w.escalated(c3, msk(20, 12, 1), "tech", "the bot did not understand")
        w.event(c3, "assigned", msk(20, 12, 1, 5), "with_operator", "queued", operator_id=1)
        w.event(c3, "missed", msk(20, 12, 2, 5), "queued", "with_operator", operator_id=1)
        w.event(c3, "assigned", msk(20, 12, 2, 10), "with_operator", "queued", operator_id=2)
        w.message(c3, "operator", msk(20, 12, 3), "Чем помочь?")

        # C4, VK, the 21st, with the bot only; its messages predate messages.channel (NULL).
        c4 = await conv("c4", "vk", state="bot")
        w.bot_turn(c4, msk(21, 15, 0), "тариф", intent="tariff_current", channel=None)
        w.bot_turn(c4, msk(21, 15, 1), "ХОЧУ котика", intent="out_of_scope", handled_as="miss", channel=None)  # fmt: skip
        w.bot_turn(c4, msk(21, 15, 2), "отмена", intent="deny", handled_as="cancel", channel=None)

        # C5, Telegram: asks for a human at 23:58 on the 21st (consult), assigned at once; the
        # first reply comes after midnight (150 s), then a reply inside the session after 45 s;
        # transferred to tech at 00:05 (the transfer restarts queued_at), taken, closed on the
        # 22nd, rated 4 / NPS 9.
        c5 = await conv(
            "c5", "telegram", state="closed", skill_group="tech", queued_at=msk(22, 0, 5),
            assigned_at=msk(22, 0, 6), first_response_at=msk(22, 0, 0, 30),
            operator_replied_at=msk(22, 0, 1, 45), closed_at=msk(22, 0, 20), csat=4, nps=9,
        )  # fmt: skip
        w.bot_turn(c5, msk(21, 23, 58), "оператор", intent="operator")
        w.escalated(c5, msk(21, 23, 58), "consult", "asked for a human")
        w.event(c5, "assigned", msk(21, 23, 58, 10), "with_operator", "queued", operator_id=1)
        w.message(c5, "operator", msk(22, 0, 0, 30), "Слушаю")
        w.message(c5, "subscriber", msk(22, 0, 1), "не работает", intent="internet_down")
        w.message(c5, "operator", msk(22, 0, 1, 45), "Передаю в техподдержку")
        w.escalated(c5, msk(22, 0, 5), "tech", "transfer from Olga", transfer=True)
        w.event(c5, "taken", msk(22, 0, 6), "with_operator", "queued", operator_id=3)
        w.event(c5, "closed", msk(22, 0, 20), "rating", "with_operator", resolution="solved")

        # C6, VK, the 22nd, with the bot only; its second message was written in Telegram
        # (linked accounts), half a millisecond before midnight.
        c6 = await conv("c6", "vk", state="bot")
        w.bot_turn(c6, msk(22, 10, 0), "где оплатить", intent="payment_methods")
        w.bot_turn(c6, msk(22, 23, 59, 59.9995), "интернет не работает", intent="internet_down", channel="telegram")  # fmt: skip

        # C7, Telegram, outside the period: a microsecond before it and at its end.
        c7 = await conv(
            "c7", "telegram", state="closed", skill_group="consult", queued_at=msk(19, 23, 0),
            first_response_at=msk(19, 23, 0, 10), operator_replied_at=msk(19, 23, 0, 10),
            closed_at=msk(19, 23, 30), csat=1, nps=0,
        )  # fmt: skip
        w.bot_turn(c7, msk(19, 23, 0), "вне периода", intent="out_of_scope", handled_as="miss")
        w.escalated(c7, msk(19, 23, 0), "consult", "asked for a human")
        w.event(c7, "assigned", msk(19, 23, 0, 5), "with_operator", "queued", operator_id=1)
        w.message(c7, "operator", msk(19, 23, 0, 10), "Да?")
        w.bot_turn(c7, msk(19, 23, 59, 59.999999), "вне периода", intent="out_of_scope", handled_as="miss")  # fmt: skip
        w.bot_turn(c7, msk(23, 0, 0), "вне периода", intent="out_of_scope", handled_as="miss")
    return ids


async def report(db: Database, **kw: Any) -> Report:
    async with db.session() as s:
        return await service_report(
            s,
            start=kw.pop("start", FIRST),
            end=kw.pop("end", LAST),
            timezone="Europe/Moscow",
            first_response_target=TARGET,
            **kw,
        )


def cells(r: Report) -> dict[tuple[str, str, str | None], dict[str, int | float]]:
    """Each row's nonzero counts and sums, by (day, channel, group)."""
    return {
        (row.day.isoformat(), row.channel, row.group): {
            k: v for k, v in vars_of(row.figures).items() if v
        }
        for row in r.rows
    }


def vars_of(f: Figures) -> dict[str, int | float]:
    return {name: getattr(f, name) for name in f.__dataclass_fields__}


# The expected rows. Contacts: the conversations a subscriber wrote to the bot in (a day, a
# channel). Handed off ones sit in the group they were sent to that day, the rest in None.
#   20th Telegram: C1 (contained), C2 (handed to consult at 11:02)    -> None 1, consult 1
#        bot texts: C1 "где оплатить?" + miss (the button is no text) = 2; C2 "баланс", the phone
#        (a form answer), "позовите оператора" = 3 ("ау" went to the queue, "5"/"10" are the
#        rating after closed_at): 5 texts, 1 miss
#   20th VK: C3 (handed to tech), its 2 texts are both misses           -> None 0, tech 1
#   21st Telegram: C1 (contained; "где оплатить?", /start is no text), C5 (handed to consult at
#        23:58; "оператор") -> None 1 contact 2 texts, consult 1
#   21st VK: C4 (contained): "тариф", a miss, "отмена" = 3 texts, 1 miss (messages.channel NULL:
#        the conversation's channel)
#   22nd: C6 wrote in VK (10:00) and in Telegram (23:59:59.9995): one contact in each, 1 text each
#   C5's messages of the 22nd went to operators: no contact that day.
# Operator figures (the chat's current group):
#   C2 (20th, Telegram, consult): waited 11:02:00 -> 11:02:40 = 40 s (timely); inside the session
#        11:03:00 -> 11:04:00 = 60 s (the earliest unanswered message counts); assigned once;
#        CSAT 5 (good), NPS 10 (promoter)
#   C3 (20th, VK, tech): 12:01:00 -> 12:03:00 = 120 s (late); assigned (two assignments, one
#        chat) and missed once; CSAT 3, NPS 6 (detractor)
#   C5 (Telegram, tech): assigned 21st 23:58:10 and, after the transfer, 22nd 00:06 (taken); the
#        first reply 22nd 00:00:30 after waiting since the 23:58:00 handoff = 150 s (late; by
#        queued_at, restarted by the transfer at 00:05, it would be -270 s); inside the session
#        00:01:00 -> 00:01:45 = 45 s; CSAT 4 (good), NPS 9 (promoter)
ROWS = {
    ("2026-11-20", "telegram", None): {"contacts": 1, "bot_texts": 5, "misses": 1},
    ("2026-11-20", "telegram", "consult"): {
        "contacts": 1, "handed_off": 1, "first_responses": 1, "timely": 1,
        "first_response_total_s": 40.0, "session_responses": 1, "session_response_total_s": 60.0,
        "assigned": 1, "rated": 1, "csat_good": 1, "csat_total": 5, "nps_answers": 1, "promoters": 1,
    },
    ("2026-11-20", "vk", None): {"bot_texts": 2, "misses": 2},
    ("2026-11-20", "vk", "tech"): {
        "contacts": 1, "handed_off": 1, "first_responses": 1, "first_response_total_s": 120.0,
        "assigned": 1, "missed": 1, "rated": 1, "csat_total": 3, "nps_answers": 1, "detractors": 1,
    },
    ("2026-11-21", "telegram", None): {"contacts": 1, "bot_texts": 2},
    ("2026-11-21", "telegram", "consult"): {"contacts": 1, "handed_off": 1},
    ("2026-11-21", "telegram", "tech"): {"assigned": 1},
    ("2026-11-21", "vk", None): {"contacts": 1, "bot_texts": 3, "misses": 1},
    ("2026-11-22", "telegram", None): {"contacts": 1, "bot_texts": 1},
    ("2026-11-22", "telegram", "tech"): {
        "first_responses": 1, "first_response_total_s": 150.0, "session_responses": 1,
        "session_response_total_s": 45.0, "assigned": 1, "rated": 1, "csat_good": 1,
        "csat_total": 4, "nps_answers": 1, "promoters": 1,
    },
    ("2026-11-22", "vk", None): {"contacts": 1, "bot_texts": 1},
}  # fmt: skip


async def test_figures_match_the_hand_computed_fixture(db: Database) -> None:
    await seed(db)
    r = await report(db)
    assert cells(r) == ROWS
    t = r.totals
    # contacts 2+1 + 2+1 + 1+1 = 8, handed off C2, C3, C5 = 3: 5/8 contained
    assert (t.contacts, t.handed_off, t.contained, t.containment_pct) == (8, 3, 5, 62.5)
    # texts 5+2 + 2+3 + 1+1 = 14, misses 1+2+1 = 4: 4/14 = 28.57 %
    assert (t.bot_texts, t.misses, t.fallback_pct) == (14, 4, 28.6)
    # first responses 40 s, 120 s, 150 s: 1 of 3 within 60 s, mean 310/3 = 103.33 s
    assert (t.first_responses, t.timely_pct, t.avg_first_response_s) == (3, 33.3, 103.3)
    assert (t.session_responses, t.avg_response_in_session_s) == (2, 52.5)  # (60 + 45) / 2
    assert (t.assigned, t.missed, t.missed_pct) == (4, 1, 25.0)  # C2, C3, C5 twice; C3 missed
    # CSAT 5, 3, 4: two of three are 4-5, mean 4.0; NPS 10, 6, 9: (2 - 1) / 3 = 33.3
    assert (t.rated, t.csat_pct, t.csat_avg) == (3, 66.7, 4.0)
    assert (t.nps_answers, t.promoters, t.detractors, t.nps) == (3, 2, 1, 33.3)

    # requests the bot answered: "где оплатить" C1 twice and C6; "позовите оператора" (C2) and
    # "оператор" (C5); "баланс"; "тариф"; "интернет не работает" (C6). Not: the form answer,
    # "отмена", misses, /start, messages to operators, the typed rating, C7.
    assert r.top_intents == [
        Count("payment_methods", 3),
        Count("operator", 2),
        Count("balance", 1),
        Count("internet_down", 1),
        Count("tariff_current", 1),
    ]
    # "  Хочу   КОТИКА " (C1) and "ХОЧУ котика" (C4); "фывапр" and "Фывапр" (C3); ties by text
    assert r.top_fallback_texts == [Count("фывапр", 2), Count("хочу котика", 2)]
    # the period's "escalated" events: C2, C3, C5 and C5's transfer (C7's is on the 19th)
    assert r.handoff_reasons == [
        Reason("asked for a human", "consult", 2),
        Reason("the bot did not understand", "tech", 1),
        Reason("transfer from Olga", "tech", 1),
    ]
    assert r.handoffs == 4

    days = {d.isoformat(): f for d, f in r.by_day()}
    assert list(days) == ["2026-11-20", "2026-11-21", "2026-11-22"]
    # 20th: contacts C1, C2, C3 (2 handed off) = 33.3 %; texts 7, misses 3 = 42.9 %
    assert (days["2026-11-20"].containment_pct, days["2026-11-20"].fallback_pct) == (33.3, 42.9)
    # 21st: C1, C4 contained, C5 handed off = 66.7 %; texts 2 + 3, 1 miss = 20 %
    assert (days["2026-11-21"].containment_pct, days["2026-11-21"].fallback_pct) == (66.7, 20.0)
    assert (days["2026-11-22"].containment_pct, days["2026-11-22"].fallback_pct) == (100.0, 0.0)
    assert days["2026-11-22"].timely_pct == 0.0 and days["2026-11-20"].timely_pct == 50.0

    channels = dict(r.by_channel())
    # Telegram: contacts 2+2+1 = 5, handed off C2, C5: 60 %; texts 5+2+1 = 8, 1 miss: 12.5 %
    assert (channels["telegram"].containment_pct, channels["telegram"].fallback_pct) == (60.0, 12.5)
    # VK: contacts 1+1+1 = 3, C3 handed off: 66.7 %; texts 2+3+1 = 6, misses 3: 50 %
    assert (channels["vk"].containment_pct, channels["vk"].fallback_pct) == (66.7, 50.0)
    groups = dict(r.by_group())
    assert list(groups) == [None, "consult", "tech"]
    assert (groups[None].contacts, groups[None].containment_pct) == (5, 100.0)
    assert (groups["consult"].contacts, groups["consult"].containment_pct) == (2, 0.0)


async def test_filters_by_channel_and_group(db: Database) -> None:
    await seed(db)
    vk = await report(db, channel="vk")
    assert {key for key in cells(vk)} == {k for k in ROWS if k[1] == "vk"}
    t = vk.totals
    assert (t.contacts, t.containment_pct, t.bot_texts, t.fallback_pct) == (3, 66.7, 6, 50.0)
    # only C3: 120 s, missed once of one assignment, CSAT 3, NPS 6
    assert (t.first_responses, t.timely_pct, t.avg_first_response_s) == (1, 0.0, 120.0)
    assert (t.missed_pct, t.csat_pct, t.csat_avg, t.nps) == (100.0, 0.0, 3.0, -100.0)
    # C6's internet_down was written in Telegram
    assert vk.top_intents == [Count("payment_methods", 1), Count("tariff_current", 1)]
    assert vk.top_fallback_texts == [Count("фывапр", 2), Count("хочу котика", 1)]
    assert vk.handoff_reasons == [Reason("the bot did not understand", "tech", 1)]

    tech = await report(db, group="tech")
    assert {key for key in cells(tech)} == {k for k in ROWS if k[2] == "tech"}
    t = tech.totals
    assert (t.contacts, t.handed_off, t.containment_pct, t.bot_texts) == (1, 1, 0.0, 0)
    # C3 120 s and C5 150 s: none timely, mean 135 s; C5's 45 s inside the session
    assert (t.first_responses, t.timely_pct, t.avg_first_response_s) == (2, 0.0, 135.0)
    assert t.avg_response_in_session_s == 45.0
    assert (t.assigned, t.missed, t.missed_pct) == (3, 1, 33.3)  # C3 on the 20th, C5 21st + 22nd
    assert (t.csat_pct, t.csat_avg, t.nps) == (50.0, 3.5, 0.0)  # 3 and 4; NPS 6 and 9
    assert tech.top_intents == [] and tech.top_fallback_texts == []  # the bot's work: no group
    assert tech.handoff_reasons == [
        Reason("the bot did not understand", "tech", 1),
        Reason("transfer from Olga", "tech", 1),
    ]

    bot = await report(db, group=NO_GROUP)
    assert {key for key in cells(bot)} == {k for k in ROWS if k[2] is None}
    t = bot.totals
    assert (t.contacts, t.containment_pct, t.bot_texts, t.misses, t.first_responses) == (
        5, 100.0, 14, 4, 0,
    )  # fmt: skip
    assert bot.top_intents[0] == Count("payment_methods", 3) and bot.handoff_reasons == []

    one_day = await report(db, start=date(2026, 11, 21), end=date(2026, 11, 21))
    assert {key for key in cells(one_day)} == {k for k in ROWS if k[0] == "2026-11-21"}
    assert one_day.handoff_reasons == [Reason("asked for a human", "consult", 1)]


async def test_supervisor_today_is_the_same_count(db: Database) -> None:
    """The supervisor page's "today" (handoff.console.stats) is these operator figures."""
    from handoff.console.stats import supervisor_view

    await seed(db)
    async with db.session() as s:
        view = await supervisor_view(
            s, groups=[], timezone="Europe/Moscow", first_response_target=TARGET,
            now=msk(20, 23, 0),
        )  # fmt: skip
    day = dict((await report(db, start=FIRST, end=FIRST)).by_day())[FIRST]
    today = view["today"]
    assert (today["first_responses"], today["timely_first_response_pct"]) == (2, 50.0)
    assert today["avg_first_response_s"] == day.avg_first_response_s == 80.0  # (40 + 120) / 2
    assert today["avg_response_in_session_s"] == day.avg_response_in_session_s == 60.0
    assert (today["assigned"], today["missed_pct"]) == (day.assigned, day.missed_pct) == (2, 50.0)
    assert (today["rated"], today["csat_pct"], today["csat_avg"]) == (2, 50.0, 4.0)


async def test_a_day_that_changes_its_utc_offset(db: Database) -> None:
    """Berlin leaves summer time on 25 October 2026: that day is 25 hours long."""
    berlin = ZoneInfo("Europe/Berlin")
    async with db.session() as s, s.begin():
        w = Seeder(s)
        await w.start()
        for local in (
            datetime(2026, 10, 24, 23, 30, tzinfo=berlin),  # UTC+2: 21:30 UTC on the 24th
            datetime(2026, 10, 25, 0, 30, tzinfo=berlin),  # UTC+2: 22:30 UTC on the 24th
            datetime(2026, 10, 25, 23, 30, tzinfo=berlin),  # UTC+1: 22:30 UTC on the 25th
        ):
            cid = await w.conversation("telegram", state="bot")
            w.bot_turn(cid, local.astimezone(UTC), "где оплатить?", intent="payment_methods")
    async with db.session() as s:
        r = await service_report(
            s, start=date(2026, 10, 24), end=date(2026, 10, 26), timezone="Europe/Berlin",
            first_response_target=TARGET,
        )  # fmt: skip
    assert [(d.day, f.contacts) for d, f in r.by_day()] == [(24, 1), (25, 2), (26, 0)]


async def test_the_turn_rule_holds_for_the_real_pipeline(db: Database) -> None:
    """Through the real pipeline, queue, desk and rating: only what the bot answered counts."""
    from tests.handoff.test_desk import world

    w = await world(db)
    w.clock.now = utcnow()
    await w.say("1", "где оплатить?")  # a request
    await w.say("1", "ну такое")  # not understood
    conv = await w.queued("1")  # "позовите оператора": a request, handed off to consult
    await w.say("1", "ау, есть кто?")  # waits in the queue: the bot is silent
    anna = await w.operator("anna")
    w.clock.now = utcnow()
    await w.desk.assign_waiting()
    w.clock.now = utcnow()
    await w.desk.reply(anna, conv, "Здравствуйте!")
    await w.say("1", "спасибо")  # to the operator
    w.clock.now = utcnow()
    await w.desk.close(anna, conv, "solved")
    await w.say("1", "5")  # the rating, typed
    await w.say("1", "всё отлично")  # its comment
    today = utcnow().astimezone(MSK).date()
    async with db.session() as s:
        r = await service_report(
            s, start=today - timedelta(days=1), end=today + timedelta(days=1),
            timezone="Europe/Moscow", first_response_target=TARGET,
        )  # fmt: skip
    t = r.totals
    assert (t.contacts, t.handed_off, t.bot_texts, t.misses) == (1, 1, 3, 1)
    assert r.top_intents == [Count("operator", 1), Count("payment_methods", 1)]
    assert r.top_fallback_texts == [Count("ну такое", 1)]
    assert r.handoff_reasons == [Reason("asked for a human", "consult", 1)]
    assert (t.first_responses, t.timely, t.assigned, t.rated, t.csat_avg) == (1, 1, 1, 1, 5.0)


async def test_knowledge_base_answers_and_feedback_are_counted(db: Database) -> None:
    """Through the real pipeline: an article's answers and its «👍» / «👎» presses reach the
    report, the poorly rated article first; a knowledge-base answer is neither a miss nor an
    intent in the top list."""
    from tests.handoff.test_desk import world

    w = await world(db)
    w.clock.now = utcnow()
    await w.say("1", "гиги сгорают в конце месяца или переносятся?")
    await w.say("1", payload="kb:yes:rollover")
    await w.say("2", "забыл пароль от вайфая")
    await w.say("2", payload="kb:no:wifi_password")
    await w.say("3", "можно перенести гигабайты на следующий месяц")
    today = utcnow().astimezone(MSK).date()
    async with db.session() as s:
        r = await service_report(
            s, start=today, end=today, timezone="Europe/Moscow", first_response_target=TARGET
        )
    uses = {a.article: (a.answers, a.helped, a.not_helped) for a in r.articles}
    assert uses == {"rollover": (2, 1, 0), "wifi_password": (1, 0, 1)}
    assert r.articles[0].article == "wifi_password" and r.articles[0].poor
    assert r.totals.misses == 0 and r.top_intents == []
    assert r.to_json()["knowledge_articles"][0] == {
        "article": "wifi_password", "answers": 1, "helped": 0, "not_helped": 1,
    }  # fmt: skip
