"""The operator console in headless Chromium: actions that can't be done are not shown (a queued
or closed chat has no «Передать» / «Закрыть чат»); alerts when a chat is assigned (unread counter
per chat, a title badge, the sound unless muted, a desktop notification when allowed); internal
notes on a chat that other operators see and the subscriber never gets."""

from __future__ import annotations

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
