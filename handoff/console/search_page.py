"""Conversation search for operators and supervisors: `/console/search`.

One box finds a conversation by the subscriber's phone (any spelling, normalised like
`nlu.phones`), name (channel first/last name, username, display name), ticket number, or words
of its messages; filters: channel, skill group, date range (days in `handoff.timezone`), state;
pages of `PAGE_SIZE`, newest first. Results link to the chat page with name, channel, date,
state and a snippet (masked by the role's privacy policy, like the chat itself).

Text search: on PostgreSQL, full text with Russian stemming (`to_tsvector('russian', text) @@
plainto_tsquery('russian', q)`: «тарифы» finds «тарифом»); no index is added, the scan is over
the messages of the filtered conversations. On SQLite, a LIKE fallback: SQLite's LIKE and
lower() fold ASCII only, so the pattern is tried in the spellings people type (as typed,
lower, Capitalised, UPPER) rather than storing a folded copy of every text; a word in another
inflection is not found there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from aiohttp import web
from sqlalchemy import ColumnElement, Select, false, func, or_, select

from handoff.console import privacy
from handoff.console.paging import paged
from handoff.console.security import me
from handoff.console.state import ApiError, console
from handoff.console.views import CHANNELS, STATES, can_view, person
from nlu.phones import normalise_phone
from storage.models import (
    Author,
    ChannelAccount,
    Conversation,
    ConversationState,
    Message,
    Subscriber,
    Ticket,
)

PAGE_SIZE = 30
SNIPPET = 160
NOT_FOR_EDITORS = "Поиск обращений — для операторов и супервизоров."
FIELDS = ("q", "channel", "group", "from", "to", "state")


@dataclass(frozen=True, slots=True)
class SearchQuery:
    q: str = ""
    channel: str | None = None
    group: str | None = None
    start: date | None = None
    end: date | None = None
    state: str | None = None
    page: int = 1

    @property
    def empty(self) -> bool:
        return not (self.q or self.channel or self.group or self.start or self.end or self.state)

    def params(self, *, page: int | None = None) -> dict[str, str]:
        values = {
            "q": self.q,
            "channel": self.channel or "",
            "group": self.group or "",
            "from": self.start.isoformat() if self.start else "",
            "to": self.end.isoformat() if self.end else "",
            "state": self.state or "",
        }
        if page is not None and page > 1:
            values["page"] = str(page)
        return {k: v for k, v in values.items() if v}

    def form(self) -> dict[str, str]:
        return {k: self.params().get(k, "") for k in FIELDS}


def parse_query(params: Mapping[str, str], groups: list[str]) -> SearchQuery:
    """The search of a request; ApiError(400) names the field that is wrong."""

    def day(name: str, title: str) -> date | None:
        raw = (params.get(name) or "").strip()
        if not raw:
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise ApiError(f"Поле «{title}»: «{raw[:40]}» — не дата (ГГГГ-ММ-ДД).") from None

    def choice(name: str, title: str, allowed: list[str]) -> str | None:
        raw = (params.get(name) or "").strip()
        if raw and raw not in allowed:
            raise ApiError(f"Поле «{title}»: нет такого значения «{raw[:40]}».")
        return raw or None

    start, end = day("from", "с"), day("to", "по")
    if start is not None and end is not None and start > end:
        raise ApiError("Начало периода позже его конца.")
    raw_page = (params.get("page") or "1").strip()
    if not raw_page.isdigit() or not 0 < int(raw_page) < 10**6:
        raise ApiError(f"Страница «{raw_page[:20]}» — нужно целое число от 1.")
    q = " ".join((params.get("q") or "").split())
    if len(q) > 200:
        raise ApiError("Запрос длиннее 200 символов.")
    return SearchQuery(
        q=q,
        channel=choice("channel", "канал", list(CHANNELS)),
        group=choice("group", "группа", groups),
        start=start,
        end=end,
        state=choice("state", "состояние", [str(s) for s in ConversationState]),
        page=int(raw_page),
    )


def _spellings(q: str) -> list[str]:
    """The ways one would type `q` (SQLite's LIKE folds ASCII letters only)."""
    return list(dict.fromkeys([q, q.lower(), q.capitalize(), q.upper(), q.title()]))


def _like(column: Any, q: str, *, sqlite: bool) -> ColumnElement[bool]:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if not sqlite:
        return column.ilike(f"%{escaped}%", escape="\\")
    return or_(*(column.like(f"%{s}%", escape="\\") for s in _spellings(escaped)))


def text_match(q: str, *, sqlite: bool) -> ColumnElement[bool]:
    """Messages whose text matches `q`: Russian full text on PostgreSQL, LIKE on SQLite."""
    if sqlite:
        return _like(Message.text, q, sqlite=True)
    return func.to_tsvector("russian", func.coalesce(Message.text, "")).bool_op("@@")(
        func.plainto_tsquery("russian", q)
    )


def _midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=tz)


