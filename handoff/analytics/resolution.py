"""Resolution by the bot, per topic: of the contacts about an intent, how many the bot closed by
itself, with no operator and no repeat contact within 24 hours. Definitions: __init__.py.

A contact that ended less than 24 hours before the report was made may still turn out to be a
repeat: its figure is provisional until then.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from handoff.analytics.figures import Period, as_date, local_day, pct
from storage.models import Author, Conversation, Message

REPEAT_WITHIN = timedelta(hours=24)
NO_TOPIC = "—"  # a contact with no request the NLU or a topic button named (only media, /start)
INTENT_BUTTON = "intent:"


@dataclass(frozen=True, slots=True)
class Resolution:
    topic: str  # the intent of the contact's first request
    contacts: int
    handed_off: int  # went to an operator that day
    repeated: int  # not handed off, but the person wrote again within 24 h
    resolved: int  # neither: the bot closed it

    @property
    def resolved_pct(self) -> float | None:
        return pct(self.resolved, self.contacts)

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "contacts": self.contacts,
            "handed_off": self.handed_off,
            "repeated": self.repeated,
            "resolved": self.resolved,
            "resolved_pct": self.resolved_pct,
        }


def _answered(session: AsyncSession, since: datetime, until: datetime, channel: str | None) -> Any:
    """Subscriber messages the bot answered in [since, until) (the turn rule of __init__.py)."""
    m, c, reply = Message, Conversation, aliased(Message)
    written_in = func.coalesce(m.channel, c.channel)
    query = (
        select(m.conversation_id, c.subscriber_id, m.created_at, written_in)
        .join(c, c.id == m.conversation_id)
        .where(
            m.author == Author.SUBSCRIBER,
            m.created_at >= since,
            m.created_at < until,
            or_(c.closed_at.is_(None), m.created_at < c.closed_at),
            exists().where(
                reply.conversation_id == m.conversation_id,
                reply.created_at == m.created_at,
                reply.author == Author.BOT,
                reply.created_at >= since,
                reply.created_at < until,
            ),
        )
    )
    return query if channel is None else query.where(written_in == channel)


def _topic(
    intent: str | None, handled_as: str | None, first_char: str | None, payload: str | None
) -> str | None:
    """The request a message makes, if any: a topic button's intent, or the NLU intent of a
    text that was a request (not a miss, a form answer or a cancel; not a /command)."""
    if payload and payload.startswith(INTENT_BUTTON):
        return payload.removeprefix(INTENT_BUTTON)
    if intent and handled_as is None and first_char != "/":
        return intent
    return None


async def resolution_by_topic(
    session: AsyncSession,
    period: Period,
    channel: str | None,
    handed: set[tuple[int, date]],
) -> list[Resolution]:
    """Per topic, most contacts first. `handed`: (conversation, day) of the period's handoffs."""
    m = Message
    # One pass over what the bot answered from the period's start to its end plus the repeat
    # window: the period's messages make the contacts, every message counts as "wrote again".
    query = _answered(session, period.since, period.until + REPEAT_WITHIN, channel=None)
    rows = (
        await session.execute(
            query.add_columns(
                local_day(session, m.created_at, period),
                m.nlu["intent"].as_string(),
                m.nlu["handled_as"].as_string(),
                func.substr(m.text, 1, 1),
                m.payload,
            ).order_by(m.created_at, m.id)
        )
    ).all()
    contacts: dict[tuple[int, date, str], list[Any]] = {}  # -> [person, last at, topic]
    wrote: dict[int, list[datetime]] = defaultdict(list)  # person -> when, in order
    until = period.until
    for conv_id, person, at, ch, day, intent, handled_as, first_char, payload in rows:
        wrote[int(person)].append(at)
        if at >= until or (channel is not None and ch != channel):
            continue
        key = (int(conv_id), as_date(day), str(ch))
        contact = contacts.get(key)
        if contact is None:
            contact = contacts[key] = [int(person), at, None]
        contact[1] = at
        if contact[2] is None:
            contact[2] = _topic(intent, handled_as, first_char, payload)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for (conv_id, day, _ch), (person, last_at, topic) in contacts.items():
        row = counts[topic or NO_TOPIC]
        row[0] += 1
        if (conv_id, day) in handed:
            row[1] += 1
            continue
        times = wrote[person]
        nxt = bisect.bisect_right(times, last_at)
        if nxt < len(times) and times[nxt] - last_at <= REPEAT_WITHIN:
            row[2] += 1
        else:
            row[3] += 1
    return sorted(
        (Resolution(topic, *n) for topic, n in counts.items()),
        key=lambda r: (-r.contacts, r.topic),
    )
