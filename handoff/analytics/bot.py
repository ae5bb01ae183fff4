"""The bot's own work: contacts it answered, how many it kept (containment), its misses,
the intents it was asked for, its knowledge-base answers and their feedback, and the handoffs it
made. Definitions: __init__.py."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import (
    String,
    case,
    exists,
    func,
    literal_column,
    not_,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from handoff.analytics.figures import (
    MISS,
    ArticleUse,
    Cell,
    Count,
    Figures,
    Period,
    as_date,
    local_day,
    normalise,
)
from storage.models import (
    Author,
    Conversation,
    ConversationEvent,
    Message,
)

KB = "kb:"  # `handled_as` of a knowledge-base answer (kb:<article>), and the feedback payloads


@dataclass(frozen=True, slots=True)
class _Escalation:
    conversation_id: int
    day: date
    channel: str  # the conversation's
    group: str | None  # where it was sent
    reason: str


async def escalations_of(session: AsyncSession, period: Period) -> list[_Escalation]:
    """The period's "escalated" events, oldest first."""
    e, c = ConversationEvent, Conversation
    query = (
        select(
            e.conversation_id,
            e.at,
            e.data["group"].as_string(),
            e.data["reason"].as_string(),
            c.channel,
            c.skill_group,
        )
        .join(c, c.id == e.conversation_id)
        .where(e.kind == "escalated", e.at >= period.since, e.at < period.until)
        .order_by(e.at, e.id)
    )
    return [
        _Escalation(
            conversation_id=int(conv_id),
            day=period.day_of(at),
            channel=str(channel),
            group=sent_to or current_group or None,
            reason=reason or "—",
        )
        for conv_id, at, sent_to, reason, channel, current_group in (
            await session.execute(query)
        ).all()
    ]


def _bot_answered(
    session: AsyncSession, period: Period, channel: str | None, *, escalated_only: Any = None
) -> Any:
    """Subscriber messages of the period the bot answered (the turn rule in the module
    docstring), as a materialized CTE: cid, day, channel, text, intent, handled_as. Read once,
    with each JSON field extracted once per row (the costly part), by every aggregate below.
    `escalated_only`: a select of conversation ids; then just cid, day, channel of those."""
    m, c, reply = Message, Conversation, aliased(Message)
    written_in = func.coalesce(m.channel, c.channel)
    columns = [
        m.conversation_id.label("cid"),
        local_day(session, m.created_at, period).label("day"),
        written_in.label("channel"),
    ]
    if escalated_only is None:
        columns += [
            m.text.label("text"),
            m.nlu["intent"].as_string().label("intent"),
            m.nlu["handled_as"].as_string().label("handled_as"),
        ]
    query = (
        select(*columns)
        .join(c, c.id == m.conversation_id)
        .where(
            m.author == Author.SUBSCRIBER,
            m.created_at >= period.since,
            m.created_at < period.until,
            or_(c.closed_at.is_(None), m.created_at < c.closed_at),
            exists().where(
                reply.conversation_id == m.conversation_id,
                reply.created_at == m.created_at,
                reply.author == Author.BOT,
                reply.created_at >= period.since,  # implied; lets the planner narrow it down
                reply.created_at < period.until,
            ),
        )
    )
    if channel is not None:
        query = query.where(written_in == channel)
    if escalated_only is not None:
        query = query.where(m.conversation_id.in_(escalated_only))
    return query.cte("answered").prefix_with("MATERIALIZED")


@dataclass(slots=True)
class _BotWork:
    intents: Counter[str] = field(default_factory=Counter)
    miss_texts: Counter[str] = field(default_factory=Counter)
    kb_answers: Counter[str] = field(default_factory=Counter)  # article -> questions answered