def statement(query: SearchQuery, tz: tzinfo, *, sqlite: bool) -> Select[Any]:
    found = select(Conversation).join(
        ChannelAccount, ChannelAccount.id == Conversation.channel_account_id
    )
    if query.channel:
        found = found.where(Conversation.channel == query.channel)
    if query.group:
        found = found.where(Conversation.skill_group == query.group)
    if query.state:
        found = found.where(Conversation.state == query.state)
    if query.start:
        found = found.where(Conversation.created_at >= _midnight(query.start, tz))
    if query.end:
        found = found.where(Conversation.created_at < _midnight(query.end + timedelta(days=1), tz))
    q = query.q
    if not q:
        return found
    ways: list[ColumnElement[bool]] = []
    phone = normalise_phone(q) if sum(c.isdigit() for c in q) >= 10 else None
    if phone is not None:
        ways.append(
            Conversation.subscriber_id.in_(select(Subscriber.id).where(Subscriber.phone == phone))
        )
    ticket = select(Ticket).where(func.upper(Ticket.number) == q.upper())
    ways.append(Conversation.id.in_(ticket.with_only_columns(Ticket.conversation_id)))
    ways.append(
        Conversation.subscriber_id.in_(
            ticket.where(Ticket.conversation_id.is_(None)).with_only_columns(Ticket.subscriber_id)
        )
    )
    name = or_(
        _like(ChannelAccount.first_name, q, sqlite=sqlite),
        _like(ChannelAccount.last_name, q, sqlite=sqlite),
        _like(ChannelAccount.username, q.lstrip("@"), sqlite=sqlite),
        _like(func.coalesce(ChannelAccount.first_name, "") + " " + func.coalesce(
            ChannelAccount.last_name, ""), q, sqlite=sqlite),
        Conversation.subscriber_id.in_(
            select(Subscriber.id).where(_like(Subscriber.display_name, q, sqlite=sqlite))
        ),
    )  # fmt: skip
    ways.append(name)
    if any(c.isalpha() for c in q) or phone is None:
        ways.append(
            Conversation.id.in_(select(Message.conversation_id).where(text_match(q, sqlite=sqlite)))
        )
    return found.where(or_(*ways) if ways else false())


def _snippet(text: str, q: str) -> str:
    text = " ".join(text.split())
    if len(text) <= SNIPPET:
        return text
    words = [w for w in q.casefold().split() if len(w) > 2]
    at = min((i for w in words if (i := text.casefold().find(w[:5])) >= 0), default=0)
    start = max(0, at - SNIPPET // 3)
    cut = text[start : start + SNIPPET]
    return ("…" if start else "") + cut + ("…" if start + SNIPPET < len(text) else "")


async def page(request: web.Request) -> web.StreamResponse:
    state = console(request)
    who = me(request)
    if who.editor:
        return state.render(request, "error.html", status=403, message=NOT_FOR_EDITORS)
    sqlite = state.db.is_sqlite
    options: dict[str, Any] = {
        "channels": list(CHANNELS.items()),
        "groups": state.groups,
        "states": [(str(s), label) for s, label in STATES.items()],
        "sqlite": sqlite,
    }
    try:
        query = parse_query(request.query, state.groups)
    except ApiError as exc:
        form = {k: request.query.get(k, "") for k in FIELDS}
        return state.render(
            request, "search.html", status=400, error=str(exc), form=form, rows=[], pager=None,
            **options,
        )  # fmt: skip
    if query.empty:
        return state.render(
            request, "search.html", error=None, form=query.form(), rows=[], pager=None, **options
        )
    tz = state.tz
    policy = privacy.policy_for(who.role)
    found = statement(query, tz, sqlite=sqlite)
    async with state.db.session() as session:
        convs, pager = await paged(
            session,
            found,
            (Conversation.created_at.desc(), Conversation.id.desc()),
            page=query.page,
            size=PAGE_SIZE,
            params=lambda n: query.params(page=n),
        )
        ids = [c.id for c in convs]
        accounts = {
            a.id: a
            for a in await session.scalars(
                select(ChannelAccount).where(
                    ChannelAccount.id.in_({c.channel_account_id for c in convs})
                )
            )
        }
        subscribers = {
            s.id: s
            for s in await session.scalars(
                select(Subscriber).where(Subscriber.id.in_({c.subscriber_id for c in convs}))
            )
        }
        snippets: dict[int, Message] = {}
        if ids and query.q:
            hits = await session.scalars(
                select(Message)
                .where(Message.conversation_id.in_(ids), text_match(query.q, sqlite=sqlite))
                .order_by(Message.id)
            )
            for m in hits:
                snippets.setdefault(m.conversation_id, m)
        if ids:
            firsts = await session.scalars(
                select(Message).where(
                    Message.id.in_(
                        select(func.min(Message.id))
                        .where(
                            Message.conversation_id.in_([i for i in ids if i not in snippets]),
                            Message.author == Author.SUBSCRIBER,
                            Message.text.is_not(None),
                        )
                        .group_by(Message.conversation_id)
                    )
                )
            )
            for m in firsts:
                snippets.setdefault(m.conversation_id, m)
    rows = []
    for c in convs:
        hit = snippets.get(c.id)
        text = privacy.message_text(hit.text or "", hit.author, policy) if hit is not None else ""
        rows.append(
            {
                "id": c.id,
                "name": person(
                    accounts.get(c.channel_account_id), subscribers.get(c.subscriber_id)
                ),
                "channel": c.channel,
                "channel_label": CHANNELS.get(c.channel, c.channel),
                "group": c.skill_group or "",
                # the full date: results span months, «06:49» alone says too little
                "date": c.created_at.astimezone(tz).strftime("%d.%m.%Y %H:%M"),
                "state": c.state,
                "openable": can_view(who, c),  # another's live chat: listed, not opened
                "state_label": STATES.get(ConversationState(c.state), c.state),
                "snippet": _snippet(text, query.q),
            }
        )
    return state.render(
        request, "search.html", error=None, form=query.form(), rows=rows, pager=pager, **options
    )


def add_routes(r: web.UrlDispatcher) -> None:
    """Registers this page's routes on the console app."""
    r.add_get("/search", page, name="search")
