"""The console's search and tickets pages over plain HTTP, through the real App and the Telegram
emulator: a past conversation is found by phone, name, ticket number and a word of its text
(another inflection on PostgreSQL); an overdue ticket is highlighted, and resolving it from the
console tells the subscriber and is audited."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from emulators.telegram import TelegramEmulator
from storage.db import Database
from storage.models import AuditEntry, Subscriber, Ticket, utcnow
from supportbot.app import App
from tests.browser.audit_support import Site
from tests.browser.conftest import Client, wait_for
from tests.e2e.conftest import telegram_settings

MARINA = 8101  # files a complaint
OLEG = 8102  # asks about roaming: must not match the others' searches
PHONE = "+79161234567"


@pytest.fixture
async def site_tg(
    db: Database, telegram: TelegramEmulator, start_app: Callable[..., Awaitable[App]]
) -> AsyncIterator[Site]:
    """The App with Telegram on the `db` fixture's database (SQLite and PostgreSQL)."""
    app = await start_app(database_url=db.url, telegram=telegram_settings(telegram, "polling"))
    running = Site(app)
    yield running
    for http in running.sessions:
        await http.close()


async def complaint(tg: TelegramEmulator, user: int, first_name: str) -> str:
    """The subscriber files a complaint through the flow; the ticket's number."""
    tg.send_text(user, "хочу пожаловаться", first_name=first_name)
    await tg.wait_sent(user, 1)
    tg.send_text(user, "Интернет пропадает каждый вечер уже неделю", first_name=first_name)
    registered = (await tg.wait_sent(user, 2))[-1]["text"]
    assert "№" in registered, registered
    return str(registered.split("№")[1].split()[0])


def found(html: str) -> list[int]:
    table = html.split('id="search-results"')
    return [int(i) for i in re.findall(r'<tr data-id="(\d+)">', table[1])] if len(table) > 1 else []


async def search(client: Client, query: str) -> list[int]:
    from urllib.parse import urlencode

    status, html = await client.get(f"/search?{urlencode({'q': query})}")
    assert status == 200, html
    return found(html)


async def test_a_past_conversation_is_found_by_phone_name_ticket_and_text(
    site_tg: Site, telegram: TelegramEmulator
) -> None:
    number = await complaint(telegram, MARINA, "Марина")
    telegram.send_text(OLEG, "сколько стоит роуминг в Турции?", first_name="Олег")
    await telegram.wait_sent(OLEG, 1)
    async with site_tg.db.transaction() as s:
        ticket = await s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None and ticket.conversation_id is not None
        await s.execute(
            update(Subscriber).where(Subscriber.id == ticket.subscriber_id).values(phone=PHONE)
        )
    chat = ticket.conversation_id
    await site_tg.operator("olga")
    client = await site_tg.logged_in("olga")

    assert await search(client, "8 (916) 123-45-67") == [chat]  # another spelling of the phone
    assert await search(client, "марина") == [chat]  # the name, in lower case (Cyrillic)
    assert await search(client, number.lower()) == [chat]
    assert await search(client, "ИНТЕРНЕТ") == [chat]  # a word of the text, any case
    assert len(await search(client, "роуминг")) == 1 and chat not in await search(client, "Олег")
    if not site_tg.db.is_sqlite:
        # Russian stemming: «неделе», «вечерами» are the same words as «неделю», «вечер»
        assert await search(client, "каждые вечера неделе") == [chat]
    assert await search(client, "тыквенный латте") == []

    status, html = await client.get("/search?q=%D0%98%D0%BD%D1%82%D0%B5%D1%80%D0%BD%D0%B5%D1%82")
    assert f'href="/console/chats/{chat}">Марина</a>' in html
    assert "Интернет пропадает каждый вечер" in html  # the snippet
    # filters: the state, the channel and the date range narrow the results
    assert found((await client.get("/search?q=Марина&channel=vk"))[1]) == []
    assert found((await client.get("/search?q=Марина&state=bot&channel=telegram"))[1]) == [chat]
    old = (utcnow() - timedelta(days=30)).date().isoformat()
    assert found((await client.get(f"/search?q=Марина&to={old}"))[1]) == []
    status, html = await client.get("/search?from=2026-13-01")
    assert status == 400 and "не дата" in html


