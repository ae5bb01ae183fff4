"""Queries the conversation pipeline needs, as small functions over an `AsyncSession`.

Callers own the transaction (`async with db.session() as s, s.begin(): ...`); nothing here commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    LABEL_STYLE_TABLENAME_PLUS_COL,
    Table,
    and_,
    bindparam,
    func,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.base import NO_VALUE, instance_state

from storage import rows
from storage.db import lease_here, note_handed
from storage.models import (
    Base,
    ChannelAccount,
    Conversation,
    ConversationEvent,
    ConversationState,
    OutboxItem,
    OutboxStatus,
    Subscriber,
    utcnow,
)

_Row = TypeVar("_Row", ChannelAccount, Conversation, ConversationEvent, Subscriber)

# The account and its person's open chats (usually one row): built once, run on every message
# as plain columns (storage/rows.py), made ORM objects here (`account_with_open_chats`).
_ACCOUNTS, _CONVERSATIONS = ChannelAccount.__table__, Conversation.__table__


def _with_open_chats(columns: Any) -> Any:
    return (
        columns.select_from(_ACCOUNTS)
        .outerjoin(
            _CONVERSATIONS,
            and_(
                _CONVERSATIONS.c.subscriber_id == _ACCOUNTS.c.subscriber_id,
                _CONVERSATIONS.c.state != ConversationState.CLOSED,
            ),
        )
        .where(
            _ACCOUNTS.c.channel == bindparam("channel"),
            _ACCOUNTS.c.external_user_id == bindparam("user_id"),
        )
        .order_by(_CONVERSATIONS.c.id.desc())
        .limit(10)
    )


_ACCOUNT_AND_OPEN_CHATS = rows.Select(
    _with_open_chats(select(*_ACCOUNTS.columns, *_CONVERSATIONS.columns))
)
_UPDATES = Base.metadata.tables["processed_updates"]


def _claim_and_read() -> Any:
    """PostgreSQL: the update's claim and the account with its open chats in one statement
    (one round trip fewer on every message): the INSERT as a data-modifying CTE, its count
    (1 = claimed, 0 = a redelivery) beside each row of the read, and a row even when the
    account does not exist yet."""
    claimed = (
        postgresql.insert(_UPDATES)
        .values(
            channel=bindparam("channel"),
            update_id=bindparam("update_id"),
            processed_at=bindparam("at", type_=_UPDATES.c.processed_at.type),
        )
        .on_conflict_do_nothing()
        .returning(_UPDATES.c.update_id)
        .cte("claimed")
    )
    found = _with_open_chats(
        select(*_ACCOUNTS.columns, *_CONVERSATIONS.columns).set_label_style(
            LABEL_STYLE_TABLENAME_PLUS_COL
        )
    ).subquery("found")
    count = select(func.count()).select_from(claimed).scalar_subquery()
    one = select(literal_column("1").label("one")).subquery("one")
    return (
        select(count, *found.columns)
        .select_from(one.outerjoin(found, true()))
        .order_by(found.c.conversations_id.desc())  # newest first, as `_with_open_chats`
    )


_CLAIM_AND_READ = rows.Select(_claim_and_read())


def dialect_insert(session: AsyncSession, model: type[Any]) -> Any:
    """An INSERT that supports ON CONFLICT DO NOTHING on both SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


# Hot-path statements are built once: building SQL expressions costs more than running them.
_MESSAGES = Base.metadata.tables["messages"]
_ACCOUNT_BY_USER = select(ChannelAccount).where(
    ChannelAccount.channel == bindparam("channel"),
    ChannelAccount.external_user_id == bindparam("user_id"),
)
_OPEN_CONVERSATION = (
    select(Conversation)
    .where(
        Conversation.channel_account_id == bindparam("account_id"),
        Conversation.state != ConversationState.CLOSED,
    )
    .order_by(Conversation.id.desc())
    .limit(1)
)
_OUTBOX = Base.metadata.tables["outbox"]
# The per-message INSERTs, straight on the driver's connection (storage/rows.py explains why).
_CLAIM = rows.Insert(
    Base.metadata.tables["processed_updates"],
    ("channel", "update_id", "processed_at"),
    "ON CONFLICT DO NOTHING",
)
_INSERT_MESSAGES = rows.Insert(
    _MESSAGES, [c.name for c in _MESSAGES.columns if c.name != "id"], returning=["id"]
)
_OUTBOX_COLUMNS = ("channel", "chat_id", "channel_account_id", "message_id", "body", "status",
                   "attempts", "parts_sent", "platform_message_ids", "not_before", "created_at",
                   "lease_until")  # fmt: skip
