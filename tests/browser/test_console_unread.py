"""The console in headless Chromium: a chat assigned while the page's live socket was down alerts
when it reconnects, and the unread count comes from the server, so a second tab and another
browser show the same count, and reading the chat in one clears it in the others."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Console, log_in

pytestmark = pytest.mark.browser
TG_USER = 6401


async def _alerts(page: Any) -> dict[str, int]:
    counts: dict[str, int] = await page.evaluate("({...window.__consoleAlerts})")
    return counts


async def test_a_chat_assigned_while_offline_alerts_on_reconnect_everywhere(
    console: Console, page: Any, browser: Any
) -> None:
    nina = await console.operator("nina", name="Нина")
    await page.context.grant_permissions(["notifications"], origin=console.app.url)
    # The page's socket goes through this route: while `down`, every connection is cut at once.
    down = False
    sockets: list[Any] = []

    async def through(ws: Any) -> None:
        if down:
            await ws.close(code=1011, reason="network down")
            return
        ws.connect_to_server()
        sockets.append(ws)

    await page.route_web_socket(re.compile(r"/console/ws$"), through)
    await log_in(page, console, "nina")
    live = page.locator("#live")
    await expect(live).to_have_class("live on")
    title = await page.title()

    # the network drops: the page notices and keeps trying
    down = True
    for ws in sockets:
        await ws.close(code=1006, reason="network down")
    await expect(live).to_have_class("live off")

    # meanwhile the routing loop gives Нина a chat, and its subscriber writes again
    conv = await console.queue_telegram(TG_USER)
    await console.route(nina, conv.id)
    console.telegram.send_text(TG_USER, "алло, есть кто?")
    await page.wait_for_timeout(1500)
    assert not (await page.title()).startswith("("), "no socket, no news"
    assert (await _alerts(page))["sounds"] == 0

    # back online: the alert and the unread count arrive
    down = False
    await expect(live).to_have_class("live on", timeout=20_000)
    mine = page.locator(f"#mine li[data-id='{conv.id}']")
    await expect(mine.locator(".unread")).to_have_text("2")  # the new chat + one message
    await expect(page).to_have_title(f"(2) {title}")
    counts = await _alerts(page)
    assert counts["sounds"] == 1 and counts["notifications"] == 1

    # a second tab of this browser: the same count from the server, no second sound
    tab = await page.context.new_page()
    await tab.goto(f"{console.url}/")
    await expect(tab.locator(f"#mine li[data-id='{conv.id}'] .unread")).to_have_text("2")
    await expect(tab).to_have_title(f"(2) {title}")
    assert (await _alerts(tab))["sounds"] == 0

    # another computer (a fresh browser, nothing in its storage): the same count
    other = await browser.new_context(locale="ru-RU")
    try:
        far = await other.new_page()
        visited: list[str] = []  # where it went, printed if this fails (a stray redirect?)
        far.on("framenavigated", lambda f: visited.append(f.url) if f == far.main_frame else None)
        far.on("console", lambda m: visited.append(f"console {m.type}: {m.text}"))
        await log_in(far, console, "nina")
        await expect(far.locator(f"#mine li[data-id='{conv.id}'] .unread")).to_have_text("2")
        await expect(far).to_have_title(f"(2) {title}")
        # reading the chat there clears it here, live
        await far.goto(f"{console.url}/chats/{conv.id}")
        try:
            await expect(far.locator("#transcript")).to_contain_text("алло, есть кто?")
        except AssertionError:
            print("the other browser went:", *visited, sep="\n  ")
            raise
        await expect(mine.locator(".unread")).to_have_count(0)
        await expect(page).to_have_title(title)
        await expect(tab).to_have_title(title)
    finally:
        await other.close()

    # a reload keeps it read; the subscriber writes: one unread again, without a sound
    await page.reload()
    await expect(live).to_have_class("live on")
    await expect(mine.locator(".unread")).to_have_count(0)
    console.telegram.send_text(TG_USER, "спасибо, жду")
    await expect(mine.locator(".unread")).to_have_text("1")
    await expect(page).to_have_title(f"(1) {title}")
    assert (await _alerts(page))["sounds"] == 0