async def test_an_overdue_ticket_is_highlighted_and_resolving_it_tells_the_subscriber(
    site_tg: Site, telegram: TelegramEmulator
) -> None:
    number = await complaint(telegram, MARINA, "Марина")
    async with site_tg.db.transaction() as s:
        await s.execute(
            update(Ticket)
            .where(Ticket.number == number)
            .values(due_at=utcnow() - timedelta(hours=3))
        )
    await site_tg.operator("olga")
    client = await site_tg.logged_in("olga")
    status, html = await client.get("/tickets?overdue=1")
    assert status == 200
    assert re.search(rf'<tr data-number="{number}" class="overdue">', html), html
    assert "просрочена" in html and 'id="tk-late">1<' in html

    status, html = await client.get(f"/tickets/{number}")
    assert status == 200 and "жалоба" in html and 'id="tk-chat"' in html
    result = "Заменили оборудование на узле, скорость восстановлена."
    async with client.http.post(
        f"{client.base}/tickets/{number}/resolve",
        data={"csrf": client.csrf, "result": result},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 303
    notice = (await telegram.wait_sent(MARINA, 3))[-1]["text"]
    assert number in notice and "Заменили оборудование" in notice

    status, html = await client.get(f"/tickets/{number}")
    assert "решена" in html and result in html and 'id="tk-resolve"' not in html
    status, html = await client.get("/tickets?overdue=1")
    assert number not in html  # resolved: no longer overdue
    async with client.http.post(
        f"{client.base}/tickets/{number}/resolve",
        data={"csrf": client.csrf, "result": "ещё раз"},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 409 and "уже закрыта" in await resp.text()
    assert len(telegram.sent(MARINA)) == 3  # told once

    async def entry() -> AuditEntry | None:
        async with site_tg.db.session() as s:
            query = select(AuditEntry).where(AuditEntry.action == "ticket_resolved")
            return (await s.scalars(query)).first()

    audited = await wait_for(entry, 5, "the audit entry")
    assert audited.details["number"] == number and audited.operator_id is not None


def visible(html: str) -> str:
    """The page's text as people see it: no tags, no attributes (tooltips hold raw values)."""
    body = html.split("<main>")[-1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


async def test_the_chat_page_shows_buttons_and_collected_data_readably(
    telegram: TelegramEmulator, start_app: Callable[..., Awaitable[App]]
) -> None:
    app = await start_app(telegram=telegram_settings(telegram, "polling"))
    site = Site(app)
    user = 8103
    telegram.send_text(user, "как оплатить связь?")
    [ways] = await telegram.wait_sent(user, 1)
    datas = [b["callback_data"] for row in ways["reply_markup"]["inline_keyboard"] for b in row]
    sbp = next(d for d in datas if d.endswith(":sbp"))
    telegram.press_button(user, ways["message_id"], sbp)
    await telegram.wait_sent(user, 2)
    telegram.send_text(user, "какие есть тарифы?")
    await telegram.wait_sent(user, 3)
    telegram.send_text(user, "позовите оператора")

    async def queued() -> int | None:
        from storage.models import Conversation

        async with app.db.session() as s:
            query = select(Conversation.id).where(Conversation.state == "queued")
            return (await s.scalars(query)).first()

    chat = await wait_for(queued, 10, "the chat in the queue")
    await site.operator("sveta", role="supervisor")
    client = await site.logged_in("sveta")
    status, html = await client.get(f"/chats/{chat}")
    assert status == 200
    text = visible(html)
    assert "кнопка: ⚡ СБП" in text and f'title="{sbp}"' in html  # the raw value: tooltip only
    assert "Причина передачи: абонент попросил оператора" in text
    slots = visible(html.split('id="slot-rows">')[1].split("</dl>")[0])
    assert "Тарифы" in slots and "шт.:" in slots and "и ещё" in slots, slots
    for raw in ("step:", "intent:", "{'", "':", "True", "False", "asked for a human"):
        assert raw not in text, (raw, text)
    assert not re.search(r"\d{4}-\d{2}-\d{2}T", text)  # no ISO timestamps
    status, data = await client.get(f"/api/chats/{chat}")
    pressed = [m for m in data["messages"] if m["payload_raw"] == sbp]
    assert [m["payload"] for m in pressed] == ["⚡ СБП"]  # what the page's script shows too
    for http in site.sessions:
        await http.close()


async def test_an_operator_can_read_a_past_conversation_found_by_search(
    console: Any, clients: Any
) -> None:
    """Any operator may open a closed conversation (the subscriber's history), read-only."""
    from sqlalchemy import update

    from storage.models import Conversation, ConversationState

    conv = await console.queue_telegram(7601, first="роутер мигает красным")
    async with console.app.db.session() as s, s.begin():
        await s.execute(
            update(Conversation)
            .where(Conversation.id == conv.id)
            .values(state=ConversationState.CLOSED, skill_group="tech")
        )
    await console.operator("nina", groups=("consult",))
    nina = clients()
    await nina.log_in("nina")
    status, page = await nina.get(f"/chats/{conv.id}")
    assert status == 200 and "роутер мигает красным" in page
    assert (await nina.post(f"/api/chats/{conv.id}/take"))[0] >= 400  # reading, not acting
