"""The NLU training page in headless Chromium: an editor logs in, opens «Обучение NLU», sees the
message the bot missed with its guesses, picks the right intent, adds the example: the row goes,
the page says the bot is retraining and then when the new model is live; the subscriber's next
identical message gets the right answer. Runs on a temporary copy of content/."""

from __future__ import annotations

import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.async_api import expect

from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from nlu import learned
from supportbot.app import App
from tests.browser.conftest import Console, log_in, wait_text
from tests.e2e.conftest import telegram_settings
from tests.support import CONTENT

pytestmark = pytest.mark.browser
USER = 6301
MISSED = "куда к вам ногами дойти"  # the reference model: number_porting 0.29 -> a miss
SPAM = "<b>купи</b> слона"


@pytest.fixture
async def console(
    telegram: TelegramEmulator,
    vk: VKEmulator,
    start_app: Callable[..., Awaitable[App]],
    tmp_path: Path,
) -> Console:
    """The app on a copy of content/ (the example is written there, never into the repo)."""
    content = tmp_path / "content"
    shutil.copytree(CONTENT, content, ignore=shutil.ignore_patterns("tests"))
    app = await start_app(telegram=telegram_settings(telegram, "polling"), content_dir=content)
    return Console(app, telegram, vk)


async def test_editor_adds_a_missed_message_to_the_training_data(
    console: Console, page: Any
) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    console.telegram.send_text(USER, MISSED)
    await console.telegram.wait_sent(USER, 1)
    console.telegram.send_text(USER + 1, SPAM)
    await console.telegram.wait_sent(USER + 1, 1)
    await console.operator("elena", role="editor", name="Елена")
    await log_in(page, console, "elena")

    await page.get_by_role("link", name="Обучение NLU").click()
    await page.wait_for_url(f"{console.url}/training")
    row = page.locator("#training-list tbody tr", has_text=MISSED)
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("Telegram")
    await expect(row).to_contain_text("бот не понял")
    await expect(row.locator(".t-guess")).to_contain_text("number_porting")
    await expect(row.locator(".ranking li")).to_have_count(3)
    await expect(row.locator("select.t-intent")).to_have_value("number_porting")  # the guess
    spam = page.locator("#training-list tbody tr", has_text=SPAM)
    await expect(spam.locator(".t-text")).to_have_text(SPAM)  # subscriber HTML stays text
    await expect(page.locator("#model-status")).to_contain_text("Модель работает с")

    await row.locator("select.t-intent").select_option("offices")
    await row.get_by_role("button", name="Добавить пример").click()
    await expect(row).to_have_count(0)
    await expect(page.locator("#flash")).to_contain_text("добавлен в offices")
    status = page.locator("#model-status")
    await expect(status).to_have_text(re.compile("переобучается|Новая модель работает"))
    await expect(status).to_contain_text("Новая модель работает с", timeout=60_000)

    target = Path(console.app.settings.content_dir) / "nlu" / learned.FILE_NAME
    doc = yaml.safe_load(target.read_text(encoding="utf-8"))
    assert doc["nlu"] == [{"intent": "offices", "examples": f"- {MISSED}\n"}]
    console.telegram.send_text(USER, MISSED)
    await wait_text(lambda: console.telegram.sent(USER), "Наши салоны связи в Пушкине")

    # Skipping: the row goes, the file stays as it was; after the last row, "nothing to review".
    await spam.get_by_role("button", name="Пропустить").click()
    await expect(spam).to_have_count(0)
    await expect(page.locator("#flash")).to_contain_text("пропущено")
    assert yaml.safe_load(target.read_text(encoding="utf-8")) == doc
    await page.reload()
    await expect(page.locator("#training-list tbody tr", has_text=MISSED)).to_have_count(0)
    await expect(page.locator("#training-list tbody tr", has_text=SPAM)).to_have_count(0)
    assert not errors, errors  # no CSP violation, no script error


async def test_an_operator_has_no_training_page(console: Console, page: Any) -> None:
    await console.operator("oleg")
    await log_in(page, console, "oleg")
    await expect(page.get_by_role("link", name="Обучение NLU")).to_have_count(0)
    response = await page.goto(f"{console.url}/training")
    assert response is not None and response.status == 403
    await expect(page.locator("h1")).to_contain_text("для редакторов и супервизоров")