_INSERT_OUTBOX = rows.Insert(_OUTBOX, _OUTBOX_COLUMNS)
_INSERT_OUTBOX_IDS = rows.Insert(_OUTBOX, _OUTBOX_COLUMNS, returning=["id"])
# The chats among some that have a reply queued or on its way (their next one waits its turn).
_BUSY_CHATS = (
    "SELECT DISTINCT chat_id FROM outbox WHERE channel = {} "
    f"AND status IN ('{OutboxStatus.PENDING}', '{OutboxStatus.SENDING}') AND chat_id IN ({{}})"
)


async def claim_update(session: AsyncSession, channel: str, update_id: str) -> bool:
    """Record a platform update id; False if it was already processed (a redelivery)."""
    row = {"channel": channel, "update_id": update_id, "processed_at": utcnow()}
    return bool((await _CLAIM.run(session, [row])).rowcount)


async def claim_and_read(
    session: AsyncSession, channel: str, update_id: str, user_id: str
) -> tuple[bool, ChannelAccount | None, list[Conversation]]:
    """`claim_update`, then (when claimed) `account_with_open_chats` for `user_id`: on
    PostgreSQL as one statement, elsewhere as the two (SQLite's run inline: no round trips)."""
    if session.get_bind().dialect.name != "postgresql":
        if not await claim_update(session, channel, update_id):
            return False, None, []
        return True, *await account_with_open_chats(session, channel, user_id)
    params = {"channel": channel, "update_id": update_id, "at": utcnow(), "user_id": user_id}
    found = await _CLAIM_AND_READ.all(session, params)
    if not found[0][0]:
        return False, None, []
    return True, *_objects(session, [row[1:] for row in found if row[1] is not None])


async def account_with_open_chats(
    session: AsyncSession, channel: str, user_id: str
) -> tuple[ChannelAccount | None, list[Conversation]]:
    """The account of `user_id` in `channel` (None if they never wrote) and its person's chats
    that are not closed, in every channel, newest first: one statement for what the pipeline
    reads on every message (`get_or_create_account(known=...)`, `open_or_continue(chats=...)`).
    The ORM objects are put together from the statement's values as the ORM loads them (a third
    of the time; `_loaded`)."""
    found = await _ACCOUNT_AND_OPEN_CHATS.all(session, {"channel": channel, "user_id": user_id})
    return _objects(session, found)


def _objects(
    session: AsyncSession, found: list[Any]
) -> tuple[ChannelAccount | None, list[Conversation]]:
    """The account and its chats from rows of `_ACCOUNT_AND_OPEN_CHATS`'s columns."""
    if not found:
        return None, []
    split = len(_ACCOUNTS.columns)
    account = _loaded(session, ChannelAccount, _ACCOUNT_KEYS, found[0][:split])
    chats = [
        _loaded(session, Conversation, _CONVERSATION_KEYS, row[split:])
        for row in found
        if row[split] is not None
    ]
    return account, chats


_ACCOUNT_KEYS = [ChannelAccount.__mapper__.get_property_by_column(c).key for c in _ACCOUNTS.columns]
_CONVERSATION_KEYS = [
    Conversation.__mapper__.get_property_by_column(c).key for c in _CONVERSATIONS.columns
]


_CONVERSATION_UPDATE = rows.Update(Base.metadata.tables["conversations"])
_CONVERSATION_COLUMN = dict(
    zip(_CONVERSATION_KEYS, [c.name for c in _CONVERSATIONS.columns], strict=True)
)


