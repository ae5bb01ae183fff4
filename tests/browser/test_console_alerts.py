"""The operator console in headless Chromium: actions that can't be done are not shown (a queued
or closed chat has no «Передать» / «Закрыть чат»); alerts when a chat is assigned (unread counter
per chat, a title badge, the sound unless muted, a desktop notification when allowed); internal
notes on a chat that other operators see and the subscriber never gets."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Console, log_in

pytestmark = pytest.mark.browser
TG_USER = 6301


async def test_a_queued_or_closed_chat_shows_no_transfer_or_close(
    console: Console, page: Any
) -> None:
    await console.operator("olga", name="Ольга")
    conv = await console.queue_telegram(TG_USER)
    await log_in(page, console, "olga")
    await page.goto(f"{console.url}/chats/{conv.id}")

    # queued: only «Взять чат»
    await expect(page.locator("#chat-state")).to_have_text("в очереди")
    await expect(page.locator("#take")).to_be_visible()
    for hidden in ("#transfer-form", "#close-form", "#close", "#return", "#reply-form"):
        await expect(page.locator(hidden)).to_be_hidden()
    await expect(page.get_by_role("button", name="Передать")).to_have_count(0)
    await expect(page.get_by_role("button", name="Закрыть чат")).to_have_count(0)

    # with the operator: both are there
    await page.click("#take")
    await expect(page.locator("#chat-state")).to_have_text("у оператора")
    await expect(page.get_by_role("button", name="Передать")).to_be_visible()
    await expect(page.get_by_role("button", name="Закрыть чат")).to_be_visible()

    # closed: gone again, live (rendered by the page script) and after a reload (the server)
    await page.select_option("#close-resolution", "solved")
    await page.click("#close")
    await expect(page.locator("#chat-state")).to_have_text("закрыт, ждём оценку")
    for _ in ("live", "reloaded"):
        await expect(page.get_by_role("button", name="Передать")).to_have_count(0)
        await expect(page.get_by_role("button", name="Закрыть чат")).to_have_count(0)
        await expect(page.locator("#more-actions")).to_be_hidden()
        await page.reload()
        await expect(page.locator("#chat-state")).to_have_text("закрыт, ждём оценку")


async def _alerts(page: Any) -> dict[str, int]:
    """What the page did to alert (`syncs`, how often it read the counts, left out)."""
    counts: dict[str, int] = await page.evaluate("({...window.__consoleAlerts})")
    counts.pop("syncs", None)
    return counts


async def test_a_chat_assigned_to_me_alerts_me(console: Console, page: Any) -> None:
    nina = await console.operator("nina", name="Нина")
    await page.context.grant_permissions(["notifications"], origin=console.app.url)
    await log_in(page, console, "nina")
    await expect(page.locator("#live")).to_have_class("live on")
    await expect(page.locator("#sound-toggle")).to_have_text("🔔 Звук")
    await expect(page.locator("#notify-toggle")).to_be_hidden()  # already allowed
    title = await page.title()
    assert not title.startswith("(")

    # a chat is assigned to me by the routing loop
    first = await console.queue_telegram(TG_USER)
    await console.route(nina, first.id)
    mine = page.locator(f"#mine li[data-id='{first.id}']")
    await expect(mine.locator(".unread")).to_have_text("1")
    await expect(page).to_have_title(f"(1) {title}")
    assert await _alerts(page) == {
        "sounds": 1,
        "muted": 0,
        "notifications": 1,
        "notificationsSkipped": 0,
    }

    # the subscriber writes again: one more unread in that chat, no new sound
    console.telegram.send_text(TG_USER, "алло, вы тут?")
    await expect(mine.locator(".unread")).to_have_text("2")
    await expect(page).to_have_title(f"(2) {title}")

    # muted (remembered across pages): a second assigned chat counts, but plays nothing
    await page.click("#sound-toggle")
    await expect(page.locator("#sound-toggle")).to_have_text("🔕 Без звука")
    await page.reload()
    await expect(page.locator("#sound-toggle")).to_have_text("🔕 Без звука")
    await expect(page.locator("#live")).to_have_class("live on")
    await expect(mine.locator(".unread")).to_have_text("2")  # kept across the reload
    second = await console.queue_telegram(TG_USER + 1)
    await console.route(nina, second.id)
    await expect(page.locator(f"#mine li[data-id='{second.id}'] .unread")).to_have_text("1")
    await expect(page).to_have_title(f"(3) {title}")
    counts = await _alerts(page)
    assert counts["sounds"] == 0 and counts["muted"] == 1 and counts["notifications"] == 1
    # the sound the page plays is there and the browser can decode it (the CSP allows it)
    decoded = await page.evaluate(
        """() => new Promise((done) => {
            const a = new Audio(document.body.dataset.base + "/static/alert.wav");
            a.oncanplaythrough = () => done(a.duration);
            a.onerror = () => done("error " + (a.error && a.error.code));
            a.load();
        })"""
    )
    assert isinstance(decoded, float) and 0.1 < decoded < 1.0, decoded

    # opening a chat reads it: its counter goes, the other stays
    await mine.locator("a.open-chat").click()
    await page.wait_for_url(f"{console.url}/chats/{first.id}")
    await expect(page).to_have_title(re.compile(r"^\(1\) "))
    await page.goto(f"{console.url}/")
    await expect(mine.locator(".unread")).to_have_count(0)
    await expect(page.locator(f"#mine li[data-id='{second.id}'] .unread")).to_have_text("1")
    await expect(page).to_have_title(f"(1) {title}")


async def test_alerts_without_notification_permission(console: Console, page: Any) -> None:
    """The browser refuses notifications: the counter and the title still work, nothing breaks."""
    await page.context.grant_permissions([], origin=console.app.url)
    pavel = await console.operator("pavel", name="Павел")
    await log_in(page, console, "pavel")
    await expect(page.locator("#live")).to_have_class("live on")
    permission = await page.evaluate("Notification.permission")
    assert permission in ("default", "denied")
    await expect(page.locator("#notify-toggle")).to_be_visible(visible=permission == "default")
    conv = await console.queue_telegram(TG_USER)
    await console.route(pavel, conv.id)
    await expect(page.locator(f"#mine li[data-id='{conv.id}'] .unread")).to_have_text("1")
    await expect(page).to_have_title(re.compile(r"^\(1\) "))
    counts = await _alerts(page)
    assert counts["notifications"] == 0 and counts["notificationsSkipped"] == 1
    assert counts["sounds"] == 1


async def test_internal_notes_are_seen_by_operators_and_never_sent(
    console: Console, page: Any, browser: Any
) -> None:
    irina = await console.operator("irina", name="Ирина")
    await console.operator("kolya", name="Коля")
    await console.operator("sup", role="supervisor", groups=(), name="Светлана")
    conv = await console.queue_telegram(TG_USER)
    await console.app.desk.take(irina, conv.id)
    before = len(console.telegram.sent(TG_USER))

    # a supervisor watches the chat in another browser
    other = await browser.new_context(locale="ru-RU")
    sup = await other.new_page()
    await log_in(sup, console, "sup")
    await sup.goto(f"{console.url}/chats/{conv.id}")
    await expect(sup.locator("#live")).to_have_class("live on")
    await expect(sup.locator("#notes-empty")).to_be_visible()

    await log_in(page, console, "irina")
    await page.goto(f"{console.url}/chats/{conv.id}")
    await page.fill("#note-text", "Абонент просил не звонить до 18:00")
    await page.click("#note-add")
    await expect(page.locator("#flash")).to_contain_text("Заметка добавлена")
    await expect(page.locator("#note-text")).to_have_value("")
    note = page.locator("#note-list .note").last
    await expect(note.locator(".text")).to_have_text("Абонент просил не звонить до 18:00")
    await expect(note.locator(".author")).to_have_text("Ирина")
    await expect(note.locator("time")).to_have_text(re.compile(r"^\d\d:\d\d$"))
    # the supervisor's open page shows it live; it is not in the transcript
    await expect(sup.locator("#note-list .note .text")).to_have_text(
        "Абонент просил не звонить до 18:00"
    )
    await expect(sup.locator("#transcript")).not_to_contain_text("не звонить до 18:00")

    # an empty note is refused with a clear message
    await page.fill("#note-text", "   ")
    await page.click("#note-add")
    await expect(page.locator("#flash")).to_have_text("Напишите текст заметки")

    # the transfer's note is one of the notes; the colleague who gets the chat sees both
    await page.select_option("#transfer-operator", label="Коля (не в сети)")
    await page.fill("#transfer-note", "VIP, тариф не менять")
    await page.locator("#transfer-form button[type=submit]").click()
    await expect(page.locator("#flash")).to_contain_text("Чат передан")
    third = await browser.new_context(locale="ru-RU")
    page = await third.new_page()
    await log_in(page, console, "kolya")
    await page.goto(f"{console.url}/chats/{conv.id}")
    notes = page.locator("#note-list .note")
    await expect(notes).to_have_count(2)
    await expect(notes.nth(0).locator(".text")).to_have_text("Абонент просил не звонить до 18:00")
    await expect(notes.nth(1)).to_have_class(re.compile("note-transfer"))
    await expect(notes.nth(1).locator(".text")).to_have_text("VIP, тариф не менять")
    await expect(notes.nth(1).locator(".author")).to_have_text("Ирина")
    await expect(notes.nth(1).locator(".note-label")).to_have_text("при передаче оператору Коля")

    # a transfer to a group: its note is authored by whoever had the chat
    await page.select_option("#transfer-group", "tech")
    await page.fill("#transfer-note", "роутер мигает красным")
    await page.locator("#transfer-form button[type=submit]").click()
    last = sup.locator("#note-list .note").last
    await expect(last.locator(".text")).to_have_text("роутер мигает красным")
    await expect(last.locator(".author")).to_have_text("Коля")
    await expect(last.locator(".note-label")).to_have_text("при передаче в группу tech")
    await other.close()
    await third.close()

    # the subscriber got the operators' join/transfer notices, never a note
    sent = console.telegram.sent(TG_USER)[before:]
    assert sent, "the transfers' notices reach the subscriber"
    texts = " ".join(str(m.get("text") or m.get("caption") or "") for m in sent)
    for secret in ("не звонить", "VIP", "роутер мигает"):
        assert secret not in texts
