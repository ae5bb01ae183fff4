"""Helpers for the audit, admin and masking tests of the console: the real App (no channels) on
the `db` fixture's database (SQLite and PostgreSQL), operators, a chat full of personal data,
logged-in HTTP clients and the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import select

from handoff.auth import add_operator
from storage.db import Database
from storage.models import (
    AuditEntry,
    ChannelAccount,
    Conversation,
    Message,
    Subscriber,
    Verification,
    utcnow,
)
from supportbot.app import App
from tests.browser.conftest import PASSWORD, Client

PHONE = "+79161234567"
ACCOUNT = "100200300"
ADDRESS = "Садовая 12, кв. 5"
CUSTOMER_ID = "C-5551234"


@dataclass
class Chat:
    id: int
    subscriber_id: int
    account_id: int


@dataclass
class Site:
    app: App
    sessions: list[aiohttp.ClientSession] = field(default_factory=list)
    _users: int = 7000

    @property
    def url(self) -> str:
        return f"{self.app.url}/console"

    @property
    def db(self) -> Database:
        return self.app.db

    async def operator(
        self,
        login: str,
        *,
        role: str = "operator",
        groups: tuple[str, ...] = ("consult",),
        name: str | None = None,
    ) -> int:
        async with self.db.transaction() as s:
            op = await add_operator(
                s,
                login=login,
                name=name or login.capitalize(),
                password=PASSWORD,
                role=role,
                groups=list(groups),
            )
            return op.id

    def client(self) -> Client:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.sessions.append(http)
        return Client(http, self.url)

    async def logged_in(self, login: str) -> Client:
        client = self.client()
        resp = await client.log_in(login)
        assert resp.status == 303, resp.status
        return client

    async def chat(self, *, state: str = "queued", operator_id: int | None = None) -> Chat:
        """A Telegram subscriber known to billing, whose chat waits in the consult queue: their
        phone, account number and address are in the profile, the form data, the NLU entities
        and the texts (theirs and the bot's)."""
        self._users += 1
        user = str(self._users)
        async with self.db.transaction() as s:
            sub = Subscriber(
                phone=PHONE,
                account_number=ACCOUNT,
                data={
                    "customer": {
                        "id": CUSTOMER_ID,
                        "name": "Иван Петров",
                        "phone": PHONE,
                        "account": ACCOUNT,
                        "address": ADDRESS,
                        "tariff": "Мой онлайн",
                    }
                },
            )
            s.add(sub)
            await s.flush()
            account = ChannelAccount(
                subscriber_id=sub.id,
                channel="telegram",
                external_user_id=user,
                chat_id=user,
                first_name="Иван",
            )
            s.add(account)
            await s.flush()
            now = utcnow()
            conv = Conversation(
                subscriber_id=sub.id,
                channel_account_id=account.id,
                channel="telegram",
                state=state,
                skill_group="consult",
                operator_id=operator_id,
                queued_at=now,
                assigned_at=now if operator_id else None,
                handoff_reason="operator",
                slots={
                    "address": ADDRESS,
                    "contract": {"account": ACCOUNT},
                    "phone": PHONE,
                    "window": {"label": "завтра с 10 до 14"},
                    "_flow": "secret",
                },
            )
            s.add(conv)
            await s.flush()
            s.add_all(
                [
                    Message(
                        conversation_id=conv.id,
                        direction="in",
                        author="subscriber",
                        text="мой лс 100200300, телефон 8 916 123-45-67",
                        channel="telegram",
                        nlu={
                            "intent": "balance",
                            "confidence": 0.93,
                            "entities": [
                                {"entity": "phone", "value": PHONE},
                                {"entity": "account", "value": ACCOUNT},
                            ],
                        },
                    ),
                    Message(
                        conversation_id=conv.id,
                        direction="out",
                        author="bot",
                        text="Нашёл: счёт 100200300, номер +79161234567, заявка V-000123",
                        channel="telegram",
                    ),
                ]
            )
            return Chat(conv.id, sub.id, account.id)

    async def verify(
        self, chat: Chat, *, method: str = "sms", hours: float = 24.0, revoked: bool = False
    ) -> None:
        now = utcnow()
        async with self.db.transaction() as s:
            s.add(
                Verification(
                    account_id=chat.account_id,
                    subscriber_id=chat.subscriber_id,
                    customer_id=CUSTOMER_ID,
                    phone=PHONE,
                    account_number=ACCOUNT,
                    method=method,
                    verified_at=now - timedelta(hours=1),
                    expires_at=now + timedelta(hours=hours),
                    revoked_at=now if revoked else None,
                    revoked_reason="unlinked" if revoked else None,
                )
            )

    async def entries(self, action: str | None = None) -> list[AuditEntry]:
        async with self.db.session() as s:
            query = select(AuditEntry).order_by(AuditEntry.id)
            if action is not None:
                query = query.where(AuditEntry.action == action)
            return list((await s.scalars(query)).all())


@pytest.fixture
async def site(db: Database, start_app: Callable[..., Awaitable[App]]) -> AsyncIterator[Site]:
    """The App (no channels) on the `db` fixture's database: every test runs on SQLite and
    PostgreSQL."""
    app = await start_app(database_url=db.url)
    running = Site(app)
    yield running
    for http in running.sessions:
        await http.close()


@pytest.fixture
async def sqlite_site(
    sqlite_db: Database, start_app: Callable[..., Awaitable[App]]
) -> AsyncIterator[Site]:
    """The same on SQLite only, for the browser tests (the page is the same on PostgreSQL)."""
    app = await start_app(database_url=sqlite_db.url)
    running = Site(app)
    yield running
    for http in running.sessions:
        await http.close()


def dump(entries: list[AuditEntry]) -> str:
    return repr([(e.action, e.details, e.ip) for e in entries])


__all__ = ["ACCOUNT", "ADDRESS", "PHONE", "Chat", "Site", "dump", "site", "sqlite_site"]