async def save_conversation(session: AsyncSession, conv: Conversation) -> None:
    """Write the column changes made to `conv` now, as one UPDATE on the driver's connection
    (storage/rows.py) instead of the unit of work's flush at commit (~0.2 ms; the slots change
    on about a third of the turns). When anything but its columns changed, the flush does it."""
    state = instance_state(conv)
    if not state.modified or state.key is None or state.deleted:
        return
    values: dict[str, Any] = {}
    for key, before in state.committed_state.items():
        column, now = _CONVERSATION_COLUMN.get(key), state.dict.get(key, NO_VALUE)
        if column is None or now is NO_VALUE:
            return  # not a loaded column: the flush knows what to do
        if now != before:
            values[column] = now
    if not values:
        return
    if "updated_at" not in values:  # the column's onupdate, as the flush would set it
        values["updated_at"] = state.dict["updated_at"] = utcnow()
    await _CONVERSATION_UPDATE.run(session, conv.id, values)
    state._commit_all(state.dict, session.sync_session.identity_map)  # written: nothing to flush


def _loaded(session: AsyncSession, model: type[_Row], keys: list[str], values: list[Any]) -> _Row:
    """The persistent ORM object of a row read without the ORM: the session's own if it has
    one already (as a query returns it), else a new one that, like a loaded object, has no
    changes to flush and is tracked from here on. Made as SQLAlchemy's own loader makes one
    (orm/loading.py `_instance`: the values straight into the object's dict, the state keyed
    and put in the identity map), ~35 us an object less than `make_transient_to_detached` +
    `session.add`, whose save-update cascade walks the relationships."""
    sync = session.sync_session
    key = (model, (values[0],), None)  # identity_key(): (class, primary key, token)
    found = sync.identity_map.get(key)
    if found is not None:
        return found
    mapper = model.__mapper__
    mapper._check_configure()  # as a query does first (the attributes exist once configured)
    obj: _Row = mapper.class_manager.new_instance()
    obj.__dict__.update(zip(keys, values, strict=True))
    state = instance_state(obj)
    state.key, state.identity_token, state.session_id = key, None, sync.hash_key
    sync.identity_map._add_unpresent(state, key)
    return obj


class NewRow(Generic[_Row]):
    """A new row of `model` as the persistent ORM object a query would return, without the
    unit of work (whose flush of one new object costs ~0.3 ms: a first contact adds four).
    Columns not given get their Python defaults. The INSERT ... RETURNING runs on the driver's
    connection (storage/rows.py).
    `skip_conflicts`: ON CONFLICT DO NOTHING (`add` returns None when it skipped the row)."""

    def __init__(self, model: type[_Row], *, skip_conflicts: bool = False) -> None:
        table: Table = model.__table__  # type: ignore[assignment]
        if not table.columns[0].primary_key:  # `_loaded` takes the key first
            raise ValueError(f"{table.name}: the primary key must be the first column")
        self._model: type[_Row] = model
        self._columns = [c for c in table.columns if not c.primary_key]
        if any(c.server_default is not None for c in self._columns):
            raise ValueError(f"{table.name}: a server default would be overwritten")
        self._keys = [model.__mapper__.get_property_by_column(c).key for c in table.columns]
        suffix = "ON CONFLICT DO NOTHING" if skip_conflicts else ""
        names = [c.name for c in self._columns]
        self._insert = rows.Insert(table, names, suffix, returning=[c.name for c in table.columns])

    def _row(self, given: dict[str, Any]) -> dict[str, Any]:
        row = {}
        for c in self._columns:
            if c.name in given:
                row[c.name] = given.pop(c.name)
            elif c.default is None:
                row[c.name] = None
            else:  # a callable default is wrapped by SQLAlchemy to take the execution context
                arg = c.default.arg  # type: ignore[attr-defined]
                row[c.name] = arg(None) if c.default.is_callable else arg
        if given:
            raise ValueError(f"{self._model.__name__}: no column for {sorted(given)}")
        return row

    async def add(self, session: AsyncSession, **given: Any) -> _Row | None:
        found = (await self._insert.run(session, [self._row(given)])).rows
        return _loaded(session, self._model, self._keys, found[0]) if found else None


