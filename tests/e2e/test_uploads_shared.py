"""Operator uploads behind a load balancer: two app processes share one PostgreSQL database and
keep their data in different directories. An image an operator attaches through one process's
console is downloaded through the other's, shown in the other's chat view, and sent to the
subscriber by the other's Telegram worker; nothing is written to either machine's disk, and
erasing the subscriber deletes the stored image."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

from emulators.telegram import TelegramEmulator
from handoff.auth import add_operator
from handoff.config import HandoffSettings
from services.privacy import erase_person, find_person
from storage.models import Conversation, ConversationState, Upload
from supportbot.app import App
from tests.browser.conftest import PASSWORD, Client, wait_for, wait_text
from tests.conftest import PG_URL, fresh_postgres
from tests.e2e.conftest import telegram_settings

USER = 7301


async def stored_uploads(app: App) -> int:
    async with app.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(Upload)) or 0)


async def test_an_upload_made_through_one_process_is_served_and_sent_by_another(
    start_app: Callable[..., Any], telegram: TelegramEmulator, tmp_path: Path
) -> None:
    await (await fresh_postgres()).dispose()
    shared = {"database_url": PG_URL, "handoff": HandoffSettings(hours={})}
    # A runs the Telegram channel; B only serves the console (another replica behind the LB).
    a: App = await start_app(
        telegram=telegram_settings(telegram, "polling"), data_dir=tmp_path / "a", **shared
    )
    b: App = await start_app(data_dir=tmp_path / "b", **shared)
    async with b.db.session() as s, s.begin():
        await add_operator(
            s, login="olga", name="Olga", password=PASSWORD, role="operator", groups=["consult"]
        )
    telegram.send_text(USER, "где оплатить?")
    await telegram.wait_sent(USER, 1)
    telegram.send_text(USER, "позовите оператора")

    async def queued() -> Conversation | None:
        async with a.db.session() as s:
            query = select(Conversation).where(Conversation.state == ConversationState.QUEUED)
            return (await s.scalars(query)).first()

    conv: Conversation = await wait_for(queued, 10.0, "a queued chat")
    image = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        olga = Client(http, f"{b.url}/console")
        await olga.log_in("olga")
        assert (await olga.post(f"/api/chats/{conv.id}/take"))[0] == 200
        form = aiohttp.FormData()
        form.add_field("text", "вот схема проезда")
        form.add_field("image", image, filename="map-to-office.png", content_type="image/png")
        async with http.post(
            f"{olga.base}/api/chats/{conv.id}/reply", data=form, headers={"X-CSRF-Token": olga.csrf}
        ) as resp:
            assert resp.status == 200, await resp.text()

        # A's worker sends it although A never saw the upload: the bytes come from the database.
        photo = await wait_text(lambda: telegram.sent(USER), "вот схема проезда")
        async with a.db.session() as s:
            stored = (await s.scalars(select(Upload))).one()
        assert (stored.content_type, stored.size, stored.filename) == (
            "image/png",
            3008,
            "map-to-office.png",
        )
        assert photo["method"] == "sendPhoto" and photo["photo"].endswith(stored.name)

        # The same operator's session is good on A (sessions are in the database): A's chat
        # view links the image and A serves it.
        olga_on_a = Client(http, f"{a.url}/console")
        status, chat = await olga_on_a.get(f"/api/chats/{conv.id}")
        assert status == 200
        [url] = [att["url"] for m in chat["messages"] for att in m["attachments"] if att["url"]]
        async with http.get(f"{a.url}{url}") as resp:
            assert resp.status == 200 and resp.content_type == "image/png"
            assert await resp.read() == image
        async with http.get(f"{b.url}{url}") as resp:
            assert resp.status == 200 and await resp.read() == image

    def files_on_disk() -> list[Path]:
        return [p for p in tmp_path.rglob("*") if p.is_file() and "uploads" in p.parts]

    assert await asyncio.to_thread(files_on_disk) == []  # neither machine keeps a copy

    async with a.db.transaction() as s:  # erasing the subscriber deletes the stored image
        person = await find_person(s, f"telegram:{USER}")
        assert person is not None
        done = await erase_person(s, person, uploads=(tmp_path / "a" / "uploads"), actor="cli")
    assert done.uploads == 1 and await stored_uploads(a) == 0
