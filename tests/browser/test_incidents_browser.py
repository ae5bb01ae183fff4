"""The incidents page in headless Chromium: a supervisor on the queue page gets the live alert when
an outage is detected, opens «Аварии», declares another one, closes the detected one with a text
for subscribers; the subscriber gets it in Telegram. No CSP violation or script error on the way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import expect

from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from supportbot.app import App
from supportbot.settings import IncidentSettings
from tests.browser.conftest import Console, log_in, wait_text
from tests.e2e.conftest import telegram_settings

pytestmark = pytest.mark.browser
USER = 7401


@pytest.fixture
async def console(
    telegram: TelegramEmulator, vk: VKEmulator, start_app: Callable[..., Awaitable[App]]
) -> Console:
    """The app with Telegram; one report is enough to open an incident here."""
    app = await start_app(
        telegram=telegram_settings(telegram, "polling"),
        incidents=IncidentSettings(threshold=1),
    )
    return Console(app, telegram, vk)


async def test_supervisor_is_alerted_declares_and_closes_an_incident(
    console: Console, page: Any
) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await console.operator("lead", role="supervisor", name="Олег", groups=("tech",))
    await log_in(page, console, "lead")
    await expect(page.locator("#live.on")).to_be_visible()

    tg = console.telegram
    tg.send_text(USER, "не работает интернет")
    await wait_text(lambda: tg.sent(USER), "адрес подключения")
    tg.send_text(USER, "Лесная 5, кв 2")
    await wait_text(lambda: tg.sent(USER), "сейчас авария")

    alert = page.locator(".incident-alert")
    await expect(alert).to_contain_text("Похоже на аварию: Лесная")
    await alert.get_by_role("link", name="Открыть «Аварии»").click()
    await page.wait_for_url(f"{console.url}/incidents")
    detected = page.locator("#incidents-open tbody tr", has_text="Лесная")
    await expect(detected).to_contain_text("обнаружена автоматически")
    await expect(detected.locator(".subscribers")).to_have_text("1")

    form = page.locator("#declare-form")
    await form.get_by_label("Улица или район").fill("ул. Садовая")
    await form.get_by_label("Что случилось").fill("Плановые работы на линии")
    await form.get_by_role("button", name="Объявить").click()
    await expect(page.locator("#flash")).to_contain_text("объявлена: ул. Садовая")
    declared = page.locator("#incidents-open tbody tr", has_text="ул. Садовая")
    await expect(declared).to_contain_text("объявлена вручную")
    await expect(page.locator("#incidents-open-count")).to_have_text("2")

    await detected.get_by_label("Текст для абонентов").fill("Заменили кабель в колодце.")
    await detected.get_by_role("button", name="Закрыть и оповестить").click()
    await expect(page.locator("#flash")).to_contain_text("сообщений абонентам: 1")
    await expect(page.locator("#incidents-open tbody tr")).to_have_count(1)
    closed = page.locator("#incidents-closed tbody tr", has_text="Лесная")
    await expect(closed.locator(".resolution")).to_have_text("Заменили кабель в колодце.")
    await expect(closed.locator(".notified")).to_have_text("1")

    told = await wait_text(lambda: tg.sent(USER), "устранили")
    assert "Заменили кабель в колодце." in told["text"]
    assert not errors, errors