_NEW_SUBSCRIBER = NewRow(Subscriber)
_NEW_ACCOUNT = NewRow(ChannelAccount, skip_conflicts=True)
_NEW_CONVERSATION = NewRow(Conversation)
_NEW_EVENT = NewRow(ConversationEvent)
_CREATED = "accounts created"  # session.info: ids of the accounts this transaction created


def created_here(session: AsyncSession, account: ChannelAccount) -> bool:
    """Was `account` created in `session`'s transaction (a first contact)? Then it has no
    chats, verifications or history yet."""
    return account.id in session.info.get(_CREATED, ())


async def get_or_create_account(
    session: AsyncSession,
    *,
    channel: str,
    user_id: str,
    chat_id: str,
    first_name: str | None = None,
    last_name: str | None = None,
    username: str | None = None,
    known: ChannelAccount | None = None,
    known_none: bool = False,
) -> ChannelAccount:
    """The subscriber's account in this channel, created with a new subscriber on first contact;
    its names and chat kept current. `known`: the caller already loaded it; `known_none`: the
    caller already looked and found none."""
    params = {"channel": channel, "user_id": user_id}
    account = known
    if account is None and not known_none:
        account = (await session.execute(_ACCOUNT_BY_USER, params)).scalar_one_or_none()
    if account is None:
        name = " ".join(p for p in (first_name, last_name) if p) or username
        subscriber = await _NEW_SUBSCRIBER.add(session, display_name=name, data={})
        assert subscriber is not None
        account = await _NEW_ACCOUNT.add(
            session,
            subscriber_id=subscriber.id,
            channel=channel,
            external_user_id=user_id,
            chat_id=chat_id,
            first_name=first_name,
            last_name=last_name,
            username=username,
        )
        if account is not None:
            session.info.setdefault(_CREATED, set()).add(account.id)
            return account
        # Another process made it first (the same first message delivered twice at once).
        account = (await session.execute(_ACCOUNT_BY_USER, params)).scalar_one()
    changed = {
        k: v
        for k, v in (("first_name", first_name), ("last_name", last_name), ("username", username))
        if v is not None and getattr(account, k) != v
    }
    for key, value in changed.items():
        setattr(account, key, value)
    if account.chat_id != chat_id:
        account.chat_id = chat_id
    if account.unreachable_at is not None:
        account.unreachable_at = None  # they wrote to us, so they unblocked the bot
    return account


async def open_conversation(
    session: AsyncSession, account: ChannelAccount, *, known_none: bool = False
) -> tuple[Conversation, bool]:
    """The account's conversation that is not closed, or a new one with the bot. (conv, created).
    `known_none`: the caller already looked and found none."""
    if not known_none:
        params = {"account_id": account.id}
        conv = (await session.execute(_OPEN_CONVERSATION, params)).scalar_one_or_none()
        if conv is not None:
            return conv, False
    conv = await _NEW_CONVERSATION.add(
        session,
        subscriber_id=account.subscriber_id,
        channel_account_id=account.id,
        channel=account.channel,
        state=ConversationState.BOT,
        slots={},
    )
    assert conv is not None
    await _NEW_EVENT.add(
        session,
        conversation_id=conv.id,
        kind="state",
        from_state=None,
        to_state=ConversationState.BOT,
    )
    return conv, True


CONTINUE_WITHIN = timedelta(hours=24)
_HANDOFF_STATES = (ConversationState.QUEUED, ConversationState.WITH_OPERATOR)
# A person's chats that are not closed, in any of their channels (usually one row): built once.
_PERSON_OPEN = (
    select(Conversation)
    .where(
        Conversation.subscriber_id == bindparam("subscriber_id"),
        Conversation.state != ConversationState.CLOSED,
    )
    .order_by(Conversation.id.desc())
    .limit(10)
)


