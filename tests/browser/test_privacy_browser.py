"""The admins' personal-data page in headless Chromium: an admin finds a Telegram subscriber who
talked to the bot and an operator (with an uploaded image), downloads the export, erases them
after typing the id; the texts and the upload are gone, the audit log names the admin, and the
person writing again is a new subscriber. Operators can't open the page or post its forms; no
CSP violation or script error on the way."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect
from sqlalchemy import select

from storage.models import AuditEntry, Conversation, Message, Subscriber
from tests.browser.conftest import Client, Console, log_in, wait_for, wait_text

pytestmark = pytest.mark.browser
USER = 7611
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _upload(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ("e" * 32 + ".png")
    path.write_bytes(PNG)
    return path.resolve()


async def test_admin_finds_exports_and_erases_a_subscriber(
    console: Console, page: Any, clients: Any
) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    admin = await console.operator("root", role="admin", name="Админ")
    anna = await console.operator("anna", name="Анна")
    conv = await console.queue_telegram(USER, first="мой номер +7 916 123-45-67, где оплатить?")
    desk = console.app.desk
    assert desk is not None
    await desk.take(anna, conv.id)
    upload = await asyncio.to_thread(_upload, Path(console.app.settings.data_dir) / "uploads")
    await desk.reply(anna, conv.id, "Вот схема проезда", image=str(upload))
    await wait_text(lambda: console.telegram.sent(USER), "Вот схема проезда")

    await log_in(page, console, "root")
    await page.get_by_role("link", name="Персональные данные").click()
    await page.wait_for_url(f"{console.url}/privacy")
    await page.fill("#privacy-q", f"telegram:{USER}")
    await page.click("#privacy-search button")
    person = page.locator("#privacy-person")
    await expect(person).to_contain_text(f"Абонент №{conv.subscriber_id}")
    await expect(person).to_contain_text("Telegram")
    await expect(person.locator(".privacy-conversations")).to_have_text("1")

    async with page.expect_download() as info:
        await page.click("#privacy-export button")
    download = await info.value
    assert re.fullmatch(
        rf"subscriber-{conv.subscriber_id}-\d{{8}}\.json", download.suggested_filename
    )
    data = json.loads(await asyncio.to_thread(Path(await download.path()).read_text, "utf-8"))
    [exported] = data["conversations"]
    texts = [m["text"] for m in exported["messages"]]
    assert "мой номер +7 916 123-45-67, где оплатить?" in texts and "Вот схема проезда" in texts
    assert any(m["author"] == "bot" for m in exported["messages"])
    assert [m["uploads"] for m in exported["messages"] if m["uploads"]] == [[upload.name]]

    # The browser holds back an empty or wrong confirmation (required, pattern) ...
    await page.click("#privacy-erase-submit")
    await page.fill("#privacy-confirm", "999999")
    await page.click("#privacy-erase-submit")
    assert await page.locator("#privacy-confirm:invalid").count() == 1
    async with console.app.db.session() as s:
        assert (await s.get(Subscriber, conv.subscriber_id)).erased_at is None  # type: ignore[union-attr]
    # ... the right one erases.
    await page.fill("#privacy-confirm", str(conv.subscriber_id))
    await page.click("#privacy-erase-submit")
    await page.wait_for_url(re.compile(r".*/privacy\?q=id(:|%3A)\d+$"))
    await expect(page.locator("#privacy-person .privacy-erased")).to_contain_text("данные стёрты")
    done = page.locator("#privacy-done")
    await expect(done).to_contain_text("Сообщений обезличено")
    await expect(done).to_contain_text("Файлов операторов удалено: 1")
    await expect(page.locator("#privacy-erase")).to_have_count(0)

    async with console.app.db.session() as s:
        msgs = (await s.scalars(select(Message).where(Message.conversation_id == conv.id))).all()
        assert msgs and {m.text for m in msgs} <= {"", None}
        closed = await s.get(Conversation, conv.id)
        assert closed is not None and closed.state == "closed"
        entries = (
            await s.execute(
                select(AuditEntry.action, AuditEntry.operator_id, AuditEntry.subscriber_id)
                .where(AuditEntry.action.like("subject_%"))
                .order_by(AuditEntry.id)
            )
        ).all()
    assert [tuple(e) for e in entries] == [
        ("subject_looked_up", admin, conv.subscriber_id),
        ("subject_exported", admin, conv.subscriber_id),
        ("subject_erased", admin, conv.subscriber_id),
        ("subject_looked_up", admin, conv.subscriber_id),  # the page after the erasure
    ]
    assert not await asyncio.to_thread(upload.exists)

    # Writing again, they are somebody new.
    console.telegram.send_text(USER, "привет")

    async def fresh() -> Conversation | None:
        async with console.app.db.session() as s:
            found = await s.scalar(
                select(Conversation).where(Conversation.id != conv.id).order_by(Conversation.id)
            )
            return found

    again: Conversation = await wait_for(fresh, 10.0, "a new conversation")
    assert again.subscriber_id != conv.subscriber_id
    assert errors == []


async def test_only_admins_reach_the_page_and_its_forms(console: Console, clients: Any) -> None:
    await console.operator("lead", role="supervisor")
    await console.operator("root", role="admin")
    lead: Client = clients()
    assert (await lead.log_in("lead")).status == 303
    status, html = await lead.get("/privacy?q=id:1")
    assert status == 403 and "для администраторов" in html
    status, html = await lead.get("/")
    assert "/privacy" not in html  # no link in the menu either
    assert (await lead.post("/privacy/erase", csrf=None))[0] == 403  # no CSRF token
    status, html = await lead.post("/privacy/erase", {"id": "1", "confirm": "1"})
    assert status == 403 and "для администраторов" in html

    root: Client = clients()
    assert (await root.log_in("root")).status == 303
    async with root.http.get(f"{root.base}/privacy?q=%2B79990000000") as resp:
        html = await resp.text()
        assert resp.status == 200
        csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "Никого не нашли по запросу «+79990000000»" in html
    assert "<script>" not in html and "style=" not in html  # the CSP allows neither
    # A form posted without the token is refused by the guard before anything happens.
    async with root.http.post(
        f"{root.base}/privacy/erase", data={"id": "1", "confirm": "1"}, allow_redirects=False
    ) as resp:
        assert resp.status == 403