async def bot_figures(
    session: AsyncSession,
    period: Period,
    channel: str | None,
    escalations: list[_Escalation],
    cells: dict[Cell, Figures],
    *,
    bot_side: bool = True,
) -> _BotWork:
    """Contacts, texts and misses into `cells`; the requests' intents and the misses' texts
    (normalised here: SQLite's lower() knows only ASCII) counted for the top lists. One
    statement: three aggregates of the answered messages, told apart by their first column.
    Without `bot_side` (a group's report) only the contacts handed off to groups."""
    e = ConversationEvent
    escalated_ids = select(e.conversation_id).where(
        e.kind == "escalated", e.at >= period.since, e.at < period.until
    )
    a = _bot_answered(session, period, channel, escalated_only=None if bot_side else escalated_ids)
    none = null().cast(String)
    handed = (
        select(
            literal_column("'handed'"),
            a.c.day,
            a.c.channel,
            a.c.cid.cast(String),
            none,
            none,
            func.count(),
        )
        .where(a.c.cid.in_(escalated_ids))
        .group_by(a.c.cid, a.c.day, a.c.channel)
    )
    statement: Any = handed
    if bot_side:
        contacts = select(
            literal_column("'contacts'"), a.c.day, a.c.channel, none, none, none,
            func.count(func.distinct(a.c.cid)),
        ).group_by(a.c.day, a.c.channel)  # fmt: skip
        miss_text = case((a.c.handled_as == MISS, a.c.text), else_=None)
        texts = (
            select(
                literal_column("'texts'"),
                a.c.day,
                a.c.channel,
                a.c.intent,
                a.c.handled_as,
                miss_text,
                func.count(),
            )
            .where(a.c.intent.is_not(None), not_(a.c.text.startswith("/")))  # NLU, no /command
            .group_by(a.c.day, a.c.channel, a.c.intent, a.c.handled_as, miss_text)
        )
        statement = union_all(contacts, texts, handed)
    sent_to = {(e.conversation_id, e.day): e.group for e in escalations}  # the day's last
    work = _BotWork()
    for kind, day, ch, key, handled_as, text, n in (await session.execute(statement)).all():
        day = as_date(day)
        bot = cells[(day, str(ch), None)]
        if kind == "contacts":
            bot.contacts += int(n)
        elif kind == "texts":
            bot.bot_texts += int(n)
            if handled_as == MISS:
                bot.misses += int(n)
                if normalised := normalise(str(text or "")):
                    work.miss_texts[normalised] += int(n)
            elif handled_as is None:
                work.intents[str(key)] += int(n)
            elif str(handled_as).startswith(KB):
                work.kb_answers[str(handled_as).removeprefix(KB)] += int(n)
        elif (int(key), day) in sent_to:  # a contact handed off that day: to the group's row
            bot.contacts -= 1
            group = cells[(day, str(ch), sent_to[(int(key), day)])]
            group.contacts += 1
            group.handed_off += 1
    return work


async def article_uses(
    session: AsyncSession, period: Period, channel: str | None, answers: Counter[str], top: int
) -> list[ArticleUse]:
    """Knowledge-base articles of the period: the questions each answered (`answers`, from
    `bot_figures`) and the «👍 Помогло» / «👎 Не помогло» presses (their payloads
    `kb:yes:<id>` / `kb:no:<id>`); the poorly rated first."""
    m, c = Message, Conversation
    written_in = func.coalesce(m.channel, c.channel)
    query = (
        select(m.payload, func.count())
        .join(c, c.id == m.conversation_id)
        .where(
            m.author == Author.SUBSCRIBER,
            m.created_at >= period.since,
            m.created_at < period.until,
            or_(m.payload.startswith(KB + "yes:"), m.payload.startswith(KB + "no:")),
        )
        .group_by(m.payload)
    )
    if channel is not None:
        query = query.where(written_in == channel)
    votes: Counter[tuple[str, str]] = Counter()
    for payload, n in (await session.execute(query)).all():
        kind, _, article = str(payload).removeprefix(KB).partition(":")
        votes[(article, kind)] += int(n)
    names = set(answers) | {a for a, _ in votes}
    uses = [ArticleUse(a, answers[a], votes[(a, "yes")], votes[(a, "no")]) for a in sorted(names)]
    uses.sort(key=lambda u: (not u.poor, -(u.not_helped - u.helped), -u.answers, u.article))
    return uses[:top]


def top_counts(counts: Counter[str], top: int) -> list[Count]:
    return [Count(k, n) for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