async def open_conversation_id(session: AsyncSession, channel: str, chat_id: str) -> int | None:
    """The id of the chat's conversation that is not closed, if any (no row is created)."""
    query = (
        select(Conversation.id)
        .join(ChannelAccount, ChannelAccount.id == Conversation.channel_account_id)
        .where(
            ChannelAccount.channel == channel,
            ChannelAccount.chat_id == chat_id,
            Conversation.state != ConversationState.CLOSED,
        )
        .order_by(Conversation.id.desc())
        .limit(1)
    )
    return await session.scalar(query)


async def open_or_continue(
    session: AsyncSession, account: ChannelAccount, chats: list[Conversation] | None = None
) -> tuple[Conversation, bool, str | None]:
    """Like `open_conversation`, for a person who may have linked accounts: (conv, created,
    the channel it came from when it moved here).

    "Продолжим здесь": when this person writes in this channel while a chat of theirs is still
    going on in another one (queued or with an operator, or in the middle of a bot form, active
    in the last 24 h), that chat moves to this account and channel, so replies come here and
    nothing is asked again; this account's own idle chat is closed. A busy chat in this channel
    wins. One query either way: the person's open chats in every channel (`chats`, when the
    caller loaded them with the account: `account_with_open_chats`)."""
    if chats is None and created_here(session, account):
        chats = []  # a new person: no chats anywhere yet
    elif chats is None:
        params = {"subscriber_id": account.subscriber_id}
        chats = list((await session.execute(_PERSON_OPEN, params)).scalars())
    convs = chats
    own = next((c for c in convs if c.channel_account_id == account.id), None)
    since = utcnow() - CONTINUE_WITHIN
    others = sorted(
        (
            c
            for c in convs
            if c.channel_account_id != account.id
            and c.updated_at > since
            and (
                c.state in _HANDOFF_STATES
                or (c.state == ConversationState.BOT and c.slots.get("_flow"))
            )
        ),
        key=lambda c: (c.updated_at, c.id),
        reverse=True,
    )
    busy = own is not None and (own.state != ConversationState.BOT or own.slots.get("_flow"))
    if not others or busy:
        if own is not None:
            return own, False, None
        conv, created = await open_conversation(session, account, known_none=True)
        return conv, created, None
    other = others[0]
    if own is not None:
        await set_state(session, own, ConversationState.CLOSED, data={"continued_in": other.id})
    came_from = other.channel
    other.channel_account_id, other.channel = account.id, account.channel
    session.add(
        ConversationEvent(
            conversation_id=other.id,
            kind="continued",
            from_state=other.state,
            to_state=other.state,
            data={"from": came_from, "to": account.channel},
        )
    )
    return other, False, came_from


async def set_state(
    session: AsyncSession,
    conv: Conversation,
    to_state: ConversationState,
    *,
    kind: str = "state",
    data: dict[str, Any] | None = None,
) -> None:
    """Change a conversation's state and store the transition as an event."""
    session.add(
        ConversationEvent(
            conversation_id=conv.id,
            kind=kind,
            from_state=conv.state,
            to_state=to_state,
            data=data or {},
        )
    )
    conv.state = to_state
    if to_state == ConversationState.CLOSED and conv.closed_at is None:
        conv.closed_at = utcnow()


_MESSAGE_DEFAULTS: dict[str, Any] = {
    "operator_id": None,
    "text": None,
    "payload": None,
    "attachments": [],
    "buttons": [],
    "edited": False,
    "platform_update_id": None,
    "platform_message_id": None,
    "nlu": None,
    "channel": None,
}


async def add_messages(session: AsyncSession, messages: list[dict[str, Any]]) -> list[int]:
    """Insert messages (dicts of Message columns) in one statement; returns their ids in order."""
    now = utcnow()
    params = [{**_MESSAGE_DEFAULTS, "created_at": now, **row} for row in messages]
    # One INSERT numbers its rows in VALUES order (storage/rows.py `Insert`).
    return sorted(row[0] for row in (await _INSERT_MESSAGES.run(session, params)).rows)


