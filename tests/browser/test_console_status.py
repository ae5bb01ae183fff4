"""The operator's status switch in headless Chromium: «на линии» brings chats, «перерыв» keeps the
current ones and brings no new ones (and is still set after a reload), «не в сети» with chats
asks first and then hands them back to the queue, telling the subscriber."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from storage.models import Conversation, Operator
from tests.browser.conftest import Console, log_in, wait_for, wait_text

pytestmark = pytest.mark.browser
FIRST, SECOND = 6501, 6502


async def _true(value: Any) -> bool:
    return bool(value)


async def test_the_status_switch_steers_routing(console: Console, page: Any) -> None:
    anna = await console.operator("anna", name="Анна")
    first = await console.queue_telegram(FIRST)
    await log_in(page, console, "anna")
    active = page.locator("#status-switch button.active")
    await expect(active).to_have_text("не в сети")
    await expect(page.locator(f"#queue tr[data-id='{first.id}']")).to_be_visible()

    # on the line: the routing loop gives her the waiting chat
    await page.get_by_role("button", name="на линии").click()
    await expect(active).to_have_text("на линии")
    await expect(page.locator(f"#mine li[data-id='{first.id}']")).to_be_visible()
    await expect(page.locator(f"#queue tr[data-id='{first.id}']")).to_have_count(0)

    # a break: it is kept (after a reload too); a new chat is not hers
    await page.get_by_role("button", name="перерыв").click()
    await expect(active).to_have_text("перерыв")
    await page.reload()
    await expect(active).to_have_text("перерыв")
    async with console.app.db.session() as s:
        op = await s.get(Operator, anna)
        assert op is not None and op.status == "away"
    second = await console.queue_telegram(SECOND)
    assert await console.app.desk.assign_waiting() == []  # a free seat, but she is on a break
    await expect(page.locator(f"#queue tr[data-id='{second.id}']")).to_be_visible()
    await expect(page.locator(f"#mine li[data-id='{first.id}']")).to_be_visible()

    # going offline with a chat asks first; «cancel» changes nothing
    asked: list[str] = []

    async def answer(dialog: Any, accept: bool) -> None:
        asked.append(dialog.message)
        await (dialog.accept() if accept else dialog.dismiss())

    page.once("dialog", lambda d: answer(d, False))
    await page.get_by_role("button", name="не в сети").click()
    await wait_for(lambda: _true(asked), 5, "the question")
    assert asked == ["У вас чатов: 1. Уйти из сети и вернуть их в очередь?"]
    await page.wait_for_timeout(300)
    await expect(page.locator("#status-switch button.active")).to_have_text("перерыв")
    await expect(page.locator(f"#mine li[data-id='{first.id}']")).to_be_visible()

    # «OK»: offline, and the chat goes back to the queue for colleagues
    page.once("dialog", lambda d: answer(d, True))
    await page.get_by_role("button", name="не в сети").click()
    await expect(page.locator("#flash")).to_have_text("Чатов возвращено в очередь: 1")
    await expect(active).to_have_text("не в сети")
    await expect(page.locator(f"#queue tr[data-id='{first.id}']")).to_be_visible()
    await expect(page.locator("#mine li")).to_have_count(0)
    await wait_text(lambda: console.telegram.sent(FIRST), "Передаю твой вопрос")


async def test_logging_out_with_chats_asks_and_hands_them_back(console: Console, page: Any) -> None:
    boris = await console.operator("boris", name="Борис")
    conv = await console.queue_telegram(FIRST)
    await console.route(boris, conv.id)
    await log_in(page, console, "boris")
    await page.goto(f"{console.url}/chats/{conv.id}")
    asked: list[str] = []

    async def answer(dialog: Any, accept: bool) -> None:
        asked.append(dialog.message)
        await (dialog.accept() if accept else dialog.dismiss())

    page.once("dialog", lambda d: answer(d, False))
    await page.get_by_role("button", name="Выйти").click()
    await wait_for(lambda: _true(asked), 5, "the question")
    assert asked == ["У вас чатов: 1. Выйти и вернуть их в очередь?"]
    await page.wait_for_timeout(300)
    assert page.url == f"{console.url}/chats/{conv.id}"  # stayed

    page.once("dialog", lambda d: answer(d, True))
    await page.get_by_role("button", name="Выйти").click()
    await expect(page).to_have_url(f"{console.url}/login")
    async with console.app.db.session() as s:
        op = await s.get(Operator, boris)
        back = await s.get(Conversation, conv.id)
        assert op is not None and op.status == "offline"
        assert back is not None and back.state == "queued" and back.operator_id is None
    await wait_text(lambda: console.telegram.sent(FIRST), "Передаю твой вопрос")
