"""Operator assist in headless Chromium: the knowledge-base article closest to the subscriber's
last message is offered beside the chat, updates when the subscriber writes again, and its short
answer goes into the reply with one click and reaches the subscriber's messenger."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Console, log_in, wait_text

pytestmark = pytest.mark.browser
TG_USER = 6303


async def test_the_article_for_the_last_question_goes_into_the_reply(
    console: Console, page: Any
) -> None:
    await console.operator("anna", name="Анна")
    conv = await console.queue_telegram(TG_USER)
    await log_in(page, console, "anna")
    await page.goto(f"{console.url}/chats/{conv.id}")
    await page.click("#take")
    await expect(page.locator("#reply-form")).to_be_visible()
    # «позовите оператора» matches no article: nothing is offered
    await expect(page.locator("#kb-box")).to_be_hidden()

    console.telegram.send_text(TG_USER, "а как поменять пароль от вайфая?")
    box = page.locator("#kb-box")
    await expect(box).to_be_visible()
    await expect(page.locator("#kb-title")).to_have_text("Пароль от Wi-Fi: узнать или сменить")
    await page.click("#kb-insert")
    short = await page.locator("#kb-short").inner_text()
    assert len(short) > 40
    await expect(page.locator("#reply-text")).to_have_value(short)
    await page.click("#reply-send")
    await wait_text(lambda: console.telegram.sent(TG_USER), short[:30])


async def test_the_bots_own_answer_is_a_one_click_draft(console: Console, page: Any) -> None:
    """The subscriber asks something while waiting: the operator sees what the bot would have
    answered (the flow's reply for the words, here the cash branch of «how to pay»), inserts it,
    edits and sends it; answered questions, small talk and data questions offer nothing."""
    await console.operator("anna", name="Анна")
    conv = await console.queue_telegram(TG_USER + 1)  # «где оплатить?» the bot answered itself
    await log_in(page, console, "anna")
    await page.goto(f"{console.url}/chats/{conv.id}")
    await page.click("#take")
    await expect(page.locator("#reply-form")).to_be_visible()
    await expect(page.locator("#bot-box")).to_be_hidden()  # the bot answered; then «оператор»

    console.telegram.send_text(TG_USER + 1, "а наличными можно заплатить?")
    await expect(page.locator("#bot-box")).to_be_visible()
    await expect(page.locator("#bot-title")).to_have_text("💳 Как оплатить")
    await expect(page.locator("#bot-for")).to_have_text("а наличными можно заплатить?")
    draft = await page.locator("#bot-text").inner_text()
    assert "Наличными" in draft and "терминал" in draft
    await page.click("#bot-insert")
    await expect(page.locator("#reply-text")).to_have_value(draft)
    await page.locator("#reply-text").press("End")
    await page.locator("#reply-text").type(" Могу подсказать ближайший.")
    await page.click("#reply-send")
    got = await wait_text(lambda: console.telegram.sent(TG_USER + 1), "Наличными")
    assert got["text"].endswith("Могу подсказать ближайший.")
    await expect(page.locator("#bot-box")).to_be_hidden()  # answered: the draft goes away

    console.telegram.send_text(TG_USER + 1, "спасибо!")  # small talk: no draft
    console.telegram.send_text(TG_USER + 1, "а какой у меня баланс?")  # needs data: no draft
    await expect(page.locator("#transcript")).to_contain_text("какой у меня баланс")
    await expect(page.locator("#bot-box")).to_be_hidden()