async def enqueue(session: AsyncSession, replies: list[dict[str, Any]]) -> set[str]:
    """Put replies in the outbox. Each row: channel, chat_id, body, and optionally
    channel_account_id and message_id. Delivered in insertion order per chat.

    Where this process sends the channel (`storage.db.lease_here`), the first row of each chat
    with nothing else queued is inserted already claimed (`sending`, leased, as the sender's
    claim would) and handed to the sender as the transaction commits: a reply skips the
    sender's claim (a transaction of two statements) and the wait for it. The other rows, and
    every row of a process that does not send the channel, wait for the sender's claim.
    Returns the channels with rows that wait for a claim (`storage.db.note_wake` them)."""
    now = utcnow()
    params = [
        {
            "channel_account_id": None,
            "message_id": None,
            "status": OutboxStatus.PENDING,
            "attempts": 0,
            "parts_sent": 0,
            "platform_message_ids": [],
            "not_before": now,
            "created_at": now,
            "lease_until": None,
            **row,
        }
        for row in replies
    ]
    heads = await _lease_heads(session, params, now)
    waiting = {
        row["channel"]
        for row in params
        if row["status"] == OutboxStatus.PENDING
        and row["chat_id"] not in heads.get(row["channel"], ((), set()))[1]
    }
    if not heads:
        await _INSERT_OUTBOX.run(session, params)
        return waiting
    # One INSERT numbers its rows in VALUES order (storage/rows.py `Insert`).
    ids = sorted(row[0] for row in (await _INSERT_OUTBOX_IDS.run(session, params)).rows)
    for channel, (indexes, behind) in heads.items():
        note_handed(session, channel, [{**params[i], "id": ids[i]} for i in indexes], behind)
    return waiting


async def _lease_heads(
    session: AsyncSession, params: list[dict[str, Any]], now: datetime
) -> dict[str, tuple[list[int], set[str]]]:
    """Mark the rows this process's sender takes at commit (`enqueue`): per channel it sends,
    the first row of each chat that has no other row queued or on its way. Per channel: those
    rows' indexes, and the chats whose other rows wait behind one on its way."""
    by_channel: dict[str, list[int]] = {}
    for i, row in enumerate(params):
        if row["status"] == OutboxStatus.PENDING and row["not_before"] <= now:
            by_channel.setdefault(row["channel"], []).append(i)
    heads: dict[str, tuple[list[int], set[str]]] = {}
    for channel, indexes in by_channel.items():
        offer = lease_here(session, channel)
        if offer is None:
            continue
        lease, room = offer
        chats = sorted({params[i]["chat_id"] for i in indexes})
        busy = await _busy_chats(session, channel, chats)
        taken, behind = heads.setdefault(channel, ([], set()))
        for i in indexes:
            chat = params[i]["chat_id"]
            if chat in busy:
                behind.add(chat)
                continue
            busy.add(chat)  # its later rows in this batch wait for this one
            if len(taken) < room:  # (beyond the sender's room a row waits for a claim)
                params[i].update(status=OutboxStatus.SENDING, attempts=1, lease_until=now + lease)
                taken.append(i)
    return heads


async def _busy_chats(session: AsyncSession, channel: str, chats: list[str]) -> set[str]:
    dialect = session.get_bind().dialect
    channel_mark, *chat_marks = rows.marks(dialect, 1, 1 + len(chats))
    sql = _BUSY_CHATS.format(channel_mark, ", ".join(chat_marks))
    return {row[0] for row in (await rows.execute(session, sql, [channel, *chats])).rows}


async def mark_unreachable(
    session: AsyncSession, channel: str, chat_id: str, at: datetime
) -> list[int]:
    """Flag the channel account(s) of a chat as unreachable (the bot was blocked)."""
    result = await session.execute(
        update(ChannelAccount)
        .where(ChannelAccount.channel == channel, ChannelAccount.chat_id == chat_id)
        .values(unreachable_at=at)
        .returning(ChannelAccount.id)
    )
    return [row[0] for row in result]


async def outbox_backlog(session: AsyncSession) -> dict[str, int]:
    """Replies not delivered yet (pending or in flight), per channel."""
    query = (
        select(OutboxItem.channel, func.count())
        .where(OutboxItem.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING]))
        .group_by(OutboxItem.channel)
    )
    return {channel: int(n) for channel, n in (await session.execute(query)).all()}
